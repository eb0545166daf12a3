/* SPDX-License-Identifier: Apache-2.0 */
#include "src/attest/credential.h"

int kb_credential_make(const unsigned char *n, size_t n_len, const unsigned char *e, size_t e_len,
                       const unsigned char *name, size_t name_len, const unsigned char *secret,
                       size_t secret_len, const struct kb_cred_random *rnd,
                       struct kb_credential *out, kb_err *err)
{
    return kb_err_set(err, "credential: not implemented yet");
}
int kb_credential_make_for_cert(const unsigned char *ek_der, size_t ek_len,
                                const unsigned char *name, size_t name_len,
                                const unsigned char *secret, size_t secret_len,
                                const struct kb_cred_random *rnd, struct kb_credential *out,
                                kb_err *err)
{
    return kb_err_set(err, "credential: not implemented yet");
}
int kb_kdfa_sha256(const unsigned char *key, size_t key_len, const char *label,
                   const unsigned char *u, size_t u_len, const unsigned char *v, size_t v_len,
                   unsigned bits, unsigned char *out, kb_err *err)
{
    return kb_err_set(err, "KDFa: not implemented yet");
}
