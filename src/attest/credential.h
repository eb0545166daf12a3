/* SPDX-License-Identifier: Apache-2.0 */
/* TPM2_MakeCredential in software, for an RSA-2048 EK (TCG template L-1).
 *
 * The verifier seals a secret to (the EK certificate's public key, the AK's Name): only
 * the TPM holding that EK, with that AK loaded, gets it back from TPM2_ActivateCredential
 * (TPM 2.0 Part 1, "Credential Protection"). The construction: a seed encrypted with
 * RSA-OAEP-SHA256 under the label "IDENTITY\0"; symKey = KDFa(SHA-256, seed, "STORAGE",
 * name, -, 128) and AES-128 in full-block CFB over the TPM2B_DIGEST of the secret;
 * hmacKey = KDFa(SHA-256, seed, "INTEGRITY", -, -, 256) and HMAC-SHA256 over the
 * ciphertext and the name. The randomness (the seed and OAEP's own seed) is passed in, so
 * tests are deterministic; the caller draws it from gnutls_rnd(GNUTLS_RND_RANDOM). Pure. */
#ifndef KB_ATTEST_CREDENTIAL_H
#define KB_ATTEST_CREDENTIAL_H

#include <stddef.h>

#include "src/util/err.h"

#define KB_CRED_SEED_LEN 32   /* SHA-256's digest size: the EK's nameAlg */
#define KB_CRED_SECRET_MAX 32 /* a credential is at most a digest */
#define KB_CRED_RSA_MAX 512   /* the largest EK modulus accepted, in bytes */

/* What ActivateCredential takes: the contents of TPM2B_ID_OBJECT (credentialBlob) and of
 * TPM2B_ENCRYPTED_SECRET (secret), without their outer size fields. */
struct kb_credential {
    unsigned char blob[2 + 32 + 2 + KB_CRED_SECRET_MAX]; /* TPM2B hmac || encIdentity */
    size_t blob_len;
    unsigned char secret[KB_CRED_RSA_MAX];
    size_t secret_len;
};

struct kb_cred_random {
    unsigned char seed[KB_CRED_SEED_LEN];      /* the KDF seed, OAEP-encrypted */
    unsigned char oaep_seed[KB_CRED_SEED_LEN]; /* OAEP's own random seed */
};

/* Makes the credential for an RSA EK public key (modulus n, exponent e, big-endian) and
 * the AK's Name (nameAlg || digest). secret: 1..KB_CRED_SECRET_MAX bytes. */
int kb_credential_make(const unsigned char *n, size_t n_len, const unsigned char *e, size_t e_len,
                       const unsigned char *name, size_t name_len, const unsigned char *secret,
                       size_t secret_len, const struct kb_cred_random *rnd,
                       struct kb_credential *out, kb_err *err);

/* The same for the public key of an EK certificate (DER): refuses anything but RSA-2048. */
int kb_credential_make_for_cert(const unsigned char *ek_der, size_t ek_len,
                                const unsigned char *name, size_t name_len,
                                const unsigned char *secret, size_t secret_len,
                                const struct kb_cred_random *rnd, struct kb_credential *out,
                                kb_err *err);

/* KDFa (TPM 2.0 Part 1, 11.4.10.2) with HMAC-SHA256: bits/8 bytes into out. */
int kb_kdfa_sha256(const unsigned char *key, size_t key_len, const char *label,
                   const unsigned char *u, size_t u_len, const unsigned char *v, size_t v_len,
                   unsigned bits, unsigned char *out, kb_err *err);

#endif
