/* SPDX-License-Identifier: Apache-2.0 */
/* The attestation verifier (src/attest/verify.h), the evidence's DER (evidence.h) and the
 * software MakeCredential (credential.h), on evidence made here in software with GnuTLS:
 * a test TPM vendor CA and an RSA-2048 EK certificate from it, an ECDSA P-256 AK and a
 * P-256 device key with their TPMT_PUBLIC areas, a TPMS_ATTEST answering the challenge,
 * signed by the AK. Every check of the verifier is shown to refuse, with its reason, the
 * evidence that breaks it; the credential is opened the way a TPM opens it (RSA-OAEP with
 * the EK's private key, KDFa, the HMAC, AES-128-CFB), written here apart from the
 * library's code so that the two would have to be wrong the same way to agree. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gmp.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <nettle/aes.h>
#include <nettle/bignum.h>
#include <nettle/cfb.h>
#include <nettle/hmac.h>
#include <nettle/rsa.h>
#include <nettle/sha2.h>

#include "policy/facts.h"
#include "src/attest/credential.h"
#include "src/attest/evidence.h"
#include "src/attest/tpmwire.h"
#include "src/attest/verify.h"

/* What the test made once: keys, certificates, public areas. */
static struct {
    gnutls_x509_privkey_t ca_key, ca2_key, ek_key, ak_key, dev_key, other_key;
    gnutls_x509_crt_t ca, ca2;
    unsigned char ek_der[4096], ek2_der[4096]; /* EK cert from the CA; the same key from CA 2 */
    size_t ek_len, ek2_len;
    unsigned char ak_pub[128], dev_pub[128];
    size_t ak_pub_len, dev_pub_len;
    gnutls_pubkey_t dev_pk, other_pk;
    struct kb_attest_anchors anchors;
} t;

static void gen(gnutls_x509_privkey_t *k, gnutls_pk_algorithm_t alg, unsigned bits)
{
    assert_int_equal(gnutls_x509_privkey_init(k), 0);
    assert_int_equal(gnutls_x509_privkey_generate(*k, alg, bits, 0), 0);
}

static void crt_basics(gnutls_x509_crt_t c, gnutls_x509_privkey_t key, unsigned serial)
{
    unsigned char sn[2] = {0x10, (unsigned char)serial};
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(c, sn, sizeof(sn)), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(c, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_key(c, key), 0);
}

static void make_ca(gnutls_x509_crt_t *ca, gnutls_x509_privkey_t *key, unsigned serial)
{
    gen(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    assert_int_equal(gnutls_x509_crt_init(ca), 0);
    crt_basics(*ca, *key, serial);
    /* Both CAs have the same name: the verifier must check signatures, not names. */
    assert_int_equal(gnutls_x509_crt_set_dn(*ca, "CN=test TPM vendor CA", NULL), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(*ca, 1, -1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(*ca, GNUTLS_KEY_KEY_CERT_SIGN), 0);
    assert_int_equal(gnutls_x509_crt_sign2(*ca, *ca, *key, GNUTLS_DIG_SHA256, 0), 0);
}

/* An EK certificate as the TCG profile has it: empty subject, the TPM's manufacturer,
 * model and version in a directoryName subjectAltName. */
static size_t make_ek_cert(gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key, unsigned char *out)
{
    gnutls_x509_crt_t c;
    /* Name ::= SEQUENCE OF SET OF { OID 2.23.133.2.n, UTF8String }, in DER by hand: GnuTLS 3.7
     * cannot write a directoryName subjectAltName. */
    static const char *values[] = {"id:00001014", "swtpm", "id:20191023"};
    unsigned char name[128], *q = name + 2;
    for (unsigned i = 0; i < 3; i++) {
        size_t n = strlen(values[i]);
        unsigned char oid[] = {0x06, 0x05, 0x67, 0x81, 0x05, 0x02, (unsigned char)(i + 1)};
        *q++ = 0x31, *q++ = (unsigned char)(2 + sizeof(oid) + 2 + n);
        *q++ = 0x30, *q++ = (unsigned char)(sizeof(oid) + 2 + n);
        memcpy(q, oid, sizeof(oid)), q += sizeof(oid);
        *q++ = 0x0c, *q++ = (unsigned char)n;
        memcpy(q, values[i], n), q += n;
    }
    name[0] = 0x30, name[1] = (unsigned char)(q - name - 2);
    size_t name_len = (size_t)(q - name);
    /* GeneralNames ::= SEQUENCE { directoryName [4] EXPLICIT Name } */
    unsigned char san[132] = {0x30, (unsigned char)(name_len + 2), 0xa4, (unsigned char)name_len};
    memcpy(san + 4, name, name_len);
    assert_int_equal(gnutls_x509_crt_init(&c), 0);
    crt_basics(c, t.ek_key, 7);
    assert_int_equal(gnutls_x509_crt_set_extension_by_oid(c, "2.5.29.17", san, name_len + 4, 1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_ENCIPHERMENT), 0);
    assert_int_equal(gnutls_x509_crt_sign2(c, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
    size_t len = 4096;
    assert_int_equal(gnutls_x509_crt_export(c, GNUTLS_X509_FMT_DER, out, &len), 0);
    gnutls_x509_crt_deinit(c);
    return len;
}

static unsigned char *put16(unsigned char *q, unsigned v)
{
    *q++ = (unsigned char)(v >> 8);
    *q++ = (unsigned char)v;
    return q;
}

static unsigned char *put32(unsigned char *q, uint32_t v)
{
    q = put16(q, v >> 16);
    return put16(q, v & 0xffff);
}

/* A TPM2B of n bytes, left-padded with zeros to size. */
static unsigned char *put2b(unsigned char *q, const unsigned char *b, size_t n, size_t size)
{
    q = put16(q, (unsigned)size);
    memset(q, 0, size - n);
    memcpy(q + size - n, b, n);
    return q + size;
}

static gnutls_pubkey_t pubkey_of(gnutls_x509_privkey_t k)
{
    gnutls_privkey_t pk;
    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_privkey_init(&pk), 0);
    assert_int_equal(gnutls_privkey_import_x509(pk, k, 0), 0);
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_privkey(pub, pk, 0, 0), 0);
    gnutls_privkey_deinit(pk);
    return pub;
}

/* The TPMT_PUBLIC a TPM marshals for a P-256 key with these attributes and scheme. */
static size_t ecc_public(gnutls_x509_privkey_t k, uint32_t attrs, unsigned scheme,
                         unsigned char *out)
{
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x, y;
    gnutls_pubkey_t pub = pubkey_of(k);
    assert_int_equal(gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ),
                     0);
    gnutls_pubkey_deinit(pub);
    unsigned char *q = out;
    q = put16(q, KB_TPM_ALG_ECC);
    q = put16(q, KB_TPM_ALG_SHA256);
    q = put32(q, attrs);
    q = put16(q, 0); /* authPolicy */
    q = put16(q, KB_TPM_ALG_NULL);
    q = put16(q, scheme);
    if (scheme != KB_TPM_ALG_NULL)
        q = put16(q, KB_TPM_ALG_SHA256);
    q = put16(q, KB_TPM_ECC_NIST_P256);
    q = put16(q, KB_TPM_ALG_NULL); /* kdf */
    q = put2b(q, x.data, x.size, 32);
    q = put2b(q, y.data, y.size, 32);
    gnutls_free(x.data);
    gnutls_free(y.data);
    return (size_t)(q - out);
}

/* The TPMT_PUBLIC of an RSA-2048 signing key, exponent 65537 marshalled as 0. */
static size_t rsa_public(gnutls_x509_privkey_t k, uint32_t attrs, unsigned char *out)
{
    gnutls_datum_t m, e;
    gnutls_pubkey_t pub = pubkey_of(k);
    assert_int_equal(gnutls_pubkey_export_rsa_raw2(pub, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ), 0);
    gnutls_pubkey_deinit(pub);
    unsigned char *q = out;
    q = put16(q, KB_TPM_ALG_RSA);
    q = put16(q, KB_TPM_ALG_SHA256);
    q = put32(q, attrs);
    q = put16(q, 0);
    q = put16(q, KB_TPM_ALG_NULL);
    q = put16(q, KB_TPM_ALG_NULL);
    q = put16(q, 2048);
    q = put32(q, 0);
    q = put2b(q, m.data, m.size, 256);
    gnutls_free(m.data);
    gnutls_free(e.data);
    return (size_t)(q - out);
}

static int setup(void **state)
{
    gnutls_global_init();
    make_ca(&t.ca, &t.ca_key, 1);
    make_ca(&t.ca2, &t.ca2_key, 2);
    gen(&t.ek_key, GNUTLS_PK_RSA, 2048);
    gen(&t.ak_key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    gen(&t.dev_key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    gen(&t.other_key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    t.ek_len = make_ek_cert(t.ca, t.ca_key, t.ek_der);
    t.ek2_len = make_ek_cert(t.ca2, t.ca2_key, t.ek2_der);
    /* restricted|sign|userWithAuth|sensitiveDataOrigin|fixedParent|fixedTPM, as tpm2_createak */
    t.ak_pub_len = ecc_public(t.ak_key, 0x00050072, KB_TPM_ALG_ECDSA, t.ak_pub);
    /* sign|decrypt|userWithAuth|sensitiveDataOrigin|fixedParent|fixedTPM, as tpm2-pkcs11 */
    t.dev_pub_len = ecc_public(t.dev_key, 0x00060072, KB_TPM_ALG_NULL, t.dev_pub);
    t.dev_pk = pubkey_of(t.dev_key);
    t.other_pk = pubkey_of(t.other_key);
    assert_int_equal(gnutls_x509_trust_list_init(&t.anchors.list, 0), 0);
    gnutls_x509_crt_t copy;
    gnutls_datum_t d;
    assert_int_equal(gnutls_x509_crt_export2(t.ca, GNUTLS_X509_FMT_DER, &d), 0);
    assert_int_equal(gnutls_x509_crt_init(&copy), 0);
    assert_int_equal(gnutls_x509_crt_import(copy, &d, GNUTLS_X509_FMT_DER), 0);
    gnutls_free(d.data);
    assert_int_equal(gnutls_x509_trust_list_add_cas(t.anchors.list, &copy, 1, 0), 1);
    return 0;
}

static int teardown(void **state)
{
    kb_attest_anchors_free(&t.anchors);
    gnutls_x509_crt_deinit(t.ca);
    gnutls_x509_crt_deinit(t.ca2);
    gnutls_x509_privkey_deinit(t.ca_key);
    gnutls_x509_privkey_deinit(t.ca2_key);
    gnutls_x509_privkey_deinit(t.ek_key);
    gnutls_x509_privkey_deinit(t.ak_key);
    gnutls_x509_privkey_deinit(t.dev_key);
    gnutls_x509_privkey_deinit(t.other_key);
    gnutls_pubkey_deinit(t.dev_pk);
    gnutls_pubkey_deinit(t.other_pk);
    gnutls_global_deinit();
    return 0;
}

/* How one evidence departs from the honest one. */
struct bend {
    uint32_t ak_attrs, key_attrs; /* 0: the honest ones */
    bool foreign_ak;              /* signed by another AK than the challenge's */
    bool owner_child;             /* qualifiedSigner of an AK under the owner SRK */
    bool wrong_nonce;             /* extraData of an earlier challenge */
    bool evidence_nonce_differs;  /* the wrapper's nonce is not the signed one */
    bool bad_signature;           /* a bit of the signature flipped */
    bool name_mismatch;           /* the attested name is another key's */
    bool other_ek_cert;           /* the EK certificate from the untrusted CA */
    bool rsa_key;                 /* the key is RSA-2048 (the EK's key pair stands in) */
};

static const unsigned char RND[96] = {
    0x5e, 0xc7, 0x3a, 0x01, 0x22, 0x9f, 0x4d, 0x10, 0x83, 0x6b, 0x0e, 0x51, 0xa7, 0x2c, 0xd4, 0x39,
    0x7f, 0x08, 0xe2, 0x95, 0x11, 0xc0, 0x6a, 0x3e, 0xb2, 0x47, 0x9d, 0x58, 0x04, 0xfa, 0x63, 0x1b};

static void challenge(struct kb_attest_challenge *c)
{
    kb_err err = {{0}};
    assert_int_equal(
        kb_attest_challenge_make(t.ek_der, t.ek_len, t.ak_pub, t.ak_pub_len, RND, c, &err), 0);
}

/* The DER a TPM and keybound's attest code would produce for c, bent as b says. */
static size_t make_evidence(const struct kb_attest_challenge *c, const struct bend *b,
                            unsigned char **der)
{
    kb_err err = {{0}};
    unsigned char ak_pub[128], key_pub[512], att[512], sig[128], *q;
    size_t ak_len = t.ak_pub_len, key_len = t.dev_pub_len;
    gnutls_x509_privkey_t signer = t.ak_key, foreign = NULL;
    memcpy(ak_pub, t.ak_pub, ak_len);
    memcpy(key_pub, t.dev_pub, key_len);
    if (b->ak_attrs)
        ak_len = ecc_public(t.ak_key, b->ak_attrs, KB_TPM_ALG_ECDSA, ak_pub);
    if (b->rsa_key)
        key_len = rsa_public(t.ek_key, 0x00060072, key_pub);
    if (b->key_attrs)
        key_len = ecc_public(t.dev_key, b->key_attrs, KB_TPM_ALG_NULL, key_pub);
    if (b->foreign_ak) {
        gen(&foreign, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
        ak_len = ecc_public(foreign, 0x00050072, KB_TPM_ALG_ECDSA, ak_pub);
        signer = foreign;
    }

    /* qualifiedSigner: QN(AK) under the EK (or under the owner hierarchy's SRK) */
    gnutls_datum_t m = {NULL, 0}, e = {NULL, 0};
    gnutls_pubkey_t ek_pub = pubkey_of(t.ek_key);
    assert_int_equal(gnutls_pubkey_export_rsa_raw2(ek_pub, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ), 0);
    gnutls_pubkey_deinit(ek_pub);
    unsigned char ek[600], ek_name[KB_TPM_NAME_MAX], ek_qn[KB_TPM_NAME_MAX], qn[KB_TPM_NAME_MAX];
    unsigned char ak_name[KB_TPM_NAME_MAX];
    unsigned char key_name[KB_TPM_NAME_MAX], h4[4];
    size_t ek_len, ek_name_len, ek_qn_len, qn_len, ak_name_len, key_name_len;
    assert_int_equal(kb_tpm_ek_rsa_template(m.data, m.size, ek, &ek_len, &err), 0);
    gnutls_free(m.data);
    gnutls_free(e.data);
    assert_int_equal(kb_tpm_name(ek, ek_len, ek_name, &ek_name_len, &err), 0);
    kb_tpm_handle_qn(b->owner_child ? KB_TPM_RH_OWNER : KB_TPM_RH_ENDORSEMENT, h4);
    assert_int_equal(kb_tpm_qualified_name(h4, 4, ek_name, ek_name_len, ek_qn, &ek_qn_len, &err),
                     0);
    assert_int_equal(kb_tpm_name(ak_pub, ak_len, ak_name, &ak_name_len, &err), 0);
    assert_int_equal(
        kb_tpm_qualified_name(ek_qn, ek_qn_len, ak_name, ak_name_len, qn, &qn_len, &err), 0);
    assert_int_equal(kb_tpm_name(key_pub, key_len, key_name, &key_name_len, &err), 0);
    if (b->name_mismatch)
        key_name[5] ^= 0x40;

    unsigned char nonce[32];
    memcpy(nonce, c->secret, 32);
    if (b->wrong_nonce)
        nonce[0] ^= 1;
    q = att;
    q = put32(q, KB_TPM_GENERATED_VALUE);
    q = put16(q, KB_TPM_ST_ATTEST_CERTIFY);
    q = put2b(q, qn, qn_len, qn_len);
    q = put2b(q, nonce, 32, 32);
    q = put32(q, 0), q = put32(q, 0x136d08); /* clock */
    q = put32(q, 2), q = put32(q, 0);        /* resetCount, restartCount */
    *q++ = 1;                                /* safe */
    q = put32(q, 0x20191023), q = put32(q, 0x00163636);
    q = put2b(q, key_name, key_name_len, key_name_len);
    q = put2b(q, qn, qn_len, qn_len); /* qualifiedName: not checked */
    size_t att_len = (size_t)(q - att);

    gnutls_privkey_t pk;
    gnutls_datum_t data = {att, (unsigned)att_len}, s = {NULL, 0}, r = {NULL, 0}, sv = {NULL, 0};
    assert_int_equal(gnutls_privkey_init(&pk), 0);
    assert_int_equal(gnutls_privkey_import_x509(pk, signer, 0), 0);
    assert_int_equal(gnutls_privkey_sign_data(pk, GNUTLS_DIG_SHA256, 0, &data, &s), 0);
    assert_int_equal(gnutls_decode_rs_value(&s, &r, &sv), 0);
    q = sig;
    q = put16(q, KB_TPM_ALG_ECDSA);
    q = put16(q, KB_TPM_ALG_SHA256);
    /* gnutls_decode_rs_value may keep a sign byte: drop it */
    size_t rl = r.size, sl = sv.size;
    unsigned char *rp = r.data, *sp = sv.data;
    while (rl > 32 && *rp == 0)
        rp++, rl--;
    while (sl > 32 && *sp == 0)
        sp++, sl--;
    q = put2b(q, rp, rl, 32);
    q = put2b(q, sp, sl, 32);
    size_t sig_len = (size_t)(q - sig);
    if (b->bad_signature)
        sig[10] ^= 1;
    gnutls_free(s.data);
    gnutls_free(r.data);
    gnutls_free(sv.data);
    gnutls_privkey_deinit(pk);
    if (foreign)
        gnutls_x509_privkey_deinit(foreign);

    unsigned char wrapper_nonce[32];
    memcpy(wrapper_nonce, nonce, 32);
    if (b->evidence_nonce_differs)
        wrapper_nonce[31] ^= 1;
    struct kb_evidence ev = {
        .attest = att,
        .attest_len = att_len,
        .signature = sig,
        .signature_len = sig_len,
        .key_public = key_pub,
        .key_public_len = key_len,
        .ak_public = ak_pub,
        .ak_public_len = ak_len,
        .nonce = wrapper_nonce,
        .nonce_len = 32,
        .ncerts = 1,
        .ek_index = 0x01C00002,
    };
    ev.certs[0] = b->other_ek_cert ? t.ek2_der : t.ek_der;
    ev.cert_lens[0] = b->other_ek_cert ? t.ek2_len : t.ek_len;
    size_t len = 0;
    assert_int_equal(kb_evidence_encode(&ev, der, &len, &err), 0);
    return len;
}

/* A fresh challenge and the honest evidence answering it. */
static size_t honest(struct kb_attest_challenge *c, unsigned char **der)
{
    challenge(c);
    return make_evidence(c, &(struct bend){0}, der);
}

static int verify(const unsigned char *der, size_t len, const struct kb_attest_challenge *c,
                  gnutls_pubkey_t expected, struct kb_attest_facts *f)
{
    int rc = kb_attest_verify(der, len, &t.anchors, c, expected, 1234567, f);
    assert_true(f->checked);
    assert_int_equal(f->attested, rc == 0);
    return rc;
}

/* The honest evidence: attested, with the facts the policy shows. */
static void attested(void **state)
{
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    size_t len = honest(&c, &der);
    assert_int_equal(verify(der, len, &c, t.dev_pk, &f), 0);
    assert_string_equal(f.reason, "");
    assert_true(f.fixed_tpm && f.fixed_parent && f.sensitive_data_origin);
    assert_string_equal(f.tpm_manufacturer, "id:00001014");
    assert_string_equal(f.tpm_model, "swtpm");
    assert_string_equal(f.tpm_version, "id:20191023");
    assert_string_equal(f.ek_issuer, "CN=test TPM vendor CA");
    assert_int_equal(f.at, 1234567);
    free(der);
}

/* One bent evidence: refused with exactly this reason (a prefix of it). */
static void refused_with(const struct bend *b, gnutls_pubkey_t expected, const char *reason)
{
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    challenge(&c);
    size_t len = make_evidence(&c, b, &der);
    assert_int_equal(verify(der, len, &c, expected, &f), -1);
    if (strncmp(f.reason, reason, strlen(reason)) != 0)
        fail_msg("reason \"%s\", wanted \"%s\"", f.reason, reason);
    free(der);
}

/* An RSA key is compared by modulus and exponent (0 in the TPM's area means 65537). */
static void rsa_key(void **state)
{
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    challenge(&c);
    size_t len = make_evidence(&c, &(struct bend){.rsa_key = true}, &der);
    gnutls_pubkey_t rsa = pubkey_of(t.ek_key);
    if (verify(der, len, &c, rsa, &f) != 0)
        fail_msg("%s", f.reason);
    assert_int_equal(verify(der, len, &c, t.dev_pk, &f), -1);
    assert_string_equal(f.reason, "the attested key is not the expected key");
    gnutls_pubkey_deinit(rsa);
    free(der);
}

static void imported_key(void **state)
{
    /* tpm2_ptool import: userWithAuth|sign|decrypt only, whatever the store row says */
    refused_with(
        &(struct bend){.key_attrs = 0x00060040}, t.dev_pk,
        "the key was not made in this TPM: fixedTPM, fixedParent, sensitiveDataOrigin clear");
    refused_with(&(struct bend){.key_attrs = 0x00060052}, t.dev_pk,
                 "the key was not made in this TPM: sensitiveDataOrigin clear");
}

static void replayed(void **state)
{
    refused_with(&(struct bend){.wrong_nonce = true}, t.dev_pk,
                 "the evidence answers another nonce (replayed?)");
    refused_with(&(struct bend){.evidence_nonce_differs = true}, t.dev_pk,
                 "the evidence's nonce is not the one the TPM signed");

    /* The same evidence presented to a later challenge */
    struct kb_attest_challenge c1, c2;
    struct kb_attest_facts f;
    struct bend b = {0};
    unsigned char *der, rnd[96];
    kb_err err = {{0}};
    challenge(&c1);
    size_t len = make_evidence(&c1, &b, &der);
    memcpy(rnd, RND, sizeof(rnd));
    rnd[0] ^= 0xff;
    assert_int_equal(
        kb_attest_challenge_make(t.ek_der, t.ek_len, t.ak_pub, t.ak_pub_len, rnd, &c2, &err), 0);
    assert_int_equal(verify(der, len, &c2, t.dev_pk, &f), -1);
    assert_string_equal(f.reason, "the evidence answers another nonce (replayed?)");
    free(der);
}

/* The remote verifier's case: no challenge, the caller's nonce. */
static int verify_nonce(const unsigned char *der, size_t len, const unsigned char *nonce,
                        size_t nonce_len, struct kb_attest_facts *f)
{
    int rc = kb_attest_verify_nonce(der, len, &t.anchors, nonce, nonce_len, t.dev_pk, 1234567, f);
    assert_true(f->checked);
    assert_int_equal(f->attested, rc == 0);
    return rc;
}

static void nonce_attested(void **state)
{
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    size_t len = honest(&c, &der);
    if (verify_nonce(der, len, c.secret, c.secret_len, &f) != 0)
        fail_msg("%s", f.reason);
    /* attested, and the result says the AK was not activated */
    assert_false(f.ak_activated);
    assert_true(f.fixed_tpm && f.fixed_parent && f.sensitive_data_origin);
    assert_non_null(strstr(KB_ATTEST_NOT_ACTIVATED, "qualifiedSigner"));
    /* the challenge's own path: activated */
    assert_int_equal(verify(der, len, &c, t.dev_pk, &f), 0);
    assert_true(f.ak_activated);
    free(der);
}

static void nonce_mismatch(void **state)
{
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der, other[32];
    size_t len = honest(&c, &der);
    memcpy(other, c.secret, 32);
    other[7] ^= 0x80;
    assert_int_equal(verify_nonce(der, len, other, 32, &f), -1);
    assert_string_equal(f.reason, "the evidence answers another nonce (replayed?)");
    /* a prefix of the signed nonce is another nonce too */
    assert_int_equal(verify_nonce(der, len, c.secret, 16, &f), -1);
    assert_string_equal(f.reason, "the evidence answers another nonce (replayed?)");
    assert_int_equal(verify_nonce(der, len, NULL, 0, &f), -1);
    assert_non_null(strstr(f.reason, "no nonce"));
    free(der);
}

static void nonce_ak_not_bound(void **state)
{
    /* Without activation the qualifiedSigner is the whole AK-EK binding: still checked */
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    challenge(&c);
    size_t len = make_evidence(&c, &(struct bend){.owner_child = true}, &der);
    assert_int_equal(verify_nonce(der, len, c.secret, c.secret_len, &f), -1);
    assert_string_equal(f.reason, "the AK is not the EK's child");
    assert_false(f.ak_activated);
    free(der);
}

static void bad_signature(void **state)
{
    refused_with(&(struct bend){.bad_signature = true}, t.dev_pk,
                 "the AK's signature over the attestation does not verify");
}

static void ak_attributes(void **state)
{
    refused_with(&(struct bend){.ak_attrs = 0x00040072}, t.dev_pk,
                 "the AK is not a restricted signing key of a TPM: restricted clear");
    refused_with(&(struct bend){.ak_attrs = 0x00050070}, t.dev_pk,
                 "the AK is not a restricted signing key of a TPM: fixedTPM clear");
    refused_with(&(struct bend){.ak_attrs = 0x00070072}, t.dev_pk,
                 "the AK is not a restricted signing key of a TPM: decrypt set");
}

static void ak_not_bound(void **state)
{
    /* An AK under the owner SRK of the same TPM: activation would pass, qualifiedSigner not */
    refused_with(&(struct bend){.owner_child = true}, t.dev_pk, "the AK is not the EK's child");
    /* Another TPM's AK: not the one the credential was sealed to */
    refused_with(&(struct bend){.foreign_ak = true}, t.dev_pk,
                 "the AK is not the one the challenge was made for");
}

static void name_mismatch(void **state)
{
    refused_with(&(struct bend){.name_mismatch = true}, t.dev_pk,
                 "the attested name is not that of the key's public area");
}

static void key_mismatch(void **state)
{
    refused_with(&(struct bend){0}, t.other_pk, "the attested key is not the expected key");
    refused_with(&(struct bend){0}, NULL, "no public key to compare");
}

static void untrusted_ek_ca(void **state)
{
    /* Same key, same issuer name, signed by CA 2: the challenge made for that certificate */
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    kb_err err = {{0}};
    assert_int_equal(
        kb_attest_challenge_make(t.ek2_der, t.ek2_len, t.ak_pub, t.ak_pub_len, RND, &c, &err), 0);
    size_t len = make_evidence(&c, &(struct bend){.other_ek_cert = true}, &der);
    assert_int_equal(verify(der, len, &c, t.dev_pk, &f), -1);
    assert_non_null(
        strstr(f.reason, "EK certificate not issued by a trusted TPM vendor CA (tpm-ca): "));
    /* the same issuer name: GnuTLS finds CA 1 and the signature fails */
    if (!strstr(f.reason, "NOT trusted"))
        fail_msg("%s", f.reason);
    free(der);

    /* The trusted EK certificate, but the challenge was made for CA 2's */
    struct kb_attest_challenge c2;
    challenge(&c2);
    len = make_evidence(&c2, &(struct bend){0}, &der);
    assert_int_equal(verify(der, len, &c, t.dev_pk, &f), -1);
    assert_string_equal(
        f.reason, "the evidence carries another EK certificate than the challenge was made for");
    free(der);
}

static void no_anchors(void **state)
{
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    struct kb_attest_anchors a = {0};
    unsigned char *der;
    size_t len = honest(&c, &der);
    snprintf(a.error, sizeof(a.error), "tpm-ca file /x holds no PEM certificate");
    assert_int_equal(kb_attest_verify(der, len, &a, &c, t.dev_pk, 0, &f), -1);
    assert_non_null(strstr(f.reason, "/x holds no PEM"));
    assert_int_equal(kb_attest_verify(der, len, &t.anchors, NULL, t.dev_pk, 0, &f), -1);
    free(der);
}

/* The evidence's DER: round trip, the bundle's span, strictness. */
static void evidence_der(void **state)
{
    struct kb_attest_challenge c;
    struct kb_evidence ev;
    kb_err err = {{0}};
    unsigned char *der;
    size_t len = honest(&c, &der);
    assert_int_equal(kb_evidence_decode(der, len, &ev, &err), 0);
    assert_int_equal(ev.ncerts, 1);
    assert_int_equal(ev.cert_lens[0], t.ek_len);
    assert_memory_equal(ev.certs[0], t.ek_der, t.ek_len);
    assert_int_equal(ev.key_public_len, t.dev_pub_len);
    assert_memory_equal(ev.key_public, t.dev_pub, t.dev_pub_len);
    assert_int_equal(ev.ak_public_len, t.ak_pub_len);
    assert_int_equal(ev.nonce_len, 32);
    assert_memory_equal(ev.nonce, c.secret, 32);
    assert_int_equal(ev.ek_index, 0x01C00002);
    /* encode(decode(x)) == x */
    unsigned char *again;
    size_t again_len;
    assert_int_equal(kb_evidence_encode(&ev, &again, &again_len, &err), 0);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, der, len);
    free(again);
    kb_evidence_free(&ev);

    size_t s, e;
    assert_int_equal(kb_evidence_bundle_span(der, len, &s, &e, &err), 0);
    assert_true(s > 0 && e < len && e > s);
    assert_int_equal(der[s], 0x30);

    /* A trailing byte, every truncation, a BER long-form length: refused */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, der, len);
    longer[len] = 0;
    assert_int_equal(kb_evidence_decode(longer, len + 1, &ev, &err), -1);
    if (!strstr(err.msg, "left over"))
        fail_msg("%s", err.msg);
    for (size_t n = 0; n < len; n += 7) {
        unsigned char *p = malloc(n ? n : 1);
        memcpy(p, der, n);
        assert_int_equal(kb_evidence_decode(p, n, &ev, &err), -1);
        free(p);
    }
    free(longer);
    /* 30 82 LL LL -> 30 83 00 LL LL: the same length, not in its shortest form */
    assert_int_equal(der[1], 0x82);
    unsigned char *ber = malloc(len + 1);
    ber[0] = 0x30, ber[1] = 0x83, ber[2] = 0;
    memcpy(ber + 3, der + 2, len - 2);
    assert_int_equal(kb_evidence_decode(ber, len + 1, &ev, &err), -1);
    assert_non_null(strstr(err.msg, "one form"));
    /* version 1 as 02 02 00 01: an INTEGER with a leading zero DER forbids (found by fuzzing) */
    size_t body = (size_t)der[2] << 8 | der[3];
    assert_int_equal(der[4], 0x02);
    ber[0] = 0x30, ber[1] = 0x82, ber[2] = (unsigned char)((body + 1) >> 8);
    ber[3] = (unsigned char)(body + 1);
    ber[4] = 0x02, ber[5] = 0x02, ber[6] = 0x00, ber[7] = 0x01;
    memcpy(ber + 8, der + 7, len - 7);
    assert_int_equal(kb_evidence_decode(ber, len + 1, &ev, &err), -1);
    assert_non_null(strstr(err.msg, "minimal form"));
    free(ber);
    free(der);

    /* No certificate, no key area: refused when encoding and when decoding */
    struct kb_evidence empty = {0};
    assert_int_equal(kb_evidence_encode(&empty, &der, &len, &err), -1);
}

/* --- The credential, opened as a TPM opens it, with code of this test's own. */

/* RFC 8017 MGF1-SHA256 via nettle (the library uses GnuTLS's SHA-256). */
static void test_mgf1(const uint8_t *z, size_t zl, uint8_t *mask, size_t n)
{
    for (uint32_t counter = 0; n; counter++) {
        struct sha256_ctx h;
        uint8_t c[4] = {counter >> 24, counter >> 16, counter >> 8, counter}, d[32];
        sha256_init(&h);
        sha256_update(&h, zl, z);
        sha256_update(&h, 4, c);
        sha256_digest(&h, 32, d);
        size_t k = n < 32 ? n : 32;
        for (size_t i = 0; i < k; i++)
            *mask++ ^= d[i];
        n -= k;
    }
}

/* One block of KDFa is enough for 128 and 256 bits. */
static void test_kdfa(const uint8_t seed[32], const char *label, const uint8_t *u, size_t ul,
                      unsigned bits, uint8_t *out)
{
    struct hmac_sha256_ctx h;
    uint8_t one[4] = {0, 0, 0, 1}, b[4] = {0, 0, (uint8_t)(bits >> 8), (uint8_t)bits};
    hmac_sha256_set_key(&h, 32, seed);
    hmac_sha256_update(&h, 4, one);
    hmac_sha256_update(&h, strlen(label) + 1, (const uint8_t *)label);
    hmac_sha256_update(&h, ul, u);
    hmac_sha256_update(&h, 4, b);
    uint8_t d[32];
    hmac_sha256_digest(&h, 32, d);
    memcpy(out, d, bits / 8);
}

static void credential_round_trip(void **state)
{
    struct kb_attest_challenge c;
    challenge(&c);
    assert_int_equal(c.cred.secret_len, 256);
    assert_int_equal(c.cred.blob_len, 2 + 32 + 2 + 32);

    /* RSA decryption with the EK's private key (what the TPM's EK does) */
    gnutls_datum_t m, e, d, p, q, u, e1, e2;
    assert_int_equal(
        gnutls_x509_privkey_export_rsa_raw2(t.ek_key, &m, &e, &d, &p, &q, &u, &e1, &e2), 0);
    struct rsa_public_key pub;
    struct rsa_private_key priv;
    rsa_public_key_init(&pub);
    rsa_private_key_init(&priv);
    nettle_mpz_set_str_256_u(pub.n, m.size, m.data);
    nettle_mpz_set_str_256_u(pub.e, e.size, e.data);
    nettle_mpz_set_str_256_u(priv.d, d.size, d.data);
    nettle_mpz_set_str_256_u(priv.p, p.size, p.data);
    nettle_mpz_set_str_256_u(priv.q, q.size, q.data);
    nettle_mpz_set_str_256_u(priv.c, u.size, u.data);
    nettle_mpz_set_str_256_u(priv.a, e1.size, e1.data);
    nettle_mpz_set_str_256_u(priv.b, e2.size, e2.data);
    assert_true(rsa_public_key_prepare(&pub));
    assert_true(rsa_private_key_prepare(&priv));
    mpz_t x, y;
    mpz_inits(x, y, NULL);
    nettle_mpz_set_str_256_u(y, c.cred.secret_len, c.cred.secret);
    rsa_compute_root(&priv, x, y);
    uint8_t em[256];
    nettle_mpz_get_str_256(256, em, x);
    mpz_clears(x, y, NULL);

    /* OAEP decoding, label "IDENTITY\0" */
    assert_int_equal(em[0], 0);
    test_mgf1(em + 33, 256 - 33, em + 1, 32); /* seed */
    test_mgf1(em + 1, 32, em + 33, 256 - 33); /* DB */
    uint8_t lhash[32];
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, 9, (const uint8_t *)"IDENTITY");
    sha256_digest(&h, 32, lhash);
    assert_memory_equal(em + 33, lhash, 32);
    size_t i = 33 + 32;
    while (i < 256 && em[i] == 0)
        i++;
    assert_int_equal(em[i], 0x01);
    assert_int_equal(256 - (i + 1), 32);
    const uint8_t *seed = em + i + 1;
    /* the seed is the one passed in (RND after the 32-byte secret) */
    assert_memory_equal(seed, RND + 32, 32);

    /* The outer HMAC over encIdentity || AK name, then CFB-128 with a zero IV */
    uint8_t hmac_key[32], sym_key[16], mac[32];
    test_kdfa(seed, "INTEGRITY", NULL, 0, 256, hmac_key);
    test_kdfa(seed, "STORAGE", c.ak_name, c.ak_name_len, 128, sym_key);
    const uint8_t *enc = c.cred.blob + 34;
    size_t enc_len = c.cred.blob_len - 34;
    assert_int_equal(c.cred.blob[0], 0);
    assert_int_equal(c.cred.blob[1], 32);
    struct hmac_sha256_ctx hm;
    hmac_sha256_set_key(&hm, 32, hmac_key);
    hmac_sha256_update(&hm, enc_len, enc);
    hmac_sha256_update(&hm, c.ak_name_len, c.ak_name);
    hmac_sha256_digest(&hm, 32, mac);
    assert_memory_equal(mac, c.cred.blob + 2, 32);
    struct aes128_ctx aes;
    uint8_t iv[16] = {0}, plain[64];
    aes128_set_encrypt_key(&aes, sym_key);
    cfb_decrypt(&aes, (nettle_cipher_func *)aes128_encrypt, 16, iv, enc_len, plain, enc);
    assert_int_equal(plain[0], 0);
    assert_int_equal(plain[1], 32);
    assert_memory_equal(plain + 2, c.secret, 32);

    /* A credential made without test randomness differs each time */
    struct kb_attest_challenge c2, c3;
    kb_err err = {{0}};
    assert_int_equal(
        kb_attest_challenge_make(t.ek_der, t.ek_len, t.ak_pub, t.ak_pub_len, NULL, &c2, &err), 0);
    assert_int_equal(
        kb_attest_challenge_make(t.ek_der, t.ek_len, t.ak_pub, t.ak_pub_len, NULL, &c3, &err), 0);
    assert_memory_not_equal(c2.secret, c3.secret, 32);
    assert_memory_not_equal(c2.cred.secret, c3.cred.secret, 256);

    /* Not an RSA-2048 EK certificate: refused */
    gnutls_datum_t ca_der;
    assert_int_equal(gnutls_x509_crt_export2(t.ca, GNUTLS_X509_FMT_DER, &ca_der), 0);
    assert_int_equal(
        kb_attest_challenge_make(ca_der.data, ca_der.size, t.ak_pub, t.ak_pub_len, RND, &c2, &err),
        -1);
    assert_non_null(strstr(err.msg, "RSA-2048"));
    gnutls_free(ca_der.data);

    rsa_public_key_clear(&pub);
    rsa_private_key_clear(&priv);
    gnutls_datum_t *all[] = {&m, &e, &d, &p, &q, &u, &e1, &e2};
    for (size_t k = 0; k < 8; k++)
        gnutls_free(all[k]->data);
}

/* kb_attest_anchors_load reads PEM files; a missing or empty one poisons the anchors. */
static void anchors_load(void **state)
{
    char dir[] = "/tmp/kb-attest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char good[64], empty[64];
    snprintf(good, sizeof(good), "%s/ca.pem", dir);
    snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
    gnutls_datum_t pem;
    assert_int_equal(gnutls_x509_crt_export2(t.ca, GNUTLS_X509_FMT_PEM, &pem), 0);
    FILE *fp = fopen(good, "w");
    fwrite(pem.data, 1, pem.size, fp);
    fclose(fp);
    gnutls_free(pem.data);
    fp = fopen(empty, "w");
    fputs("not a certificate\n", fp);
    fclose(fp);

    struct kb_attest_anchors a;
    const char *files[] = {good, empty, "/nonexistent/tpm-ca.pem"};
    assert_int_equal(kb_attest_anchors_load(files, 1, &a), 0);
    assert_string_equal(a.error, "");
    /* the file-loaded anchors verify the honest evidence */
    struct kb_attest_challenge c;
    struct kb_attest_facts f;
    unsigned char *der;
    size_t len = honest(&c, &der);
    assert_int_equal(kb_attest_verify(der, len, &a, &c, t.dev_pk, 0, &f), 0);
    kb_attest_anchors_free(&a);
    free(der);

    assert_int_equal(kb_attest_anchors_load(files, 2, &a), -1);
    assert_non_null(strstr(a.error, "empty.pem"));
    kb_attest_anchors_free(&a);
    assert_int_equal(kb_attest_anchors_load(files + 2, 1, &a), -1);
    assert_non_null(strstr(a.error, "tpm-ca"));
    kb_attest_anchors_free(&a);
    assert_int_equal(kb_attest_anchors_load(files, 0, &a), -1);
    kb_attest_anchors_free(&a);
    unlink(good);
    unlink(empty);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(attested),           cmocka_unit_test(rsa_key),
        cmocka_unit_test(imported_key),       cmocka_unit_test(replayed),
        cmocka_unit_test(nonce_attested),     cmocka_unit_test(nonce_mismatch),
        cmocka_unit_test(nonce_ak_not_bound), cmocka_unit_test(bad_signature),
        cmocka_unit_test(ak_attributes),      cmocka_unit_test(ak_not_bound),
        cmocka_unit_test(name_mismatch),      cmocka_unit_test(key_mismatch),
        cmocka_unit_test(untrusted_ek_ca),    cmocka_unit_test(no_anchors),
        cmocka_unit_test(evidence_der),       cmocka_unit_test(credential_round_trip),
        cmocka_unit_test(anchors_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
