/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "store.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int export_der(gnutls_x509_crt_t crt, gnutls_datum_t *der, kb_err *err)
{
    int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, der);
    return rc < 0 ? kb_err_set(err, "certificate cannot be encoded: %s", gnutls_strerror(rc)) : 0;
}

/* PKCS#11 wants CKA_SERIAL_NUMBER as a DER INTEGER. */
static size_t serial_der(gnutls_x509_crt_t crt, unsigned char *out, size_t cap)
{
    unsigned char raw[64];
    size_t n = sizeof raw;
    if (gnutls_x509_crt_get_serial(crt, raw, &n) < 0 || n == 0 || n + 3 > cap || n > 120)
        return 0;
    size_t pad = raw[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, raw, n);
    return n + pad + 2;
}

int kb_store_cert_obj(kb_session *s, gnutls_x509_crt_t crt, const char *label,
                      const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE *created,
                      kb_err *err)
{
    *created = CK_INVALID_HANDLE;
    gnutls_datum_t der = {NULL, 0}, subject = {NULL, 0}, issuer = {NULL, 0};
    if (export_der(crt, &der, err) != 0)
        return -1;
    int rc = -1;
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    if (kb_find(s, CKO_CERTIFICATE, CKA_VALUE, der.data, der.size, &h, &n, err) != 0)
        goto out;
    if (n > 0) {
        rc = 0; /* already there */
        goto out;
    }
    if (gnutls_x509_crt_get_raw_dn(crt, &subject) < 0 ||
        gnutls_x509_crt_get_raw_issuer_dn(crt, &issuer) < 0) {
        kb_err_set(err, "certificate has no readable subject or issuer");
        goto out;
    }
    unsigned char serial[130];
    size_t serial_len = serial_der(crt, serial, sizeof serial);
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_CERTIFICATE_TYPE, &type, sizeof type},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, id_len},
        {CKA_SUBJECT, subject.data, subject.size},
        {CKA_ISSUER, issuer.data, issuer.size},
        {CKA_VALUE, der.data, der.size},
        {CKA_SERIAL_NUMBER, serial, serial_len},
    };
    CK_ULONG nt = sizeof t / sizeof t[0] - (serial_len == 0);
    CK_OBJECT_HANDLE obj;
    CK_RV rv = s->token->module->fn->C_CreateObject(s->h, t, nt, &obj);
    if (rv != CKR_OK) {
        kb_err_set(err, "token '%s' refused to store the certificate: %s", s->token->facts.label,
                   kb_ckr_name(rv));
        goto out;
    }
    *created = obj;
    rc = 0;
out:
    free(h);
    gnutls_free(der.data);
    gnutls_free(subject.data);
    gnutls_free(issuer.data);
    return rc;
}

int kb_store_cert(kb_session *s, gnutls_x509_crt_t crt, const char *label, const unsigned char *id,
                  size_t id_len, bool *stored, kb_err *err)
{
    CK_OBJECT_HANDLE h;
    int rc = kb_store_cert_obj(s, crt, label, id, id_len, &h, err);
    *stored = h != CK_INVALID_HANDLE;
    return rc;
}

int kb_store_chain_cert_obj(kb_session *s, gnutls_x509_crt_t crt, CK_OBJECT_HANDLE *created,
                            kb_err *err)
{
    *created = CK_INVALID_HANDLE;
    char cn[256];
    size_t size = sizeof cn;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &size) < 0)
        snprintf(cn, sizeof cn, "CA certificate");
    unsigned char id[20];
    size = sizeof id;
    if (gnutls_x509_crt_get_key_id(crt, 0, id, &size) < 0)
        return kb_err_set(err, "CA certificate '%s' has no readable public key", cn);
    return kb_store_cert_obj(s, crt, cn, id, size, created, err);
}

int kb_store_chain_cert(kb_session *s, gnutls_x509_crt_t crt, bool *stored, kb_err *err)
{
    CK_OBJECT_HANDLE h;
    int rc = kb_store_chain_cert_obj(s, crt, &h, err);
    *stored = h != CK_INVALID_HANDLE;
    return rc;
}

int kb_destroy_object(kb_session *s, CK_OBJECT_HANDLE h, const char *what, kb_err *err)
{
    CK_RV rv = s->token->module->fn->C_DestroyObject(s->h, h);
    return rv == CKR_OK ? 0
                        : kb_err_set(err, "token '%s' refused to remove %s: %s",
                                     s->token->facts.label, what, kb_ckr_name(rv));
}

int kb_destroy_key(kb_session *s, const kb_key *k, kb_err *err)
{
    if (kb_destroy_object(s, k->handle, "the private key", err) != 0)
        return -1;
    if (k->pub_handle != CK_INVALID_HANDLE &&
        kb_destroy_object(s, k->pub_handle, "the public key", err) != 0)
        return -1;
    return 0;
}

int kb_destroy_matching(kb_session *s, CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE attr,
                        const void *value, size_t len, const char *what, kb_err *err)
{
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    if (kb_find(s, cls, attr, value, len, &h, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = kb_destroy_object(s, h[i], what, err);
    free(h);
    return rc;
}

int kb_relabel(kb_session *s, const unsigned char *id, size_t id_len, const char *label,
               kb_err *err)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE};
    for (size_t c = 0; c < 3; c++) {
        CK_OBJECT_HANDLE *h = NULL;
        size_t n = 0;
        if (kb_find(s, classes[c], CKA_ID, id, id_len, &h, &n, err) != 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            CK_ATTRIBUTE a = {CKA_LABEL, (void *)label, strlen(label)};
            CK_RV rv = s->token->module->fn->C_SetAttributeValue(s->h, h[i], &a, 1);
            if (rv != CKR_OK) {
                free(h);
                return kb_err_set(err, "token '%s' refused to relabel an object: %s",
                                  s->token->facts.label, kb_ckr_name(rv));
            }
        }
        free(h);
    }
    return 0;
}

int kb_load_certs(const char *path, gnutls_x509_crt_t **out, unsigned *n, kb_err *err)
{
    gnutls_datum_t data = {NULL, 0};
    *out = NULL;
    *n = 0;
    if (gnutls_load_file(path, &data) < 0)
        return kb_err_set(err, "certificate file %s cannot be read", path);
    int rc = gnutls_x509_crt_list_import2(out, n, &data, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || *n == 0) {
        gnutls_free(*out);
        *out = NULL;
        *n = 0;
        rc = gnutls_x509_crt_list_import2(out, n, &data, GNUTLS_X509_FMT_DER, 0);
    }
    gnutls_free(data.data);
    if (rc < 0 || *n == 0) {
        gnutls_free(*out);
        *out = NULL;
        *n = 0;
        return kb_err_set(err, "certificate file %s holds no PEM or DER X.509 certificate", path);
    }
    return 0;
}

void kb_free_certs(gnutls_x509_crt_t *v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(v[i]);
    gnutls_free(v);
}

int kb_cert_spki_sha256(gnutls_x509_crt_t crt, unsigned char out[32])
{
    size_t size = 32;
    return gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, out, &size) == 0 && size == 32
               ? 0
               : -1;
}
