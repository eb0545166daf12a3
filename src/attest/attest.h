/* SPDX-License-Identifier: Apache-2.0 */
/* Attesting a key on its token: the orchestration `check`, the tunnel and `attest` share.
 *
 * Both calls log in to k's token with pin (one C_Login; the PIN the token just accepted is
 * the one that derives the seal auth, so a wrong PIN never reaches the TPM), read the
 * key's TPM blobs through PKCS#11 and the token's seal object from tpm2-pkcs11's store,
 * unwrap the key's TPM auth and have the TPM certify the key with keybound's attestation
 * key (tpm.h). kb_attest_prove also proves the AK is in the TPM of the EK certificate: the
 * verifier's credential (verify.h) is activated and the secret it holds is Certify's
 * qualifying data; the evidence is then verified at once. A token that is not tpm2-pkcs11
 * fails with "token 'x' (maker) cannot attest: ...". Every secret is zeroised. */
#ifndef KB_ATTEST_ATTEST_H
#define KB_ATTEST_ATTEST_H

#include <stddef.h>

#include "pkcs11/objects.h"
#include "pkcs11/p11.h"
#include "src/util/err.h"

struct kb_attest_anchors;
struct kb_attest_facts;
struct kb_pin_opts;

/* Attests k and verifies the evidence against anchors. Returns 0 when attested; else -1,
 * with facts->reason and err saying why (facts->checked is set either way). */
int kb_attest_prove(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                    const struct kb_attest_anchors *anchors, long long now,
                    struct kb_attest_facts *facts, kb_err *err);

/* keybound attest: evidence with the caller's nonce (no activation), DER malloc'd. */
int kb_attest_evidence(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                       const unsigned char *nonce, size_t nonce_len, unsigned char **der,
                       size_t *der_len, kb_err *err);

#endif
