/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until issue17-tpm's orchestration lands (theirs replaces this file): it
 * fails closed, so a require-attestation policy denies every key with this reason. */
#include "config.h"

#include <stdio.h>

#include "attest.h"
#include "policy/facts.h"

int kb_attest_prove(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                    const struct kb_attest_anchors *anchors, long long now,
                    struct kb_attest_facts *facts, kb_err *err)
{
    (void)p, (void)k, (void)pin, (void)anchors;
    facts->checked = true;
    facts->attested = false;
    facts->at = now;
    snprintf(facts->reason, sizeof facts->reason, "this build cannot attest keys yet");
    return kb_err_set(err, "%s", facts->reason);
}

int kb_attest_evidence(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                       const unsigned char *nonce, size_t nonce_len, unsigned char **der,
                       size_t *der_len, kb_err *err)
{
    (void)p, (void)k, (void)pin, (void)nonce, (void)nonce_len;
    *der = NULL;
    *der_len = 0;
    return kb_err_set(err, "this build cannot attest keys yet");
}
