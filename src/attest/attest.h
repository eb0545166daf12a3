/* SPDX-License-Identifier: Apache-2.0 */
/* Attesting a key on its token: the orchestration `check`, the tunnel and `attest` share.
 *
 * (Placeholder with the prototypes of /work/issue17-spec.md until issue17-tpm's own
 * header lands; theirs replaces this file.) */
#ifndef KB_ATTEST_ATTEST_H
#define KB_ATTEST_ATTEST_H

#include <stddef.h>

#include "pkcs11/objects.h"
#include "pkcs11/p11.h"
#include "src/util/err.h"

struct kb_attest_anchors;
struct kb_attest_facts;
struct kb_pin_opts;

/* Attests k (on its token, logged in with pin) and verifies the evidence at once. */
int kb_attest_prove(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                    const struct kb_attest_anchors *anchors, long long now,
                    struct kb_attest_facts *facts, kb_err *err);

/* keybound attest: evidence with the caller's nonce (no activation), DER malloc'd. */
int kb_attest_evidence(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                       const unsigned char *nonce, size_t nonce_len, unsigned char **der,
                       size_t *der_len, kb_err *err);

#endif
