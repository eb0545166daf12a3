/* SPDX-License-Identifier: Apache-2.0 */
/* TPM2_MakeCredential for an RSA EK. GnuTLS gives SHA-256 and HMAC; nettle gives AES-128
 * in full-block CFB (GnuTLS 3.7's only CFB is CFB8, which the TPM does not use) and, with
 * GMP, the raw RSA public operation. OAEP's encoding is written here because neither
 * GnuTLS 3.7.9 nor nettle 3.8 has RSA-OAEP encryption (RFC 8017, 7.1.1). */
#include "config.h"

#include "src/attest/credential.h"

#include <stdint.h>
#include <string.h>

#include <gmp.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <nettle/aes.h>
#include <nettle/bignum.h>
#include <nettle/cfb.h>

#include "src/util/secret.h"

#define HLEN 32 /* SHA-256 */

/* TPM 2.0 Part 1, 24.4: the seed is OAEP-encrypted under this label, NUL included. */
static const unsigned char IDENTITY[] = "IDENTITY";

static void be32(unsigned char *q, uint32_t v)
{
    q[0] = (unsigned char)(v >> 24);
    q[1] = (unsigned char)(v >> 16);
    q[2] = (unsigned char)(v >> 8);
    q[3] = (unsigned char)v;
}

int kb_kdfa_sha256(const unsigned char *key, size_t key_len, const char *label,
                   const unsigned char *u, size_t u_len, const unsigned char *v, size_t v_len,
                   unsigned bits, unsigned char *out, kb_err *err)
{
    size_t want = bits / 8, done = 0;
    unsigned char ctr[4], nbits[4], block[HLEN];
    be32(nbits, bits);
    for (uint32_t i = 1; done < want; i++) {
        gnutls_hmac_hd_t h;
        be32(ctr, i);
        if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, key, key_len) < 0)
            return kb_err_set(err, "credential: HMAC-SHA256 could not be set up");
        /* label with its terminating NUL, as the TPM hashes it */
        int rc = gnutls_hmac(h, ctr, 4) | gnutls_hmac(h, label, strlen(label) + 1);
        if (u_len)
            rc |= gnutls_hmac(h, u, u_len);
        if (v_len)
            rc |= gnutls_hmac(h, v, v_len);
        rc |= gnutls_hmac(h, nbits, 4);
        gnutls_hmac_deinit(h, block);
        if (rc != 0)
            return kb_err_set(err, "credential: HMAC-SHA256 failed");
        size_t n = want - done < HLEN ? want - done : HLEN;
        memcpy(out + done, block, n);
        done += n;
    }
    kb_memzero(block, sizeof(block));
    return 0;
}

/* MGF1 with SHA-256: out ^= MGF1(seed, n), the masking OAEP applies both ways. */
static int mgf1_xor(const unsigned char *seed, size_t seed_len, unsigned char *out, size_t n)
{
    unsigned char block[HLEN], ctr[4];
    for (uint32_t i = 0; n > 0; i++) {
        gnutls_hash_hd_t h;
        be32(ctr, i);
        if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
            return -1;
        int rc = gnutls_hash(h, seed, seed_len) | gnutls_hash(h, ctr, 4);
        gnutls_hash_deinit(h, block);
        if (rc != 0)
            return -1;
        size_t k = n < HLEN ? n : HLEN;
        for (size_t j = 0; j < k; j++)
            out[j] ^= block[j];
        out += k;
        n -= k;
    }
    return 0;
}

/* RSAES-OAEP-ENCRYPT (RFC 8017, 7.1.1) with SHA-256 and MGF1-SHA-256: em is k bytes,
 * 0x00 || maskedSeed || maskedDB, then raised to e mod n. */
static int oaep_encrypt(const unsigned char *n, size_t k, const unsigned char *e, size_t e_len,
                        const unsigned char *label, size_t label_len, const unsigned char *m,
                        size_t m_len, const unsigned char oaep_seed[HLEN], unsigned char *out,
                        kb_err *err)
{
    unsigned char em[KB_CRED_RSA_MAX];
    unsigned char *seed = em + 1, *db = em + 1 + HLEN;
    size_t db_len = k - HLEN - 1;
    if (k < 2 * HLEN + 2 + m_len)
        return kb_err_set(err, "credential: the EK's %zu-byte modulus is too small for OAEP", k);
    memset(em, 0, k);
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, label, label_len, db) < 0)
        return kb_err_set(err, "credential: SHA-256 failed");
    db[db_len - m_len - 1] = 0x01; /* the end of PS */
    memcpy(db + db_len - m_len, m, m_len);
    memcpy(seed, oaep_seed, HLEN);
    int rc = mgf1_xor(seed, HLEN, db, db_len);
    rc |= mgf1_xor(db, db_len, seed, HLEN);
    if (rc != 0) {
        kb_memzero(em, sizeof(em));
        return kb_err_set(err, "credential: SHA-256 failed");
    }

    mpz_t mn, me, mc;
    mpz_inits(mn, me, mc, NULL);
    nettle_mpz_set_str_256_u(mn, k, n);
    nettle_mpz_set_str_256_u(me, e_len, e);
    nettle_mpz_set_str_256_u(mc, k, em);
    kb_memzero(em, sizeof(em));
    rc = 0;
    /* An even or tiny modulus is no RSA key: refuse rather than "encrypt". */
    if (mpz_even_p(mn) || mpz_sizeinbase(mn, 2) != k * 8 || mpz_cmp_ui(me, 3) < 0)
        rc = kb_err_set(err, "credential: the EK's RSA key is not a valid public key");
    else {
        mpz_powm(mc, mc, me, mn);
        nettle_mpz_get_str_256(k, out, mc);
    }
    mpz_clears(mn, me, mc, NULL);
    return rc;
}

int kb_credential_make(const unsigned char *n, size_t n_len, const unsigned char *e, size_t e_len,
                       const unsigned char *name, size_t name_len, const unsigned char *secret,
                       size_t secret_len, const struct kb_cred_random *rnd,
                       struct kb_credential *out, kb_err *err)
{
    unsigned char sym_key[16], hmac_key[HLEN], iv[16] = {0};
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (n_len == 0 || n_len > KB_CRED_RSA_MAX || e_len == 0 || e_len > 8)
        return kb_err_set(err, "credential: an RSA key of %zu bytes is not accepted", n_len);
    if (secret_len == 0 || secret_len > KB_CRED_SECRET_MAX)
        return kb_err_set(err, "credential: a %zu-byte secret is not 1 to %d bytes", secret_len,
                          KB_CRED_SECRET_MAX);
    if (name_len < 2 || name_len > 2 + 64)
        return kb_err_set(err, "credential: a %zu-byte name is not a TPM name", name_len);

    if (oaep_encrypt(n, n_len, e, e_len, IDENTITY, sizeof(IDENTITY), rnd->seed, KB_CRED_SEED_LEN,
                     rnd->oaep_seed, out->secret, err) < 0)
        goto done;
    out->secret_len = n_len;

    /* The credential, as a TPM2B_DIGEST, encrypted under a key bound to the AK's name:
     * the TPM only decrypts it for an object with that name. */
    if (kb_kdfa_sha256(rnd->seed, KB_CRED_SEED_LEN, "STORAGE", name, name_len, NULL, 0, 128,
                       sym_key, err) < 0 ||
        kb_kdfa_sha256(rnd->seed, KB_CRED_SEED_LEN, "INTEGRITY", NULL, 0, NULL, 0, 256, hmac_key,
                       err) < 0)
        goto done;
    unsigned char *hmac = out->blob + 2, *enc = out->blob + 2 + HLEN;
    unsigned char plain[2 + KB_CRED_SECRET_MAX];
    plain[0] = (unsigned char)(secret_len >> 8);
    plain[1] = (unsigned char)secret_len;
    memcpy(plain + 2, secret, secret_len);
    struct aes128_ctx aes;
    aes128_set_encrypt_key(&aes, sym_key);
    cfb_encrypt(&aes, (nettle_cipher_func *)aes128_encrypt, AES_BLOCK_SIZE, iv, 2 + secret_len, enc,
                plain);
    kb_memzero(&aes, sizeof(aes));
    kb_memzero(plain, sizeof(plain));

    /* The outer HMAC covers the ciphertext and the name: a blob moved to another object
     * fails the TPM's integrity check before anything is decrypted. */
    gnutls_hmac_hd_t h;
    if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, hmac_key, sizeof(hmac_key)) < 0) {
        kb_err_set(err, "credential: HMAC-SHA256 could not be set up");
        goto done;
    }
    int hrc = gnutls_hmac(h, enc, 2 + secret_len) | gnutls_hmac(h, name, name_len);
    gnutls_hmac_deinit(h, hmac);
    if (hrc != 0) {
        kb_err_set(err, "credential: HMAC-SHA256 failed");
        goto done;
    }
    out->blob[0] = 0;
    out->blob[1] = HLEN;
    out->blob_len = 2 + HLEN + 2 + secret_len;
    rc = 0;
done:
    kb_memzero(sym_key, sizeof(sym_key));
    kb_memzero(hmac_key, sizeof(hmac_key));
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int kb_credential_make_for_cert(const unsigned char *ek_der, size_t ek_len,
                                const unsigned char *name, size_t name_len,
                                const unsigned char *secret, size_t secret_len,
                                const struct kb_cred_random *rnd, struct kb_credential *out,
                                kb_err *err)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t pk = NULL;
    gnutls_datum_t der = {(unsigned char *)ek_der, (unsigned)ek_len}, m = {0}, e = {0};
    unsigned bits = 0;
    int rc = -1;
    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_pubkey_init(&pk) < 0) {
        kb_err_set(err, "credential: out of memory");
        goto done;
    }
    if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_pubkey_import_x509(pk, crt, 0) < 0) {
        kb_err_set(err, "credential: the EK certificate cannot be parsed");
        goto done;
    }
    if (gnutls_pubkey_get_pk_algorithm(pk, &bits) != GNUTLS_PK_RSA || bits != 2048) {
        kb_err_set(err, "credential: the EK certificate's key is not RSA-2048 (only the L-1 EK "
                        "is supported)");
        goto done;
    }
    if (gnutls_pubkey_export_rsa_raw2(pk, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ) < 0) {
        kb_err_set(err, "credential: the EK certificate's RSA key cannot be read");
        goto done;
    }
    rc = kb_credential_make(m.data, m.size, e.data, e.size, name, name_len, secret, secret_len, rnd,
                            out, err);
done:
    gnutls_free(m.data);
    gnutls_free(e.data);
    if (pk)
        gnutls_pubkey_deinit(pk);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    return rc;
}
