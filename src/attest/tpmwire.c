/* SPDX-License-Identifier: Apache-2.0 */
#include "src/attest/tpmwire.h"

int kb_tpm_public_decode(const unsigned char *p, size_t len, struct kb_tpm_public *out, kb_err *err)
{
    return kb_err_set(err, "TPMT_PUBLIC: not implemented yet");
}
int kb_tpm_attest_decode(const unsigned char *p, size_t len, struct kb_tpm_attest *out, kb_err *err)
{
    return kb_err_set(err, "TPMS_ATTEST: not implemented yet");
}
int kb_tpm_signature_decode(const unsigned char *p, size_t len, struct kb_tpm_signature *out,
                            kb_err *err)
{
    return kb_err_set(err, "TPMT_SIGNATURE: not implemented yet");
}
int kb_tpm_name(const unsigned char *pub, size_t pub_len, unsigned char *out, size_t *out_len,
                kb_err *err)
{
    return kb_err_set(err, "TPM name: not implemented yet");
}
int kb_tpm_qualified_name(const unsigned char *parent_qn, size_t parent_qn_len,
                          const unsigned char *name, size_t name_len, unsigned char *out,
                          size_t *out_len, kb_err *err)
{
    return kb_err_set(err, "TPM qualified name: not implemented yet");
}
void kb_tpm_handle_qn(uint32_t handle, unsigned char out[4])
{
}
int kb_tpm_ek_rsa_template(const unsigned char *n, size_t n_len, unsigned char *out,
                           size_t *out_len, kb_err *err)
{
    return kb_err_set(err, "EK template: not implemented yet");
}
