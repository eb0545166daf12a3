/* SPDX-License-Identifier: Apache-2.0 */
/* The checklist of the research brief's section 5.2, in its order: the first check that
 * fails is the reason, worded for the person reading `keybound check`. Each step only
 * trusts what an earlier step proved: the EK certificate's chain makes its key the TPM's,
 * the credential binds the AK to that key, the AK's attributes make its signature the
 * TPM's word, and the signed TPMS_ATTEST vouches for the key's public area by its name. */
#include "config.h"

#include "src/attest/verify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/x509-ext.h>

#include "policy/facts.h"
#include "src/attest/evidence.h"
#include "src/util/secret.h"

static int fail(struct kb_attest_facts *f, const char *fmt, ...) KB_PRINTF(2, 3);
static int fail(struct kb_attest_facts *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    va_end(ap);
    f->attested = false;
    return -1;
}

/* Constant time: the secret must not leak through the comparison's timing. */
static bool same(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    unsigned char d = 0;
    for (size_t i = 0; i < a_len; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

int kb_attest_challenge_make(const unsigned char *ek_der, size_t ek_len,
                             const unsigned char *ak_public, size_t ak_public_len,
                             const unsigned char *rnd, struct kb_attest_challenge *c, kb_err *err)
{
    struct kb_cred_random cr;
    int rc = -1;
    memset(c, 0, sizeof(*c));
    if (kb_tpm_name(ak_public, ak_public_len, c->ak_name, &c->ak_name_len, err) < 0)
        return -1;
    c->secret_len = KB_CRED_SECRET_MAX;
    if (rnd) {
        memcpy(c->secret, rnd, c->secret_len);
        memcpy(&cr, rnd + c->secret_len, sizeof(cr));
    } else if (gnutls_rnd(GNUTLS_RND_RANDOM, c->secret, c->secret_len) < 0 ||
               gnutls_rnd(GNUTLS_RND_RANDOM, &cr, sizeof(cr)) < 0) {
        kb_err_set(err, "attestation: no random bytes for the challenge");
        goto done;
    }
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, ek_der, ek_len, c->ek_cert_sha256) < 0) {
        kb_err_set(err, "attestation: SHA-256 failed");
        goto done;
    }
    rc = kb_credential_make_for_cert(ek_der, ek_len, c->ak_name, c->ak_name_len, c->secret,
                                     c->secret_len, &cr, &c->cred, err);
done:
    kb_memzero(&cr, sizeof(cr));
    if (rc < 0)
        kb_memzero(c, sizeof(*c));
    return rc;
}

/* A GnuTLS public key from a TPM public area (ECC P-256/384/521 or RSA). */
static int tpm_pubkey(const struct kb_tpm_public *t, gnutls_pubkey_t *pk)
{
    *pk = NULL;
    if (gnutls_pubkey_init(pk) < 0)
        return -1;
    int rc;
    if (t->type == KB_TPM_ALG_ECC) {
        gnutls_ecc_curve_t curve = t->curve == KB_TPM_ECC_NIST_P256   ? GNUTLS_ECC_CURVE_SECP256R1
                                   : t->curve == KB_TPM_ECC_NIST_P384 ? GNUTLS_ECC_CURVE_SECP384R1
                                   : t->curve == KB_TPM_ECC_NIST_P521 ? GNUTLS_ECC_CURVE_SECP521R1
                                                                      : GNUTLS_ECC_CURVE_INVALID;
        gnutls_datum_t x = {(unsigned char *)t->x, (unsigned)t->x_len};
        gnutls_datum_t y = {(unsigned char *)t->y, (unsigned)t->y_len};
        rc = curve == GNUTLS_ECC_CURVE_INVALID ? -1
                                               : gnutls_pubkey_import_ecc_raw(*pk, curve, &x, &y);
    } else {
        uint32_t e = t->rsa_exponent ? t->rsa_exponent : 65537; /* 0 means the default */
        unsigned char eb[4] = {(unsigned char)(e >> 24), (unsigned char)(e >> 16),
                               (unsigned char)(e >> 8), (unsigned char)e};
        gnutls_datum_t n = {(unsigned char *)t->n, (unsigned)t->n_len}, ed = {eb, 4};
        rc = gnutls_pubkey_import_rsa_raw(*pk, &n, &ed);
    }
    if (rc < 0) {
        gnutls_pubkey_deinit(*pk);
        *pk = NULL;
        return -1;
    }
    return 0;
}

/* Two public keys are the same key when their SubjectPublicKeyInfo DER is: GnuTLS writes
 * it canonically (no leading zeros, fixed-size points). */
static bool same_key(gnutls_pubkey_t a, gnutls_pubkey_t b)
{
    gnutls_datum_t da = {NULL, 0}, db = {NULL, 0};
    bool eq = gnutls_pubkey_export2(a, GNUTLS_X509_FMT_DER, &da) == 0 &&
              gnutls_pubkey_export2(b, GNUTLS_X509_FMT_DER, &db) == 0 && da.size == db.size &&
              memcmp(da.data, db.data, da.size) == 0;
    gnutls_free(da.data);
    gnutls_free(db.data);
    return eq;
}

/* One attribute of a DN in GnuTLS's text form, "OID=#<hex of the DER value>" (how it
 * writes attributes it has no name for, as the TCG ones): the value's text into out when
 * it is a short string type, printable characters only. */
static void dn_value(const char *hex, size_t hex_len, char *out, size_t size)
{
    unsigned char der[130];
    size_t n = hex_len / 2;
    if (n < 2 || n > sizeof(der))
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return;
        der[i] = (unsigned char)v;
    }
    /* UTF8String, PrintableString, IA5String with a short-form length that fits */
    if ((der[0] != 0x0c && der[0] != 0x13 && der[0] != 0x16) || der[1] != n - 2)
        return;
    size_t len = n - 2 < size - 1 ? n - 2 : size - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = der[2 + i] >= 0x20 && der[2 + i] < 0x7f ? (char)der[2 + i] : '?';
    out[len] = '\0';
}

/* The TPM's manufacturer, model and version: TCG attributes 2.23.133.2.1-3 in a
 * directoryName of the EK certificate's subjectAltName (TCG EK Credential Profile). They
 * are informative facts: a certificate without them is still an EK certificate. */
static void ek_san(gnutls_x509_crt_t crt, struct kb_attest_facts *f)
{
    struct {
        const char *prefix;
        char *out;
    } attrs[] = {
        {"2.23.133.2.1=#", f->tpm_manufacturer},
        {"2.23.133.2.2=#", f->tpm_model},
        {"2.23.133.2.3=#", f->tpm_version},
    };
    gnutls_datum_t ext = {NULL, 0};
    gnutls_subject_alt_names_t sans = NULL;
    if (gnutls_x509_crt_get_extension_by_oid2(crt, "2.5.29.17", 0, &ext, NULL) < 0)
        return;
    if (gnutls_subject_alt_names_init(&sans) < 0 ||
        gnutls_x509_ext_import_subject_alt_names(&ext, sans, 0) < 0)
        goto done;
    for (unsigned i = 0;; i++) {
        unsigned type = 0;
        gnutls_datum_t san, other;
        if (gnutls_subject_alt_names_get(sans, i, &type, &san, &other) < 0)
            break;
        if (type != GNUTLS_SAN_DN)
            continue;
        /* GnuTLS gives a directoryName as RFC 4514 text; components end at ',' or '+' */
        const char *p = (const char *)san.data, *end = p + san.size;
        while (p < end) {
            size_t len = 0;
            while (p + len < end && p[len] != ',' && p[len] != '+')
                len++;
            for (size_t k = 0; k < sizeof(attrs) / sizeof(attrs[0]); k++) {
                size_t pl = strlen(attrs[k].prefix);
                if (len > pl && strncmp(p, attrs[k].prefix, pl) == 0)
                    dn_value(p + pl, len - pl, attrs[k].out, sizeof(f->tpm_manufacturer));
            }
            p += len + 1;
        }
    }
done:
    if (sans)
        gnutls_subject_alt_names_deinit(sans);
    gnutls_free(ext.data);
}

/* What the steps share; run_free releases it whatever step failed. */
struct run {
    struct kb_evidence ev;
    gnutls_x509_crt_t certs[KB_EVIDENCE_MAX_CERTS];
    unsigned ncerts;
    struct kb_tpm_public ak, key;
    unsigned char ak_name[KB_TPM_NAME_MAX];
    size_t ak_name_len;
    gnutls_pubkey_t ak_pk, key_pk;
    unsigned char ek_n[KB_CRED_RSA_MAX];
    size_t ek_n_len;
};

static void run_free(struct run *r)
{
    for (unsigned i = 0; i < r->ncerts; i++)
        gnutls_x509_crt_deinit(r->certs[i]);
    if (r->ak_pk)
        gnutls_pubkey_deinit(r->ak_pk);
    if (r->key_pk)
        gnutls_pubkey_deinit(r->key_pk);
    kb_evidence_free(&r->ev);
}

/* 2. The EK certificate chains to a tpm-ca anchor. The verdict is the status: the
 * function returns 0 for an untrusted chain too. */
static int check_chain(struct run *r, const struct kb_attest_anchors *a, struct kb_attest_facts *f)
{
    for (size_t i = 0; i < r->ev.ncerts; i++) {
        gnutls_datum_t d = {r->ev.certs[i], (unsigned)r->ev.cert_lens[i]};
        if (gnutls_x509_crt_init(&r->certs[i]) < 0)
            return fail(f, "out of memory reading the EK certificate");
        r->ncerts++;
        if (gnutls_x509_crt_import(r->certs[i], &d, GNUTLS_X509_FMT_DER) < 0)
            return fail(f, "%s in the evidence is not an X.509 certificate",
                        i == 0 ? "the EK certificate" : "a chain certificate");
    }
    gnutls_datum_t issuer = {NULL, 0};
    if (gnutls_x509_crt_get_issuer_dn3(r->certs[0], &issuer, 0) == 0) {
        snprintf(f->ek_issuer, sizeof(f->ek_issuer), "%.*s", (int)issuer.size, issuer.data);
        gnutls_free(issuer.data);
    }
    ek_san(r->certs[0], f);

    unsigned status = 0;
    int rc =
        gnutls_x509_trust_list_verify_crt2(a->list, r->certs, r->ncerts, NULL, 0, 0, &status, NULL);
    if (rc < 0 || status != 0) {
        gnutls_datum_t out = {NULL, 0};
        if (rc < 0 ||
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0)
            fail(f, "EK certificate not issued by a trusted TPM vendor CA (tpm-ca): %s",
                 rc < 0 ? gnutls_strerror(rc) : "not verified");
        else
            fail(f, "EK certificate not issued by a trusted TPM vendor CA (tpm-ca): %.*s",
                 (int)out.size, out.data);
        gnutls_free(out.data);
        return -1;
    }
    return 0;
}

/* 3. The EK is the RSA-2048 one of template L-1: the credential was made for its key. */
static int check_ek_key(struct run *r, struct kb_attest_facts *f)
{
    gnutls_pubkey_t pk;
    gnutls_datum_t m = {NULL, 0}, e = {NULL, 0};
    unsigned bits = 0;
    int ok = gnutls_pubkey_init(&pk) == 0;
    if (ok && (gnutls_pubkey_import_x509(pk, r->certs[0], 0) < 0 ||
               gnutls_pubkey_get_pk_algorithm(pk, &bits) != GNUTLS_PK_RSA || bits != 2048 ||
               gnutls_pubkey_export_rsa_raw2(pk, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ) < 0))
        ok = 0;
    /* 65537: the L-1 template's exponent 0, and what the qualifiedSigner check rebuilds */
    ok = ok && e.size == 3 && e.data[0] == 1 && e.data[1] == 0 && e.data[2] == 1 && m.size == 256;
    if (ok) {
        memcpy(r->ek_n, m.data, m.size);
        r->ek_n_len = m.size;
    }
    gnutls_free(m.data);
    gnutls_free(e.data);
    gnutls_pubkey_deinit(pk);
    return ok ? 0
              : fail(f, "the EK certificate's key is not RSA-2048 with exponent 65537 (only "
                        "the RSA EK is supported)");
}

/* 4. The AK is a restricted signing key that cannot leave its TPM: a TPM refuses to load
 * a key it did not make under those claims, and signs nothing that looks like its own
 * attestation with a restricted key, so its signature is the TPM's word. */
static int check_ak(struct run *r, struct kb_attest_facts *f)
{
    kb_err err = {{0}};
    if (kb_tpm_public_decode(r->ev.ak_public, r->ev.ak_public_len, &r->ak, &err) < 0)
        return fail(f, "the AK's public area cannot be read: %s", err.msg);
    static const struct {
        uint32_t bit;
        const char *name;
    } need[] = {{KB_TPMA_FIXED_TPM, "fixedTPM"},
                {KB_TPMA_FIXED_PARENT, "fixedParent"},
                {KB_TPMA_SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"},
                {KB_TPMA_RESTRICTED, "restricted"},
                {KB_TPMA_SIGN, "sign"}};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (!(r->ak.attributes & need[i].bit))
            return fail(f, "the AK is not a restricted signing key of a TPM: %s clear",
                        need[i].name);
    if (r->ak.attributes & KB_TPMA_DECRYPT)
        return fail(f, "the AK is not a restricted signing key of a TPM: decrypt set");
    bool ecc = r->ak.type == KB_TPM_ALG_ECC && r->ak.curve == KB_TPM_ECC_NIST_P256 &&
               r->ak.scheme == KB_TPM_ALG_ECDSA;
    bool rsa =
        r->ak.type == KB_TPM_ALG_RSA && r->ak.rsa_bits == 2048 && r->ak.scheme == KB_TPM_ALG_RSASSA;
    if (!(ecc || rsa) || r->ak.scheme_hash != KB_TPM_ALG_SHA256 ||
        r->ak.name_alg != KB_TPM_ALG_SHA256)
        return fail(f, "the AK is not an ECDSA P-256 or RSASSA 2048 key with SHA-256");
    if (kb_tpm_name(r->ev.ak_public, r->ev.ak_public_len, r->ak_name, &r->ak_name_len, &err) < 0 ||
        tpm_pubkey(&r->ak, &r->ak_pk) < 0)
        return fail(f, "the AK's public key cannot be used: %s", err.msg[0] ? err.msg : "invalid");
    return 0;
}

/* 5. The credential was made for this EK certificate and this AK. With step 7's
 * extraData == secret, that proves the AK lives in the TPM owning the EK. */
static int check_binding(struct run *r, const struct kb_attest_challenge *c,
                         struct kb_attest_facts *f)
{
    unsigned char h[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, r->ev.certs[0], r->ev.cert_lens[0], h) < 0 ||
        !same(h, 32, c->ek_cert_sha256, 32))
        return fail(f,
                    "the evidence carries another EK certificate than the challenge was made for");
    if (!same(r->ak_name, r->ak_name_len, c->ak_name, c->ak_name_len))
        return fail(f, "the AK is not the one the challenge was made for (another TPM's AK?)");
    return 0;
}

/* 6. The AK signed the TPMS_ATTEST, with the AK's own scheme. */
static int check_signature(struct run *r, struct kb_attest_facts *f)
{
    struct kb_tpm_signature s;
    kb_err err = {{0}};
    if (kb_tpm_signature_decode(r->ev.signature, r->ev.signature_len, &s, &err) < 0)
        return fail(f, "the AK's signature cannot be read: %s", err.msg);
    if (s.alg != r->ak.scheme || s.hash != r->ak.scheme_hash)
        return fail(f, "the signature's scheme 0x%04x/0x%04x is not the AK's", s.alg, s.hash);
    gnutls_datum_t data = {r->ev.attest, (unsigned)r->ev.attest_len}, sig = {NULL, 0};
    gnutls_sign_algorithm_t algo;
    int rc;
    if (s.alg == KB_TPM_ALG_ECDSA) {
        gnutls_datum_t rr = {(unsigned char *)s.r, (unsigned)s.r_len};
        gnutls_datum_t ss = {(unsigned char *)s.s, (unsigned)s.s_len};
        if (gnutls_encode_rs_value(&sig, &rr, &ss) < 0)
            return fail(f, "the AK's signature cannot be read");
        algo = GNUTLS_SIGN_ECDSA_SHA256;
        rc = gnutls_pubkey_verify_data2(r->ak_pk, algo, 0, &data, &sig);
        gnutls_free(sig.data);
    } else {
        gnutls_datum_t raw = {(unsigned char *)s.r, (unsigned)s.r_len};
        algo = GNUTLS_SIGN_RSA_SHA256;
        rc = gnutls_pubkey_verify_data2(r->ak_pk, algo, 0, &data, &raw);
    }
    if (rc < 0)
        return fail(f, "the AK's signature over the attestation does not verify");
    return 0;
}

/* 7. The TPMS_ATTEST answers the expected nonce (the challenge's secret, or the remote
 * verifier's own nonce), was signed by the EK's child, and 8. vouches for the key's public
 * area by its name. */
static int check_attest(struct run *r, const unsigned char *nonce, size_t nonce_len,
                        struct kb_attest_facts *f)
{
    struct kb_tpm_attest at;
    kb_err err = {{0}};
    if (kb_tpm_attest_decode(r->ev.attest, r->ev.attest_len, &at, &err) < 0)
        return fail(f, "the attestation cannot be read: %s", err.msg);
    if (!same(at.extra, at.extra_len, nonce, nonce_len))
        return fail(f, "the evidence answers another nonce (replayed?)");
    if (!same(r->ev.nonce, r->ev.nonce_len, at.extra, at.extra_len))
        return fail(f, "the evidence's nonce is not the one the TPM signed");

    unsigned char ek[600], ek_name[KB_TPM_NAME_MAX], ek_qn[KB_TPM_NAME_MAX], qn[KB_TPM_NAME_MAX];
    unsigned char h4[4];
    size_t ek_len, ek_name_len, ek_qn_len, qn_len;
    kb_tpm_handle_qn(KB_TPM_RH_ENDORSEMENT, h4);
    if (kb_tpm_ek_rsa_template(r->ek_n, r->ek_n_len, ek, &ek_len, &err) < 0 ||
        kb_tpm_name(ek, ek_len, ek_name, &ek_name_len, &err) < 0 ||
        kb_tpm_qualified_name(h4, 4, ek_name, ek_name_len, ek_qn, &ek_qn_len, &err) < 0 ||
        kb_tpm_qualified_name(ek_qn, ek_qn_len, r->ak_name, r->ak_name_len, qn, &qn_len, &err) < 0)
        return fail(f, "the EK's name cannot be computed: %s", err.msg);
    if (!same(at.signer, at.signer_len, qn, qn_len))
        return fail(f, "the AK is not the EK's child");

    unsigned char name[KB_TPM_NAME_MAX];
    size_t name_len;
    if (kb_tpm_public_decode(r->ev.key_public, r->ev.key_public_len, &r->key, &err) < 0)
        return fail(f, "the key's public area cannot be read: %s", err.msg);
    if (kb_tpm_name(r->ev.key_public, r->ev.key_public_len, name, &name_len, &err) < 0 ||
        !same(at.name, at.name_len, name, name_len))
        return fail(f, "the attested name is not that of the key's public area");
    return 0;
}

/* 9. The key was made inside the TPM and cannot leave it; 10. it is the expected key. */
static int check_key(struct run *r, gnutls_pubkey_t expected, struct kb_attest_facts *f)
{
    uint32_t a = r->key.attributes;
    f->fixed_tpm = a & KB_TPMA_FIXED_TPM;
    f->fixed_parent = a & KB_TPMA_FIXED_PARENT;
    f->sensitive_data_origin = a & KB_TPMA_SENSITIVE_DATA_ORIGIN;
    if (!f->fixed_tpm || !f->fixed_parent || !f->sensitive_data_origin) {
        char clear[64] = "";
        const char *names[] = {"fixedTPM", "fixedParent", "sensitiveDataOrigin"};
        bool set[] = {f->fixed_tpm, f->fixed_parent, f->sensitive_data_origin};
        for (int i = 0; i < 3; i++)
            if (!set[i]) {
                if (clear[0])
                    strcat(clear, ", ");
                strcat(clear, names[i]);
            }
        return fail(f, "the key was not made in this TPM: %s clear", clear);
    }
    if (!expected)
        return fail(f, "no public key to compare the attested key with");
    if (tpm_pubkey(&r->key, &r->key_pk) < 0)
        return fail(f, "the attested key's public key cannot be read");
    if (!same_key(r->key_pk, expected))
        return fail(f, "the attested key is not the expected key");
    return 0;
}

/* The one checklist. challenge NULL: the remote verifier's case, the nonce is the caller's
 * and step 5 (the credential) is skipped; the AK's binding to the EK then rests on step 7's
 * qualifiedSigner alone, which facts->ak_activated false records. */
static int verify(const unsigned char *der, size_t der_len, const struct kb_attest_anchors *anchors,
                  const struct kb_attest_challenge *challenge, const unsigned char *nonce,
                  size_t nonce_len, gnutls_pubkey_t expected, long long now,
                  struct kb_attest_facts *facts)
{
    struct run r;
    kb_err err = {{0}};
    int rc = -1;
    memset(facts, 0, sizeof(*facts));
    memset(&r, 0, sizeof(r));
    facts->checked = true;
    facts->at = now;
    if (!anchors || anchors->error[0] || !anchors->list)
        return fail(facts, "no trusted TPM vendor CA: %s",
                    anchors && anchors->error[0] ? anchors->error : "tpm-ca not loaded");
    if (challenge) {
        nonce = challenge->secret;
        nonce_len = challenge->secret_len;
    }
    if (nonce == NULL || nonce_len == 0)
        return fail(facts, "no nonce to compare the evidence's with: it may be a replay");
    /* 1. Strict DER, one tcg-attest-tpm-certify statement, the key's area, the EK cert. */
    if (kb_evidence_decode(der, der_len, &r.ev, &err) < 0) {
        fail(facts, "the evidence cannot be read: %s", err.msg);
        goto done;
    }
    if (check_chain(&r, anchors, facts) < 0 || check_ek_key(&r, facts) < 0 ||
        check_ak(&r, facts) < 0 || (challenge && check_binding(&r, challenge, facts) < 0) ||
        check_signature(&r, facts) < 0 || check_attest(&r, nonce, nonce_len, facts) < 0 ||
        check_key(&r, expected, facts) < 0)
        goto done;
    facts->attested = true;
    facts->ak_activated = challenge != NULL;
    facts->reason[0] = '\0';
    rc = 0;
done:
    run_free(&r);
    return rc;
}

int kb_attest_verify(const unsigned char *der, size_t der_len,
                     const struct kb_attest_anchors *anchors,
                     const struct kb_attest_challenge *challenge, gnutls_pubkey_t expected,
                     long long now, struct kb_attest_facts *facts)
{
    if (!challenge) {
        memset(facts, 0, sizeof(*facts));
        facts->checked = true;
        facts->at = now;
        return fail(facts, "no challenge: the AK cannot be shown to be in the EK's TPM");
    }
    return verify(der, der_len, anchors, challenge, NULL, 0, expected, now, facts);
}

int kb_attest_verify_nonce(const unsigned char *der, size_t der_len,
                           const struct kb_attest_anchors *anchors, const unsigned char *nonce,
                           size_t nonce_len, gnutls_pubkey_t expected, long long now,
                           struct kb_attest_facts *facts)
{
    return verify(der, der_len, anchors, NULL, nonce, nonce_len, expected, now, facts);
}
