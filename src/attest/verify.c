/* SPDX-License-Identifier: Apache-2.0 */
#include "src/attest/verify.h"

int kb_attest_challenge_make(const unsigned char *ek_der, size_t ek_len,
                             const unsigned char *ak_public, size_t ak_public_len,
                             const unsigned char *rnd, struct kb_attest_challenge *c, kb_err *err)
{
    return kb_err_set(err, "attestation: not implemented yet");
}
int kb_attest_verify(const unsigned char *der, size_t der_len,
                     const struct kb_attest_anchors *anchors,
                     const struct kb_attest_challenge *challenge, gnutls_pubkey_t expected,
                     long long now, struct kb_attest_facts *facts)
{
    return -1;
}
