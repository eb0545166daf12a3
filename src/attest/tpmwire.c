/* SPDX-License-Identifier: Apache-2.0 */
/* TPM 2.0 Part 2 structures, read with a cursor that refuses to step past the end: a
 * field that does not fit is an error naming the structure and the field, never a read
 * beyond len (the input comes from a device or a file, both untrusted). */
#include "config.h"

#include "src/attest/tpmwire.h"

#include <stdbool.h>
#include <string.h>

#include <gnutls/crypto.h>

struct rd {
    const unsigned char *p;
    size_t len, pos;
    const char *what; /* the structure, for messages */
    kb_err *err;
};

static int short_of(struct rd *r, const char *field)
{
    return kb_err_set(r->err, "%s: %s runs past the end (%zu bytes)", r->what, field, r->len);
}

static int u16(struct rd *r, const char *field, uint16_t *v)
{
    if (r->len - r->pos < 2)
        return short_of(r, field);
    *v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
    r->pos += 2;
    return 0;
}

static int u32(struct rd *r, const char *field, uint32_t *v)
{
    if (r->len - r->pos < 4)
        return short_of(r, field);
    const unsigned char *q = r->p + r->pos;
    *v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    r->pos += 4;
    return 0;
}

static int u64(struct rd *r, const char *field, uint64_t *v)
{
    uint32_t hi = 0, lo = 0;
    if (u32(r, field, &hi) < 0 || u32(r, field, &lo) < 0)
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* A TPM2B: its size, at most max, then that many bytes (pointed at, not copied). */
static int tpm2b(struct rd *r, const char *field, size_t max, const unsigned char **b, size_t *n)
{
    uint16_t size = 0;
    if (u16(r, field, &size) < 0)
        return -1;
    if (size > max)
        return kb_err_set(r->err, "%s: %s is %u bytes, more than its type's %zu", r->what, field,
                          size, max);
    if (r->len - r->pos < size)
        return short_of(r, field);
    *b = r->p + r->pos;
    *n = size;
    r->pos += size;
    return 0;
}

static int at_end(struct rd *r)
{
    if (r->pos != r->len)
        return kb_err_set(r->err, "%s: %zu bytes left over after the structure", r->what,
                          r->len - r->pos);
    return 0;
}

static size_t digest_len(uint16_t alg)
{
    switch (alg) {
    case KB_TPM_ALG_SHA256:
        return 32;
    case KB_TPM_ALG_SHA384:
        return 48;
    case KB_TPM_ALG_SHA512:
        return 64;
    default:
        return 0; /* SHA-1 names are refused: a collision would forge a name */
    }
}

static gnutls_digest_algorithm_t gnutls_digest(uint16_t alg)
{
    switch (alg) {
    case KB_TPM_ALG_SHA256:
        return GNUTLS_DIG_SHA256;
    case KB_TPM_ALG_SHA384:
        return GNUTLS_DIG_SHA384;
    case KB_TPM_ALG_SHA512:
        return GNUTLS_DIG_SHA512;
    default:
        return GNUTLS_DIG_UNKNOWN;
    }
}

/* The largest TPM2B_NAME, TPM2B_DATA and TPM2B_DIGEST a TPM with SHA-512 marshals. */
#define NAME_MAX_ (2 + 64)
#define DATA_MAX 64
#define DIGEST_MAX 64
#define ECC_COORD_MAX 66 /* P-521 */
#define RSA_KEY_MAX 512  /* RSA-4096 */

/* TPMT_SYM_DEF_OBJECT: an algorithm, then its key size and mode unless NULL. */
static int sym_def(struct rd *r, struct kb_tpm_public *o)
{
    if (u16(r, "symmetric.algorithm", &o->sym_alg) < 0)
        return -1;
    if (o->sym_alg == KB_TPM_ALG_NULL)
        return 0;
    if (u16(r, "symmetric.keyBits", &o->sym_bits) < 0 || u16(r, "symmetric.mode", &o->sym_mode) < 0)
        return -1;
    return 0;
}

/* TPMT_RSA_SCHEME / TPMT_ECC_SCHEME: which schemes carry a hash (ECDAA also a count). */
static int scheme(struct rd *r, struct kb_tpm_public *o)
{
    if (u16(r, "scheme", &o->scheme) < 0)
        return -1;
    switch (o->scheme) {
    case KB_TPM_ALG_NULL:
    case KB_TPM_ALG_RSAES:
        return 0;
    case KB_TPM_ALG_RSASSA:
    case KB_TPM_ALG_RSAPSS:
    case KB_TPM_ALG_OAEP:
    case KB_TPM_ALG_ECDSA:
    case 0x0019: /* ECDH */
    case 0x001B: /* SM2 */
    case 0x001C: /* ECSCHNORR */
    case 0x001D: /* ECMQV */
        return u16(r, "scheme.hashAlg", &o->scheme_hash);
    case 0x001A: { /* ECDAA: hashAlg, count */
        uint16_t count = 0;
        if (u16(r, "scheme.hashAlg", &o->scheme_hash) < 0)
            return -1;
        return u16(r, "scheme.count", &count);
    }
    default:
        return kb_err_set(r->err, "%s: unknown scheme 0x%04x", r->what, o->scheme);
    }
}

int kb_tpm_public_decode(const unsigned char *p, size_t len, struct kb_tpm_public *o, kb_err *err)
{
    struct rd r = {p, len, 0, "TPMT_PUBLIC", err};
    const unsigned char *policy;
    size_t policy_len;
    memset(o, 0, sizeof(*o));
    if (u16(&r, "type", &o->type) < 0 || u16(&r, "nameAlg", &o->name_alg) < 0 ||
        u32(&r, "objectAttributes", &o->attributes) < 0 ||
        tpm2b(&r, "authPolicy", DIGEST_MAX, &policy, &policy_len) < 0)
        return -1;
    if (o->type != KB_TPM_ALG_RSA && o->type != KB_TPM_ALG_ECC)
        return kb_err_set(err, "TPMT_PUBLIC: type 0x%04x is not an RSA or ECC key", o->type);
    if (digest_len(o->name_alg) == 0)
        return kb_err_set(err, "TPMT_PUBLIC: nameAlg 0x%04x is not SHA-256, SHA-384 or SHA-512",
                          o->name_alg);
    if (sym_def(&r, o) < 0 || scheme(&r, o) < 0)
        return -1;
    if (o->type == KB_TPM_ALG_RSA) {
        if (u16(&r, "keyBits", &o->rsa_bits) < 0 || u32(&r, "exponent", &o->rsa_exponent) < 0 ||
            tpm2b(&r, "unique.rsa", RSA_KEY_MAX, &o->n, &o->n_len) < 0)
            return -1;
    } else {
        uint16_t kdf = 0, kdf_hash;
        if (u16(&r, "curveID", &o->curve) < 0 || u16(&r, "kdf.scheme", &kdf) < 0)
            return -1;
        if (kdf != KB_TPM_ALG_NULL && u16(&r, "kdf.hashAlg", &kdf_hash) < 0)
            return -1;
        if (tpm2b(&r, "unique.ecc.x", ECC_COORD_MAX, &o->x, &o->x_len) < 0 ||
            tpm2b(&r, "unique.ecc.y", ECC_COORD_MAX, &o->y, &o->y_len) < 0)
            return -1;
    }
    return at_end(&r);
}

int kb_tpm_attest_decode(const unsigned char *p, size_t len, struct kb_tpm_attest *o, kb_err *err)
{
    struct rd r = {p, len, 0, "TPMS_ATTEST", err};
    uint32_t magic = 0;
    uint16_t type = 0;
    memset(o, 0, sizeof(*o));
    if (u32(&r, "magic", &magic) < 0 || u16(&r, "type", &type) < 0)
        return -1;
    /* The magic is what a restricted key refuses to sign over outside the TPM's own
     * commands: without it the bytes were not made by the TPM. */
    if (magic != KB_TPM_GENERATED_VALUE)
        return kb_err_set(err, "TPMS_ATTEST: magic 0x%08x is not TPM_GENERATED_VALUE", magic);
    if (type != KB_TPM_ST_ATTEST_CERTIFY)
        return kb_err_set(err, "TPMS_ATTEST: type 0x%04x is not a TPM2_Certify (0x8017)", type);
    if (tpm2b(&r, "qualifiedSigner", NAME_MAX_, &o->signer, &o->signer_len) < 0 ||
        tpm2b(&r, "extraData", DATA_MAX, &o->extra, &o->extra_len) < 0 ||
        u64(&r, "clockInfo.clock", &o->clock) < 0 ||
        u32(&r, "clockInfo.resetCount", &o->reset_count) < 0 ||
        u32(&r, "clockInfo.restartCount", &o->restart_count) < 0)
        return -1;
    if (r.len - r.pos < 1)
        return short_of(&r, "clockInfo.safe");
    o->safe = r.p[r.pos++];
    if (u64(&r, "firmwareVersion", &o->firmware_version) < 0 ||
        tpm2b(&r, "attested.certify.name", NAME_MAX_, &o->name, &o->name_len) < 0 ||
        tpm2b(&r, "attested.certify.qualifiedName", NAME_MAX_, &o->qualified_name,
              &o->qualified_name_len) < 0)
        return -1;
    return at_end(&r);
}

int kb_tpm_signature_decode(const unsigned char *p, size_t len, struct kb_tpm_signature *o,
                            kb_err *err)
{
    struct rd r = {p, len, 0, "TPMT_SIGNATURE", err};
    memset(o, 0, sizeof(*o));
    if (u16(&r, "sigAlg", &o->alg) < 0)
        return -1;
    switch (o->alg) {
    case KB_TPM_ALG_ECDSA:
        if (u16(&r, "hash", &o->hash) < 0 ||
            tpm2b(&r, "signatureR", ECC_COORD_MAX, &o->r, &o->r_len) < 0 ||
            tpm2b(&r, "signatureS", ECC_COORD_MAX, &o->s, &o->s_len) < 0)
            return -1;
        break;
    case KB_TPM_ALG_RSASSA:
    case KB_TPM_ALG_RSAPSS:
        if (u16(&r, "hash", &o->hash) < 0 || tpm2b(&r, "sig", RSA_KEY_MAX, &o->r, &o->r_len) < 0)
            return -1;
        break;
    default:
        /* HMAC, ECDAA, SM2, Schnorr: no AK keybound makes signs with them. */
        return kb_err_set(err, "TPMT_SIGNATURE: sigAlg 0x%04x is not ECDSA, RSASSA or RSAPSS",
                          o->alg);
    }
    return at_end(&r);
}

/* nameAlg || H_nameAlg(a || b): a Name and a qualified name have this shape. */
static int alg_hash2(uint16_t alg, const unsigned char *a, size_t a_len, const unsigned char *b,
                     size_t b_len, unsigned char *out, size_t *out_len, kb_err *err)
{
    size_t dl = digest_len(alg);
    gnutls_hash_hd_t h;
    if (dl == 0)
        return kb_err_set(err, "TPM name: hash 0x%04x is not SHA-256, SHA-384 or SHA-512", alg);
    if (gnutls_hash_init(&h, gnutls_digest(alg)) < 0)
        return kb_err_set(err, "TPM name: the hash could not be set up");
    if ((a_len && gnutls_hash(h, a, a_len) < 0) || (b_len && gnutls_hash(h, b, b_len) < 0)) {
        gnutls_hash_deinit(h, NULL);
        return kb_err_set(err, "TPM name: hashing failed");
    }
    out[0] = (unsigned char)(alg >> 8);
    out[1] = (unsigned char)alg;
    gnutls_hash_deinit(h, out + 2);
    *out_len = 2 + dl;
    return 0;
}

int kb_tpm_name(const unsigned char *pub, size_t pub_len, unsigned char *out, size_t *out_len,
                kb_err *err)
{
    if (pub_len < 4)
        return kb_err_set(err, "TPMT_PUBLIC: %zu bytes, too short to have a nameAlg", pub_len);
    /* Hash the bytes as given: a re-marshalled copy could differ from what the TPM hashed. */
    uint16_t alg = (uint16_t)(pub[2] << 8 | pub[3]);
    return alg_hash2(alg, pub, pub_len, NULL, 0, out, out_len, err);
}

int kb_tpm_qualified_name(const unsigned char *parent_qn, size_t parent_qn_len,
                          const unsigned char *name, size_t name_len, unsigned char *out,
                          size_t *out_len, kb_err *err)
{
    if (name_len < 2)
        return kb_err_set(err, "TPM name: %zu bytes, too short to have a nameAlg", name_len);
    uint16_t alg = (uint16_t)(name[0] << 8 | name[1]);
    return alg_hash2(alg, parent_qn, parent_qn_len, name, name_len, out, out_len, err);
}

void kb_tpm_handle_qn(uint32_t handle, unsigned char out[4])
{
    out[0] = (unsigned char)(handle >> 24);
    out[1] = (unsigned char)(handle >> 16);
    out[2] = (unsigned char)(handle >> 8);
    out[3] = (unsigned char)handle;
}

/* TCG EK Credential Profile, template L-1: the EK's authPolicy is PolicySecret(TPM_RH_ENDORSEMENT).
 */
static const unsigned char ek_l1_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

static unsigned char *put16(unsigned char *q, uint16_t v)
{
    q[0] = (unsigned char)(v >> 8);
    q[1] = (unsigned char)v;
    return q + 2;
}

int kb_tpm_ek_rsa_template(const unsigned char *n, size_t n_len, unsigned char *out,
                           size_t *out_len, kb_err *err)
{
    if (n_len != 256)
        return kb_err_set(err, "EK: a %zu-byte modulus is not RSA-2048 (template L-1)", n_len);
    unsigned char *q = out;
    q = put16(q, KB_TPM_ALG_RSA);
    q = put16(q, KB_TPM_ALG_SHA256);
    /* fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt */
    q = put16(q, 0x0003);
    q = put16(q, 0x00B2);
    q = put16(q, sizeof(ek_l1_policy));
    memcpy(q, ek_l1_policy, sizeof(ek_l1_policy));
    q += sizeof(ek_l1_policy);
    q = put16(q, KB_TPM_ALG_AES);
    q = put16(q, 128);
    q = put16(q, KB_TPM_ALG_CFB);
    q = put16(q, KB_TPM_ALG_NULL); /* scheme */
    q = put16(q, 2048);
    q = put16(q, 0); /* exponent 0: the default 65537 */
    q = put16(q, 0);
    q = put16(q, (uint16_t)n_len);
    memcpy(q, n, n_len);
    q += n_len;
    *out_len = (size_t)(q - out);
    return 0;
}
