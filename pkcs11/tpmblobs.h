/* SPDX-License-Identifier: Apache-2.0 */
/* What attestation needs from a tpm2-pkcs11 token, read through PKCS#11.
 *
 * tpm2-pkcs11 hands out, after login, three vendor attributes of each key: the key's TPM
 * public and private blobs (marshalled TPM2B_PUBLIC and TPM2B_PRIVATE) and its TPM auth
 * value encrypted under the token's wrapping key ("iv:tag:ctext", hex). None is a sensitive
 * attribute in PKCS#11's sense: the private blob is encrypted by the TPM's storage key
 * and useless off that TPM, and the auth value is encrypted. Only a tpm2-pkcs11 module
 * (told by its C_GetInfo, not by vendor attribute numbers, which vendors share) is asked. */
#ifndef KB_TPMBLOBS_H
#define KB_TPMBLOBS_H

#include <stddef.h>

#include "objects.h"
#include "p11.h"

/* tpm2-pkcs11's vendor attributes (src/pkcs11.h of tpm2-pkcs11: CKA_VENDOR_DEFINED|TPM2). */
#define KB_CKA_TPM2_OBJAUTH_ENC 0x8f000001UL
#define KB_CKA_TPM2_PUB_BLOB 0x8f000002UL
#define KB_CKA_TPM2_PRIV_BLOB 0x8f000003UL

struct kb_tpm_blobs {
    unsigned char *pub; /* TPM2B_PUBLIC, with its size */
    size_t pub_len;
    unsigned char *priv; /* TPM2B_PRIVATE, with its size */
    size_t priv_len;
    char *objauth_enc; /* NUL-terminated "iv:tag:ctext" */
};

/* 0 when t's module is tpm2-pkcs11 (by CK_INFO: manufacturer and description); else -1
 * with err "token 'x' (manufacturer) cannot attest: not a tpm2-pkcs11 token". */
int kb_tpm_token_check(const kb_token *t, kb_err *err);

/* Reads the three attributes of the private key obj through s (logged in). */
int kb_tpm_blobs_read(kb_session *s, CK_OBJECT_HANDLE obj, struct kb_tpm_blobs *out, kb_err *err);
void kb_tpm_blobs_free(struct kb_tpm_blobs *b);

/* The private key object of k (by class, CKA_ID and label) as s sees it now: handles from
 * an earlier session are not reused. */
int kb_tpm_key_find(kb_session *s, const kb_key *k, CK_OBJECT_HANDLE *out, kb_err *err);

#endif
