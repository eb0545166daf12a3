/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "tpm.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "pkcs11/attrs.h"
#include "src/attest/tpmwire.h"
#include "src/util/log.h"
#include "src/util/statedir.h"

#define MAX_TRACKED 8
#define BLOB_MAX 4096

struct kb_tpm {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *ctx;
    char tcti_name[256];
    /* Transient objects and sessions this connection loaded: flushed at the latest by
     * kb_tpm_close, so that a failure on any path leaves no slot of the TPM taken. */
    ESYS_TR loaded[MAX_TRACKED];
    size_t n_loaded;
    ESYS_TR ek, ak;
    bool ek_transient;
};

static const char no_rm[] = "attestation needs a TPM resource manager: /dev/tpmrm0 or tpm2-abrmd";

static void track(struct kb_tpm *t, ESYS_TR h)
{
    if (t->n_loaded < MAX_TRACKED)
        t->loaded[t->n_loaded++] = h;
}

/* Flushes h now and forgets it. */
static void flush(struct kb_tpm *t, ESYS_TR *h)
{
    if (*h == ESYS_TR_NONE)
        return;
    for (size_t i = 0; i < t->n_loaded; i++)
        if (t->loaded[i] == *h) {
            t->loaded[i] = t->loaded[--t->n_loaded];
            break;
        }
    Esys_FlushContext(t->ctx, *h);
    *h = ESYS_TR_NONE;
}

/* The TPM's answer for a message: "TPM_RC_AUTH_FAIL"-like text from tpm2-tss. */
static const char *rc_text(TSS2_RC rc)
{
    return Tss2_RC_Decode(rc);
}

/* Whether rc is an authorisation failure (counted by the dictionary-attack logic) or the
 * lockout that follows: never to be tried again. */
static bool auth_failure(TSS2_RC rc)
{
    TSS2_RC r = rc & 0xFFFF; /* the TPM's own code, without the tss layer */
    if ((rc & 0xFFFF0000u) != 0)
        return false;
    if (r & TPM2_RC_FMT1)
        return (r & 0xBF) == (TPM2_RC_AUTH_FAIL & 0xBF) || (r & 0xBF) == (TPM2_RC_BAD_AUTH & 0xBF);
    return r == TPM2_RC_LOCKOUT;
}

/* Set by the first auth failure: this process then opens no TPM connection for attestation
 * again. A tunnel re-evaluates on a clock; without this, a PIN source that changed under a
 * logged-in token would cost one dictionary-attack strike per re-evaluation. */
static atomic_bool auth_refused;

void kb_tpm_refuse_auth(void)
{
    atomic_store(&auth_refused, true);
}

static bool is_lockout(TSS2_RC rc)
{
    return (rc & 0xFFFF0000u) == 0 && (rc & 0xFFFF) == TPM2_RC_LOCKOUT;
}

static bool without_rm(const char *conf)
{
    /* The module keeps its own connection open in this process: a TCTI that gives one
     * client the whole TPM would shut either it or keybound out. */
    if (strncmp(conf, "swtpm", 5) == 0 || strncmp(conf, "mssim", 5) == 0)
        return true;
    if (strncmp(conf, "device", 6) == 0) {
        const char *dev = strchr(conf, ':');
        return dev == NULL || dev[1] == '\0' || strstr(dev, "/dev/tpmrm") == NULL;
    }
    return false;
}

static int connect_to(struct kb_tpm *t, const char *conf)
{
    if (Tss2_TctiLdr_Initialize(conf, &t->tcti) != TSS2_RC_SUCCESS) {
        t->tcti = NULL;
        return -1;
    }
    if (Esys_Initialize(&t->ctx, t->tcti, NULL) != TSS2_RC_SUCCESS) {
        Tss2_TctiLdr_Finalize(&t->tcti);
        t->ctx = NULL;
        return -1;
    }
    snprintf(t->tcti_name, sizeof t->tcti_name, "%s", conf);
    return 0;
}

int kb_tpm_open(const char *tcti, struct kb_tpm **out, kb_err *err)
{
    *out = NULL;
    if (atomic_load(&auth_refused))
        return kb_err_set(err, "the TPM refused an authorisation earlier in this process; "
                               "keybound attests nothing more until it is restarted, since "
                               "each failure counts toward the TPM's lockout");
    struct kb_tpm *t = calloc(1, sizeof *t);
    if (t == NULL)
        return kb_err_set(err, "out of memory");
    t->ek = t->ak = ESYS_TR_NONE;
    const char *from = "the token's tcti in the tpm2-pkcs11 store";
    if (tcti == NULL || *tcti == '\0') {
        tcti = getenv("TPM2_PKCS11_TCTI");
        from = "TPM2_PKCS11_TCTI";
    }
    if (tcti != NULL && *tcti != '\0') {
        if (without_rm(tcti)) {
            free(t);
            return kb_err_set(err, "%s (%s=%s goes to the TPM directly)", no_rm,
                              strcmp(from, "TPM2_PKCS11_TCTI") == 0 ? from : "tcti", tcti);
        }
        if (connect_to(t, tcti) != 0) {
            free(t);
            return kb_err_set(err, "%s (%s=%s does not answer)", no_rm,
                              strcmp(from, "TPM2_PKCS11_TCTI") == 0 ? from : "tcti", tcti);
        }
    } else if (connect_to(t, "tabrmd") != 0 && connect_to(t, "device:/dev/tpmrm0") != 0) {
        /* The module's own default search would end on /dev/tpm0 or a simulator port:
         * neither is shared. */
        free(t);
        return kb_err_set(err, "%s (TPM2_PKCS11_TCTI=... is unset and neither answers)", no_rm);
    }
    kb_log(KB_LOG_DEBUG, "attestation: TPM through %s", t->tcti_name);
    *out = t;
    return 0;
}

void kb_tpm_close(struct kb_tpm *t)
{
    if (t == NULL)
        return;
    while (t->n_loaded > 0)
        Esys_FlushContext(t->ctx, t->loaded[--t->n_loaded]);
    Esys_Finalize(&t->ctx);
    Tss2_TctiLdr_Finalize(&t->tcti);
    free(t);
}

/* ---- EK certificate ---- */

int kb_tpm_ek_cert(struct kb_tpm *t, unsigned char **der, size_t *len, uint32_t *index, kb_err *err)
{
    *der = NULL;
    *len = 0;
    *index = KB_TPM_EK_CERT_RSA;
    ESYS_TR nv = ESYS_TR_NONE;
    TPM2B_NV_PUBLIC *pub = NULL;
    TPMS_CAPABILITY_DATA *cap = NULL;
    unsigned char *buf = NULL;
    TSS2_RC rc = Esys_TR_FromTPMPublic(t->ctx, KB_TPM_EK_CERT_RSA, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &nv);
    if (rc != TSS2_RC_SUCCESS)
        return kb_err_set(err,
                          "the TPM has no RSA EK certificate at NV 0x%08x (%s); keybound "
                          "attests with the RSA-2048 EK",
                          KB_TPM_EK_CERT_RSA, rc_text(rc));
    int ret = -1;
    if ((rc = Esys_NV_ReadPublic(t->ctx, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub,
                                 NULL)) != TSS2_RC_SUCCESS) {
        kb_err_set(err, "cannot read NV 0x%08x's public area: %s", KB_TPM_EK_CERT_RSA, rc_text(rc));
        goto out;
    }
    uint16_t size = pub->nvPublic.dataSize;
    TPMA_NV attrs = pub->nvPublic.attributes;
    /* Read by the index's own (empty) auth where it allows it, else by the owner's. */
    ESYS_TR auth = (attrs & TPMA_NV_AUTHREAD) ? nv : ESYS_TR_RH_OWNER;
    TPMI_YES_NO more;
    uint32_t chunk = 512;
    if (Esys_GetCapability(t->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                           TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more,
                           &cap) == TSS2_RC_SUCCESS &&
        cap->data.tpmProperties.count > 0 &&
        cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
        cap->data.tpmProperties.tpmProperty[0].value > 0)
        chunk = cap->data.tpmProperties.tpmProperty[0].value;
    if (chunk > sizeof(((TPM2B_MAX_NV_BUFFER *)0)->buffer))
        chunk = sizeof(((TPM2B_MAX_NV_BUFFER *)0)->buffer);
    if (size < 4 || (buf = malloc(size)) == NULL) {
        kb_err_set(err, "NV 0x%08x holds no certificate (%u bytes)", KB_TPM_EK_CERT_RSA, size);
        goto out;
    }
    for (uint16_t off = 0; off < size;) {
        uint32_t left = (uint32_t)(size - off);
        uint16_t n = (uint16_t)(left > chunk ? chunk : left);
        TPM2B_MAX_NV_BUFFER *d = NULL;
        rc = Esys_NV_Read(t->ctx, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off,
                          &d);
        if (rc != TSS2_RC_SUCCESS || d->size == 0 || d->size > n) {
            Esys_Free(d);
            kb_err_set(err, "cannot read the EK certificate from NV 0x%08x: %s", KB_TPM_EK_CERT_RSA,
                       rc ? rc_text(rc) : "short read");
            goto out;
        }
        memcpy(buf + off, d->buffer, d->size);
        off = (uint16_t)(off + d->size);
        Esys_Free(d);
    }
    /* Vendors pad the area: the certificate ends where its outer SEQUENCE says. */
    size_t der_len = 0;
    if (buf[0] == 0x30 && buf[1] == 0x82)
        der_len = 4 + ((size_t)buf[2] << 8 | buf[3]);
    else if (buf[0] == 0x30 && buf[1] == 0x81)
        der_len = 3 + (size_t)buf[2];
    if (der_len == 0 || der_len > size) {
        kb_err_set(err, "NV 0x%08x does not hold a DER certificate", KB_TPM_EK_CERT_RSA);
        goto out;
    }
    *der = buf;
    *len = der_len;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    Esys_Free(pub);
    Esys_Free(cap);
    Esys_TR_Close(t->ctx, &nv);
    return ret;
}

/* ---- EK and AK ---- */

/* The EK's template L-1 (with the all-zero unique the profile gives), from the one
 * definition the verifier also rebuilds EKs with (tpmwire.c). */
static int ek_template(TPM2B_PUBLIC *p, kb_err *err)
{
    static const unsigned char zero[256];
    unsigned char wire[512];
    size_t len = 0, off = 0;
    memset(p, 0, sizeof *p);
    if (kb_tpm_ek_rsa_template(zero, sizeof zero, wire, &len, err) != 0)
        return -1;
    if (Tss2_MU_TPMT_PUBLIC_Unmarshal(wire, len, &off, &p->publicArea) != TSS2_RC_SUCCESS ||
        off != len)
        return kb_err_set(err, "the EK template L-1 does not unmarshal");
    return 0;
}

static void ak_template(TPM2B_PUBLIC *p)
{
    memset(p, 0, sizeof *p);
    TPMT_PUBLIC *a = &p->publicArea;
    a->type = TPM2_ALG_ECC;
    a->nameAlg = TPM2_ALG_SHA256;
    a->objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
                          TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;
    a->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    a->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    a->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    a->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    a->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* The certificate's RSA modulus, without leading zeros. */
static int cert_modulus(const unsigned char *der, size_t len, gnutls_datum_t *m)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)len}, e = {NULL, 0};
    m->data = NULL;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -1;
    int rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) >= 0 &&
                     gnutls_x509_crt_get_pk_rsa_raw(crt, m, &e) >= 0
                 ? 0
                 : -1;
    gnutls_free(e.data);
    gnutls_x509_crt_deinit(crt);
    while (rc == 0 && m->size > 0 && m->data[0] == 0) {
        memmove(m->data, m->data + 1, --m->size);
    }
    return rc;
}

static bool same_modulus(const TPM2B_PUBLIC_KEY_RSA *n, const gnutls_datum_t *m)
{
    size_t skip = 0;
    while (skip < n->size && n->buffer[skip] == 0)
        skip++;
    return n->size - skip == m->size && memcmp(n->buffer + skip, m->data, m->size) == 0;
}

/* The EK whose public key the certificate carries: the persistent one when it is that key
 * (fast), else made again from the template (seconds on some TPMs; same key, same seed). */
static int ek_load(struct kb_tpm *t, const unsigned char *ek_der, size_t ek_len, kb_err *err)
{
    gnutls_datum_t m;
    if (cert_modulus(ek_der, ek_len, &m) != 0)
        return kb_err_set(err,
                          "the TPM's EK certificate (NV 0x%08x) has no RSA key keybound "
                          "can read",
                          KB_TPM_EK_CERT_RSA);
    ESYS_TR h = ESYS_TR_NONE;
    TPM2B_PUBLIC *pub = NULL;
    if (Esys_TR_FromTPMPublic(t->ctx, KB_TPM_EK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &h) == TSS2_RC_SUCCESS) {
        if (Esys_ReadPublic(t->ctx, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL,
                            NULL) == TSS2_RC_SUCCESS &&
            pub->publicArea.type == TPM2_ALG_RSA && pub->publicArea.nameAlg == TPM2_ALG_SHA256 &&
            same_modulus(&pub->publicArea.unique.rsa, &m)) {
            Esys_Free(pub);
            gnutls_free(m.data);
            t->ek = h;
            t->ek_transient = false;
            return 0;
        }
        Esys_Free(pub);
        pub = NULL;
        Esys_TR_Close(t->ctx, &h);
    }
    TPM2B_PUBLIC tmpl;
    if (ek_template(&tmpl, err) != 0) {
        gnutls_free(m.data);
        return -1;
    }
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TSS2_RC rc =
        Esys_CreatePrimary(t->ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &h, &pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        gnutls_free(m.data);
        return kb_err_set(err, "cannot make the TPM's EK (endorsement hierarchy): %s", rc_text(rc));
    }
    track(t, h);
    t->ek = h;
    t->ek_transient = true;
    bool same = same_modulus(&pub->publicArea.unique.rsa, &m);
    Esys_Free(pub);
    gnutls_free(m.data);
    if (!same)
        return kb_err_set(err, "the TPM's EK is not the key of its EK certificate (NV 0x%08x)",
                          KB_TPM_EK_CERT_RSA);
    return 0;
}

/* A policy session satisfying the EK's PolicySecret(endorsement), for one command. */
static int ek_session(struct kb_tpm *t, ESYS_TR *s, kb_err *err)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    TSS2_RC rc =
        Esys_StartAuthSession(t->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, s);
    if (rc != TSS2_RC_SUCCESS)
        return kb_err_set(err, "cannot start a TPM policy session: %s", rc_text(rc));
    track(t, *s);
    rc = Esys_PolicySecret(t->ctx, ESYS_TR_RH_ENDORSEMENT, *s, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        flush(t, s);
        if (auth_failure(rc))
            kb_tpm_refuse_auth();
        return kb_err_set(err, "the TPM refuses the endorsement hierarchy's auth: %s%s",
                          rc_text(rc),
                          auth_failure(rc) ? " (keybound expects it empty; not retried)" : "");
    }
    return 0;
}

static void ek_hash_hex(const unsigned char *der, size_t len, char out[65])
{
    unsigned char md[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, md);
    kb_hex(md, sizeof md, out);
}

/* The AK blobs kept for this EK certificate: 0, 1 when there are none (or for another EK),
 * -1 on a read error. */
static int ak_read(const char *dir, const char *ek_hex, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv,
                   kb_err *err)
{
    char path[4200];
    char *text = NULL;
    size_t len = 0, off = 0;
    snprintf(path, sizeof path, "%s/ak.ek", dir);
    int r = kb_state_read(path, 128, &text, &len, err);
    if (r != 0)
        return r;
    bool same = len >= 64 && strncmp(text, ek_hex, 64) == 0;
    free(text);
    if (!same) {
        kb_log(KB_LOG_INFO, "attestation: the TPM's EK certificate changed; making a new AK");
        return 1;
    }
    snprintf(path, sizeof path, "%s/ak.pub", dir);
    if ((r = kb_state_read(path, BLOB_MAX, &text, &len, err)) != 0)
        return r;
    r = Tss2_MU_TPM2B_PUBLIC_Unmarshal((uint8_t *)text, len, &off, pub) == TSS2_RC_SUCCESS &&
                off == len
            ? 0
            : 1;
    free(text);
    if (r != 0)
        return 1;
    snprintf(path, sizeof path, "%s/ak.priv", dir);
    off = 0;
    if ((r = kb_state_read(path, BLOB_MAX, &text, &len, err)) != 0)
        return r;
    r = Tss2_MU_TPM2B_PRIVATE_Unmarshal((uint8_t *)text, len, &off, priv) == TSS2_RC_SUCCESS &&
                off == len
            ? 0
            : 1;
    free(text);
    return r;
}

static int ak_write(const char *dir, const char *ek_hex, const TPM2B_PUBLIC *pub,
                    const TPM2B_PRIVATE *priv, kb_err *err)
{
    uint8_t b[BLOB_MAX];
    size_t off = 0;
    char line[80];
    /* The EK's hash goes last: a reader that sees it sees both blobs of this AK. */
    if (Tss2_MU_TPM2B_PRIVATE_Marshal(priv, b, sizeof b, &off) != TSS2_RC_SUCCESS ||
        kb_state_write(dir, "ak.priv", (const char *)b, off, err) != 0)
        return -1;
    off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, b, sizeof b, &off) != TSS2_RC_SUCCESS ||
        kb_state_write(dir, "ak.pub", (const char *)b, off, err) != 0)
        return -1;
    snprintf(line, sizeof line, "%s\n", ek_hex);
    return kb_state_write(dir, "ak.ek", line, strlen(line), err);
}

static int ak_create(struct kb_tpm *t, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv, kb_err *err)
{
    ESYS_TR s = ESYS_TR_NONE;
    if (ek_session(t, &s, err) != 0)
        return -1;
    TPM2B_PUBLIC tmpl;
    ak_template(&tmpl);
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PUBLIC *p = NULL;
    TPM2B_PRIVATE *k = NULL;
    TSS2_RC rc = Esys_Create(t->ctx, t->ek, s, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside,
                             &pcrs, &k, &p, NULL, NULL, NULL);
    flush(t, &s);
    if (rc != TSS2_RC_SUCCESS)
        return kb_err_set(err, "cannot make an attestation key under the EK: %s", rc_text(rc));
    *pub = *p;
    *priv = *k;
    Esys_Free(p);
    Esys_Free(k);
    return 0;
}

static int ak_load_blobs(struct kb_tpm *t, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv, TSS2_RC *rc,
                         kb_err *err)
{
    ESYS_TR s = ESYS_TR_NONE;
    if (ek_session(t, &s, err) != 0)
        return -1;
    *rc = Esys_Load(t->ctx, t->ek, s, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &t->ak);
    flush(t, &s);
    if (*rc != TSS2_RC_SUCCESS) {
        t->ak = ESYS_TR_NONE;
        return kb_err_set(err, "the TPM does not load the attestation key: %s", rc_text(*rc));
    }
    track(t, t->ak);
    return 0;
}

int kb_tpm_ak(struct kb_tpm *t, const unsigned char *ek_der, size_t ek_len,
              unsigned char **ak_public, size_t *ak_public_len, kb_err *err)
{
    *ak_public = NULL;
    *ak_public_len = 0;
    if (ek_load(t, ek_der, ek_len, err) != 0)
        return -1;
    char dir[4096], ek_hex[65];
    if (kb_state_dir(dir, sizeof dir, true, err) != 0)
        return -1;
    ek_hash_hex(ek_der, ek_len, ek_hex);
    TPM2B_PUBLIC pub = {0};
    TPM2B_PRIVATE priv = {0};
    TSS2_RC rc = 0;
    int r = ak_read(dir, ek_hex, &pub, &priv, err);
    if (r < 0)
        return -1;
    if (r == 0 && ak_load_blobs(t, &pub, &priv, &rc, err) != 0) {
        /* Blobs of another TPM or a changed endorsement seed (TPM_RC_INTEGRITY): the
         * state is stale, not an attack on anything; a new AK replaces it. A session
         * that could not even start is a TPM problem, said as it is. */
        if (rc == 0)
            return -1;
        kb_log(KB_LOG_INFO, "attestation: the AK in %s does not load (%s); making a new one", dir,
               rc_text(rc));
        r = 1;
    }
    if (r == 1) {
        if (ak_create(t, &pub, &priv, err) != 0 || ak_write(dir, ek_hex, &pub, &priv, err) != 0 ||
            ak_load_blobs(t, &pub, &priv, &rc, err) != 0)
            return -1;
    }
    uint8_t b[BLOB_MAX];
    size_t off = 0;
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, b, sizeof b, &off) != TSS2_RC_SUCCESS ||
        (*ak_public = malloc(off)) == NULL)
        return kb_err_set(err, "cannot encode the AK's public area");
    memcpy(*ak_public, b, off);
    *ak_public_len = off;
    return 0;
}

int kb_tpm_activate(struct kb_tpm *t, const struct kb_credential *cred, unsigned char *out,
                    size_t *out_len, kb_err *err)
{
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    if (t->ak == ESYS_TR_NONE || cred->blob_len > sizeof id.credential ||
        cred->secret_len > sizeof es.secret)
        return kb_err_set(err, "no attestation key loaded, or a credential too large");
    id.size = (UINT16)cred->blob_len;
    memcpy(id.credential, cred->blob, cred->blob_len);
    es.size = (UINT16)cred->secret_len;
    memcpy(es.secret, cred->secret, cred->secret_len);
    ESYS_TR s = ESYS_TR_NONE;
    if (ek_session(t, &s, err) != 0)
        return -1;
    TPM2B_DIGEST *got = NULL;
    /* The AK in the ADMIN role by its (empty) auth: its adminWithPolicy is clear. */
    TSS2_RC rc = Esys_ActivateCredential(t->ctx, t->ak, t->ek, ESYS_TR_PASSWORD, s, ESYS_TR_NONE,
                                         &id, &es, &got);
    flush(t, &s);
    if (rc != TSS2_RC_SUCCESS)
        /* libtpms says TPM_RC_FAILURE for a credential made for another EK: the meaning
         * is the same whatever the code. */
        return kb_err_set(err,
                          "the TPM cannot activate the verifier's credential (%s): the AK is "
                          "not shown to be in the TPM of this EK",
                          rc_text(rc));
    if (got->size > KB_CRED_SECRET_MAX) {
        Esys_Free(got);
        return kb_err_set(err, "the TPM's activated credential is too large");
    }
    memcpy(out, got->buffer, got->size);
    *out_len = got->size;
    Esys_Free(got);
    return 0;
}

/* ---- the token's objects ---- */

/* An HMAC session salted with the primary's key: the auth values of the seal object and
 * the key never cross the TCTI (D-Bus, for abrmd) in clear, and with encrypt the answer
 * (the unsealed wrapping key) comes back encrypted too. */
static int salted_session(struct kb_tpm *t, ESYS_TR primary, bool encrypt, ESYS_TR *s, kb_err *err)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
    TSS2_RC rc = Esys_StartAuthSession(t->ctx, primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, s);
    if (rc != TSS2_RC_SUCCESS)
        return kb_err_set(err, "cannot start a salted TPM session: %s", rc_text(rc));
    track(t, *s);
    TPMA_SESSION a = TPMA_SESSION_CONTINUESESSION | (encrypt ? TPMA_SESSION_ENCRYPT : 0);
    if ((rc = Esys_TRSess_SetAttributes(t->ctx, *s, a, 0xff)) != TSS2_RC_SUCCESS) {
        flush(t, s);
        return kb_err_set(err, "cannot set the TPM session's attributes: %s", rc_text(rc));
    }
    return 0;
}

static int primary_tr(struct kb_tpm *t, uint32_t primary, ESYS_TR *h, kb_err *err)
{
    TSS2_RC rc =
        Esys_TR_FromTPMPublic(t->ctx, primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, h);
    if (rc != TSS2_RC_SUCCESS)
        return kb_err_set(err, "the token's primary key 0x%08x is not in the TPM: %s", primary,
                          rc_text(rc));
    return 0;
}

/* Loads (pub, priv) under primary with its empty auth. */
static int load_child(struct kb_tpm *t, ESYS_TR primary, const unsigned char *pub, size_t pub_len,
                      const unsigned char *priv, size_t priv_len, const char *what, ESYS_TR *h,
                      TPM2B_PUBLIC *pub_out, kb_err *err)
{
    TPM2B_PUBLIC p = {0};
    TPM2B_PRIVATE k = {0};
    size_t o1 = 0, o2 = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_len, &o1, &p) != TSS2_RC_SUCCESS || o1 != pub_len ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv, priv_len, &o2, &k) != TSS2_RC_SUCCESS ||
        o2 != priv_len)
        return kb_err_set(err, "%s: its TPM blobs are not a TPM2B_PUBLIC and a TPM2B_PRIVATE",
                          what);
    TSS2_RC rc =
        Esys_Load(t->ctx, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &k, &p, h);
    if (rc != TSS2_RC_SUCCESS)
        return kb_err_set(err, "the TPM does not load %s: %s", what, rc_text(rc));
    track(t, *h);
    if (pub_out != NULL)
        *pub_out = p;
    return 0;
}

static int set_auth(struct kb_tpm *t, ESYS_TR h, const kb_secret *auth, kb_err *err)
{
    TPM2B_AUTH a = {0};
    if (auth->len > sizeof a.buffer)
        return kb_err_set(err, "a TPM auth value longer than %zu bytes", sizeof a.buffer);
    a.size = (UINT16)auth->len;
    memcpy(a.buffer, auth->buf, auth->len);
    TSS2_RC rc = Esys_TR_SetAuth(t->ctx, h, &a);
    kb_memzero(&a, sizeof a);
    return rc == TSS2_RC_SUCCESS ? 0 : kb_err_set(err, "cannot hand ESAPI an auth value");
}

/* ESAPI keeps a copy of an object's auth until the object's resource is freed, and does
 * not zero it then: overwrite it with an empty one before the flush. */
static void forget_auth(struct kb_tpm *t, ESYS_TR h)
{
    TPM2B_AUTH none;
    memset(&none, 0, sizeof none);
    if (h != ESYS_TR_NONE)
        Esys_TR_SetAuth(t->ctx, h, &none);
}

static int refused(TSS2_RC rc, const char *what, const char *cmd, kb_err *err)
{
    if (is_lockout(rc))
        return kb_err_set(err,
                          "the TPM is in dictionary-attack lockout (%s); keybound tries "
                          "nothing until it ends",
                          cmd);
    /* An Unseal's refusal may be a wrong PIN, which the caller handles as one. */
    if (auth_failure(rc) && strcmp(cmd, "TPM2_Unseal") != 0)
        kb_tpm_refuse_auth();
    if (auth_failure(rc))
        return kb_err_set(err,
                          "the TPM refused the auth of %s (%s, %s): the tpm2-pkcs11 store does "
                          "not match the token; not retried, since each failure counts "
                          "toward the TPM's lockout",
                          what, cmd, rc_text(rc));
    return kb_err_set(err, "%s of %s failed: %s", cmd, what, rc_text(rc));
}

int kb_tpm_unseal(struct kb_tpm *t, uint32_t primary, const unsigned char *pub, size_t pub_len,
                  const unsigned char *priv, size_t priv_len, const kb_secret *auth, kb_secret *out,
                  kb_err *err)
{
    ESYS_TR p = ESYS_TR_NONE, seal = ESYS_TR_NONE, s = ESYS_TR_NONE;
    int ret = -1;
    if (primary_tr(t, primary, &p, err) != 0)
        return -1;
    if (load_child(t, p, pub, pub_len, priv, priv_len, "the token's seal object", &seal, NULL,
                   err) != 0 ||
        set_auth(t, seal, auth, err) != 0 || salted_session(t, p, true, &s, err) != 0)
        goto out;
    TPM2B_SENSITIVE_DATA *wk = NULL;
    TSS2_RC rc = Esys_Unseal(t->ctx, seal, s, ESYS_TR_NONE, ESYS_TR_NONE, &wk);
    if (rc != TSS2_RC_SUCCESS) {
        refused(rc, "the token's seal object", "TPM2_Unseal", err);
        ret = auth_failure(rc) && !is_lockout(rc) ? 1 : -1;
        goto out;
    }
    kb_secret_wipe(out);
    if (wk->size < kb_secret_capacity()) {
        memcpy(out->buf, wk->buffer, wk->size);
        out->len = wk->size;
        ret = 0;
    } else {
        kb_err_set(err, "the token's seal object holds %u bytes, not a wrapping key", wk->size);
    }
    kb_memzero(wk, sizeof *wk);
    Esys_Free(wk);
out:
    flush(t, &s);
    forget_auth(t, seal);
    flush(t, &seal);
    Esys_TR_Close(t->ctx, &p);
    return ret;
}

static int dup(const uint8_t *b, size_t n, unsigned char **out, size_t *len)
{
    if ((*out = malloc(n ? n : 1)) == NULL)
        return -1;
    memcpy(*out, b, n);
    *len = n;
    return 0;
}

int kb_tpm_certify(struct kb_tpm *t, uint32_t primary, const unsigned char *pub, size_t pub_len,
                   const unsigned char *priv, size_t priv_len, const kb_secret *auth,
                   const unsigned char *q, size_t q_len, const char *what,
                   struct kb_tpm_certified *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    ESYS_TR p = ESYS_TR_NONE, key = ESYS_TR_NONE, s = ESYS_TR_NONE;
    TPM2B_PUBLIC kpub;
    TPM2B_ATTEST *att = NULL;
    TPMT_SIGNATURE *sig = NULL;
    int ret = -1;
    TPM2B_DATA qd = {0};
    if (t->ak == ESYS_TR_NONE || q_len > sizeof qd.buffer)
        return kb_err_set(err, "no attestation key loaded, or qualifying data too large");
    qd.size = (UINT16)q_len;
    memcpy(qd.buffer, q, q_len);
    if (primary_tr(t, primary, &p, err) != 0)
        return -1;
    if (load_child(t, p, pub, pub_len, priv, priv_len, what, &key, &kpub, err) != 0 ||
        set_auth(t, key, auth, err) != 0 || salted_session(t, p, false, &s, err) != 0)
        goto out;
    TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_NULL}; /* the AK's own: ECDSA-SHA256 */
    /* The key in the ADMIN role (its auth value, in the salted session); the AK in the USER
     * role by its empty auth. */
    TSS2_RC rc = Esys_Certify(t->ctx, key, t->ak, s, ESYS_TR_PASSWORD, ESYS_TR_NONE, &qd, &scheme,
                              &att, &sig);
    if (rc != TSS2_RC_SUCCESS) {
        refused(rc, what, "TPM2_Certify", err);
        goto out;
    }
    uint8_t b[BLOB_MAX];
    size_t off = 0, off2 = 0;
    uint8_t b2[BLOB_MAX];
    if (Tss2_MU_TPMT_SIGNATURE_Marshal(sig, b, sizeof b, &off) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPMT_PUBLIC_Marshal(&kpub.publicArea, b2, sizeof b2, &off2) != TSS2_RC_SUCCESS ||
        dup(att->attestationData, att->size, &out->attest, &out->attest_len) != 0 ||
        dup(b, off, &out->signature, &out->signature_len) != 0 ||
        dup(b2, off2, &out->key_public, &out->key_public_len) != 0) {
        kb_tpm_certified_free(out);
        kb_err_set(err, "cannot encode the TPM's certification of %s", what);
        goto out;
    }
    ret = 0;
out:
    Esys_Free(att);
    Esys_Free(sig);
    flush(t, &s);
    forget_auth(t, key);
    flush(t, &key);
    Esys_TR_Close(t->ctx, &p);
    return ret;
}

void kb_tpm_certified_free(struct kb_tpm_certified *c)
{
    free(c->attest);
    free(c->signature);
    free(c->key_public);
    memset(c, 0, sizeof *c);
}
