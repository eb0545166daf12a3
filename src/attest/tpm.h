/* SPDX-License-Identifier: Apache-2.0 */
/* The TPM side of attestation: the only code that speaks ESAPI (libtss2-esys).
 *
 * One kb_tpm is one connection to the TPM tpm2-pkcs11 uses (its TCTI chosen the way the
 * module chooses it), which must go through a resource manager (/dev/tpmrm0 or
 * tpm2-abrmd): the module holds its own connection in the same process. It reads the
 * RSA-2048 EK certificate from NV, finds or makes the EK (TCG template L-1), loads the
 * attestation key (AK, ECC P-256, restricted, a child of the EK) kept in keybound's state
 * directory or makes one, activates the verifier's credential, unseals the token's
 * wrapping key, loads the key and certifies it with the AK. Every object and session it
 * loads is flushed by the step that loaded it or by kb_tpm_close, on every path. An auth
 * failure is reported, never retried: each one counts toward the TPM's device-wide
 * dictionary-attack lockout; after one (but a wrong PIN, which the caller handles as the
 * token's rejection) kb_tpm_open refuses for the rest of the process. */
#ifndef KB_ATTEST_TPM_H
#define KB_ATTEST_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "src/attest/credential.h"
#include "src/util/err.h"
#include "src/util/secret.h"

#define KB_TPM_EK_CERT_RSA 0x01C00002u /* NV index of the RSA-2048 (L-1) EK certificate */
#define KB_TPM_EK_HANDLE 0x81010001u   /* where the RSA EK is persisted, when it is */

struct kb_tpm;

/* tcti: the token's tcti setting from the store, or NULL; then $TPM2_PKCS11_TCTI, then
 * tpm2-abrmd and /dev/tpmrm0. A TCTI without a resource manager (/dev/tpm0, swtpm:,
 * mssim:) is refused, and so is none answering: "attestation needs a TPM resource manager". */
int kb_tpm_open(const char *tcti, struct kb_tpm **out, kb_err *err);
/* After an auth failure that is not a wrong PIN (the store does not match the TPM, an
 * endorsement auth that is not empty): every later kb_tpm_open in this process refuses. */
void kb_tpm_refuse_auth(void);
/* Flushes what is still loaded and closes the connection. NULL is fine. */
void kb_tpm_close(struct kb_tpm *t);

/* The EK certificate (DER, malloc'd) and the NV index it was read from. */
int kb_tpm_ek_cert(struct kb_tpm *t, unsigned char **der, size_t *len, uint32_t *index,
                   kb_err *err);

/* Loads the EK (the persistent one when it is the certificate's key, else made from the
 * template) and the AK; the AK is made and written to the state directory when there is
 * none, or none for this EK certificate, or the TPM refuses the one there. ak_public:
 * the AK's TPMT_PUBLIC (malloc'd). */
int kb_tpm_ak(struct kb_tpm *t, const unsigned char *ek_der, size_t ek_len,
              unsigned char **ak_public, size_t *ak_public_len, kb_err *err);

/* TPM2_ActivateCredential with the AK and the EK: the secret in out (at most
 * KB_CRED_SECRET_MAX bytes). */
int kb_tpm_activate(struct kb_tpm *t, const struct kb_credential *cred, unsigned char *out,
                    size_t *out_len, kb_err *err);

/* Unseals the seal object (TPM2B_PUBLIC, TPM2B_PRIVATE) under the persistent primary with
 * auth, through a salted session with response encryption. 0, -1 with err, or 1 with err
 * when the TPM refused auth (the PIN it was derived from is wrong). */
int kb_tpm_unseal(struct kb_tpm *t, uint32_t primary, const unsigned char *pub, size_t pub_len,
                  const unsigned char *priv, size_t priv_len, const kb_secret *auth, kb_secret *out,
                  kb_err *err);

struct kb_tpm_certified {
    unsigned char *attest; /* TPMS_ATTEST as signed */
    size_t attest_len;
    unsigned char *signature; /* marshalled TPMT_SIGNATURE */
    size_t signature_len;
    unsigned char *key_public; /* the key's TPMT_PUBLIC */
    size_t key_public_len;
};

/* Loads the key's blobs under primary and certifies it with the AK (kb_tpm_ak first),
 * qualifying data q; the key's auth goes in a salted session. what names the key. */
int kb_tpm_certify(struct kb_tpm *t, uint32_t primary, const unsigned char *pub, size_t pub_len,
                   const unsigned char *priv, size_t priv_len, const kb_secret *auth,
                   const unsigned char *q, size_t q_len, const char *what,
                   struct kb_tpm_certified *out, kb_err *err);
void kb_tpm_certified_free(struct kb_tpm_certified *c);

#endif
