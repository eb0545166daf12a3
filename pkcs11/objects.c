/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "objects.h"

#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"
#include "pin.h"
#include "src/util/log.h"
#include "uri.h"

CK_RV kb_attr_get(kb_session *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                  unsigned char **value, CK_ULONG *len)
{
    CK_FUNCTION_LIST *fn = s->token->module->fn;
    CK_ATTRIBUTE a = {type, NULL, 0};
    *value = NULL;
    *len = 0;
    CK_RV rv = fn->C_GetAttributeValue(s->h, obj, &a, 1);
    if (rv != CKR_OK)
        return rv;
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return CKR_ATTRIBUTE_TYPE_INVALID;
    a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1);
    if (a.pValue == NULL)
        return CKR_HOST_MEMORY;
    rv = fn->C_GetAttributeValue(s->h, obj, &a, 1);
    if (rv != CKR_OK) {
        free(a.pValue);
        return rv;
    }
    *value = a.pValue;
    *len = a.ulValueLen;
    return CKR_OK;
}

static enum kb_tri get_tri(kb_session *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL b = CK_FALSE;
    CK_ATTRIBUTE a = {type, &b, sizeof b};
    if (s->token->module->fn->C_GetAttributeValue(s->h, obj, &a, 1) != CKR_OK)
        return KB_TRI_UNKNOWN;
    return kb_attr_tri(&b, a.ulValueLen);
}

int kb_find(kb_session *s, CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE attr, const void *value,
            CK_ULONG len, CK_OBJECT_HANDLE **out, size_t *n, kb_err *err)
{
    CK_FUNCTION_LIST *fn = s->token->module->fn;
    CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof cls}, {attr, (void *)value, len}};
    *out = NULL;
    *n = 0;
    CK_RV rv = fn->C_FindObjectsInit(s->h, tmpl, attr ? 2 : 1);
    if (rv != CKR_OK)
        return kb_err_set(err, "cannot search token '%s': %s", s->token->facts.label,
                          kb_ckr_name(rv));
    for (;;) {
        CK_OBJECT_HANDLE batch[64];
        CK_ULONG got = 0;
        rv = fn->C_FindObjects(s->h, batch, 64, &got);
        if (rv != CKR_OK || got == 0)
            break;
        CK_OBJECT_HANDLE *v = realloc(*out, (*n + got) * sizeof *v);
        if (v == NULL) {
            rv = CKR_HOST_MEMORY;
            break;
        }
        memcpy(v + *n, batch, got * sizeof *v);
        *out = v;
        *n += got;
    }
    fn->C_FindObjectsFinal(s->h);
    if (rv != CKR_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
        return kb_err_set(err, "cannot search token '%s': %s", s->token->facts.label,
                          kb_ckr_name(rv));
    }
    return 0;
}

static void copy_label(char *dst, const unsigned char *v, CK_ULONG len)
{
    size_t n = len < KB_LABEL_MAX - 1 ? len : KB_LABEL_MAX - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static bool spki_of(gnutls_pubkey_t pub, unsigned char out[32])
{
    size_t size = 32;
    return gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, out, &size) == 0 && size == 32;
}

static gnutls_ecc_curve_t curve_of(const struct kb_key_facts *f)
{
    return strcmp(f->curve, "P-256") == 0     ? GNUTLS_ECC_CURVE_SECP256R1
           : strcmp(f->curve, "P-384") == 0   ? GNUTLS_ECC_CURVE_SECP384R1
           : strcmp(f->curve, "P-521") == 0   ? GNUTLS_ECC_CURVE_SECP521R1
           : strcmp(f->curve, "Ed25519") == 0 ? GNUTLS_ECC_CURVE_ED25519
           : strcmp(f->curve, "Ed448") == 0   ? GNUTLS_ECC_CURVE_ED448
                                              : GNUTLS_ECC_CURVE_INVALID;
}

/* The public key of object h from its key material: RSA's modulus and exponent or the EC
 * point (a public key object, or a private key object that shows them), as the SHA-256 id
 * of its SubjectPublicKeyInfo. */
static bool object_pubkey(kb_session *s, CK_OBJECT_HANDLE h, const struct kb_key_facts *f,
                          gnutls_pubkey_t pub)
{
    unsigned char *a = NULL, *b = NULL;
    CK_ULONG alen = 0, blen = 0;
    bool ok = false;
    if (f->type == KB_KEY_RSA) {
        if (kb_attr_get(s, h, CKA_MODULUS, &a, &alen) == CKR_OK &&
            kb_attr_get(s, h, CKA_PUBLIC_EXPONENT, &b, &blen) == CKR_OK) {
            gnutls_datum_t m = {a, (unsigned)alen}, e = {b, (unsigned)blen};
            ok = gnutls_pubkey_import_rsa_raw(pub, &m, &e) == 0;
        }
    } else if (f->type != KB_KEY_UNKNOWN && kb_attr_get(s, h, CKA_EC_POINT, &a, &alen) == CKR_OK) {
        const unsigned char *pt;
        size_t ptlen;
        gnutls_ecc_curve_t curve = curve_of(f);
        if (curve != GNUTLS_ECC_CURVE_INVALID && kb_ec_point_raw(a, alen, &pt, &ptlen)) {
            int rc = -1;
            if (f->type == KB_KEY_EDDSA) {
                gnutls_datum_t x = {(unsigned char *)pt, (unsigned)ptlen};
                rc = gnutls_pubkey_import_ecc_raw(pub, curve, &x, NULL);
            } else if (ptlen > 1 && pt[0] == 0x04 && (ptlen - 1) % 2 == 0) {
                unsigned half = (unsigned)(ptlen - 1) / 2;
                gnutls_datum_t x = {(unsigned char *)pt + 1, half},
                               y = {(unsigned char *)pt + 1 + half, half};
                rc = gnutls_pubkey_import_ecc_raw(pub, curve, &x, &y);
            }
            ok = rc == 0;
        }
    }
    free(a);
    free(b);
    return ok;
}

static bool object_spki(kb_session *s, CK_OBJECT_HANDLE h, const struct kb_key_facts *f,
                        unsigned char out[32])
{
    gnutls_pubkey_t pub = NULL;
    if (gnutls_pubkey_init(&pub) != 0)
        return false;
    bool ok = object_pubkey(s, h, f, pub) && spki_of(pub, out);
    gnutls_pubkey_deinit(pub);
    return ok;
}

int kb_key_pubkey(kb_session *s, CK_OBJECT_HANDLE priv, const kb_key *k, gnutls_pubkey_t *out,
                  kb_err *err)
{
    /* The key material that gave k its SubjectPublicKeyInfo: on the private key object, or
     * on a public key object with its id; whichever it is must hash to k's. */
    CK_OBJECT_HANDLE *pubs = NULL;
    size_t n = 0;
    unsigned char id[32];
    *out = NULL;
    if (!k->has_spki)
        return kb_err_set(err, "key '%s': its public key cannot be told", k->facts.label);
    kb_find(s, CKO_PUBLIC_KEY, CKA_ID, k->facts.id, k->facts.id_len, &pubs, &n, NULL);
    for (size_t i = 0; i <= n; i++) {
        CK_OBJECT_HANDLE h = i == 0 ? priv : pubs[i - 1];
        if (gnutls_pubkey_init(out) != 0)
            break;
        if (object_pubkey(s, h, &k->facts, *out) && spki_of(*out, id) &&
            memcmp(id, k->spki_sha256, 32) == 0) {
            free(pubs);
            return 0;
        }
        gnutls_pubkey_deinit(*out);
        *out = NULL;
    }
    free(pubs);
    return kb_err_set(err, "key '%s': its public key cannot be read again", k->facts.label);
}

/* CKA_PUBLIC_KEY_INFO of object h, when it holds one (tokens may leave it empty). */
static bool object_spki_info(kb_session *s, CK_OBJECT_HANDLE h, unsigned char out[32])
{
    unsigned char *a = NULL;
    CK_ULONG alen = 0;
    gnutls_pubkey_t pub = NULL;
    bool ok = false;
    if (kb_attr_get(s, h, CKA_PUBLIC_KEY_INFO, &a, &alen) == CKR_OK && alen > 0 &&
        gnutls_pubkey_init(&pub) == 0) {
        gnutls_datum_t d = {a, (unsigned)alen};
        ok = gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_DER) == 0 && spki_of(pub, out);
        gnutls_pubkey_deinit(pub);
    }
    free(a);
    return ok;
}

/* "'a', 'b'" for the labels of objects h (at most 4, each cut for the message). */
static void labels_of(kb_session *s, const CK_OBJECT_HANDLE *h, size_t n, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 4 && used < len; i++) {
        unsigned char *v = NULL;
        CK_ULONG vlen = 0;
        char label[KB_LABEL_MAX] = "";
        if (kb_attr_get(s, h[i], CKA_LABEL, &v, &vlen) == CKR_OK)
            copy_label(label, v, vlen);
        free(v);
        used += (size_t)snprintf(out + used, len - used, "%s'%.40s%s'", i ? ", " : "", label,
                                 strlen(label) > 40 ? "..." : "");
    }
    if (n > 4 && used < len)
        snprintf(out + used, len - used, ", ...");
}

static bool same_key_type(kb_session *s, CK_OBJECT_HANDLE x, CK_OBJECT_HANDLE y)
{
    CK_KEY_TYPE a = 0, b = 0;
    CK_ATTRIBUTE ta = {CKA_KEY_TYPE, &a, sizeof a}, tb = {CKA_KEY_TYPE, &b, sizeof b};
    CK_FUNCTION_LIST *fn = s->token->module->fn;
    return fn->C_GetAttributeValue(s->h, x, &ta, 1) != CKR_OK ||
           fn->C_GetAttributeValue(s->h, y, &tb, 1) != CKR_OK || a == b;
}

/* The curve of x's and y's CKA_EC_PARAMS, compared as curves (a token may encode them
 * differently on the two halves, SoftHSM does for Ed25519). Only a difference both
 * objects state counts. */
static bool same_curve(kb_session *s, CK_OBJECT_HANDLE x, CK_OBJECT_HANDLE y)
{
    unsigned char *a = NULL, *b = NULL;
    CK_ULONG alen = 0, blen = 0;
    char ca[16] = "", cb[16] = "";
    unsigned bits;
    if (kb_attr_get(s, x, CKA_EC_PARAMS, &a, &alen) == CKR_OK)
        kb_ec_params_curve(a, alen, ca, sizeof ca, &bits);
    if (kb_attr_get(s, y, CKA_EC_PARAMS, &b, &blen) == CKR_OK)
        kb_ec_params_curve(b, blen, cb, sizeof cb, &bits);
    free(a);
    free(b);
    return ca[0] == '\0' || cb[0] == '\0' || strcmp(ca, cb) == 0;
}

/* What the private key object does not say (RSA modulus bits, EC curve), from the public
 * object paired with it. */
static void fill_from_pub(kb_session *s, kb_key *k)
{
    struct kb_key_facts *f = &k->facts;
    if (k->pub_handle == CK_INVALID_HANDLE || f->bits != 0)
        return;
    if (f->type == KB_KEY_RSA) {
        CK_ULONG bits = 0;
        CK_ATTRIBUTE mb = {CKA_MODULUS_BITS, &bits, sizeof bits};
        if (s->token->module->fn->C_GetAttributeValue(s->h, k->pub_handle, &mb, 1) == CKR_OK)
            f->bits = (unsigned)bits;
    } else if (f->type != KB_KEY_UNKNOWN) {
        unsigned char *v = NULL;
        CK_ULONG len = 0;
        if (kb_attr_get(s, k->pub_handle, CKA_EC_PARAMS, &v, &len) == CKR_OK)
            kb_ec_params_curve(v, len, f->curve, sizeof f->curve, &f->bits);
        free(v);
    }
}

/* The public half of k. From the private key object itself where the token shows it there
 * (then pub_handle is the public object with its CKA_ID and the same key, if any). Else
 * from the one public object with its CKA_ID, when the pairing is unambiguous; otherwise
 * k->pair_error names the objects. Returns -1 only when out of memory. */
static int read_public(kb_session *s, kb_key *k)
{
    struct kb_key_facts *f = &k->facts;
    CK_OBJECT_HANDLE *privs = NULL, *pubs = NULL;
    size_t n_priv = 0, n_pub = 0;
    char why[1024] = "", id_hex[2 * KB_ID_MAX + 1];
    kb_hex(f->id, f->id_len, id_hex);
    if (f->id_len > 0 &&
        (kb_find(s, CKO_PRIVATE_KEY, CKA_ID, f->id, f->id_len, &privs, &n_priv, NULL) != 0 ||
         kb_find(s, CKO_PUBLIC_KEY, CKA_ID, f->id, f->id_len, &pubs, &n_pub, NULL) != 0))
        snprintf(why, sizeof why, "its objects cannot be searched");
    /* The key material on the private key comes first: CKA_PUBLIC_KEY_INFO is a plain
     * attribute that some tokens (SoftHSM) let anyone logged in set. Stated beside the key
     * material, it must agree; stated alone, the public objects with the key's id must. */
    /* Two private keys under one CKA_ID: whichever the certificate matches, the signer (which
     * names the key by id and label) may get the other, and the facts may be the other's. */
    if (why[0] == '\0' && n_priv > 1) {
        char pl[200], ul[200];
        labels_of(s, privs, n_priv, pl, sizeof pl);
        labels_of(s, pubs, n_pub, ul, sizeof ul);
        snprintf(why, sizeof why,
                 "CKA_ID %s is on %zu private keys (%s) and %zu public key%s%s%s%s; remove the "
                 "objects that do not belong (see 'keybound keys')",
                 id_hex, n_priv, pl, n_pub, n_pub == 1 ? "" : "s", n_pub ? " (" : "", ul,
                 n_pub ? ")" : "");
    }
    unsigned char info[32];
    bool has_info = why[0] == '\0' && object_spki_info(s, k->handle, info);
    k->has_spki = why[0] == '\0' && object_spki(s, k->handle, f, k->spki_sha256);
    if (k->has_spki && has_info && memcmp(info, k->spki_sha256, 32) != 0) {
        snprintf(why, sizeof why,
                 "its CKA_PUBLIC_KEY_INFO is another key than its own key material");
    } else if (!k->has_spki && has_info) {
        memcpy(k->spki_sha256, info, 32);
        k->has_spki = true;
        for (size_t i = 0; i < n_pub && why[0] == '\0'; i++) {
            unsigned char other[32];
            if (object_spki(s, pubs[i], f, other) && memcmp(other, info, 32) != 0)
                snprintf(why, sizeof why,
                         "its CKA_PUBLIC_KEY_INFO differs from the public key object with its "
                         "CKA_ID %s",
                         id_hex);
        }
    }
    if (k->has_spki) {
        for (size_t i = 0; i < n_pub && k->pub_handle == CK_INVALID_HANDLE; i++) {
            unsigned char other[32];
            if (object_spki(s, pubs[i], f, other) && memcmp(other, k->spki_sha256, 32) == 0)
                k->pub_handle = pubs[i];
        }
    } else if (why[0] == '\0' && f->id_len == 0) {
        snprintf(why, sizeof why,
                 "the token does not show its public key on the private key object, and it "
                 "has no CKA_ID to find a public key object by");
    } else if (why[0] == '\0' && n_priv == 1 && n_pub == 0) {
        /* No public half on the token at all: nothing to pair, nothing guessed. The key
         * keeps its facts, but no certificate can be tied to it (has_spki is false). */
    } else if (why[0] == '\0' && (n_priv != 1 || n_pub != 1)) {
        char pl[200], ul[200];
        labels_of(s, privs, n_priv, pl, sizeof pl);
        labels_of(s, pubs, n_pub, ul, sizeof ul);
        char pubs_text[240];
        if (n_pub == 0)
            snprintf(pubs_text, sizeof pubs_text, "no public key");
        else
            snprintf(pubs_text, sizeof pubs_text, "%zu public key%s (%s)", n_pub,
                     n_pub == 1 ? "" : "s", ul);
        snprintf(why, sizeof why,
                 "the token does not show its public key on the private key object, and "
                 "CKA_ID %s is on %zu private key%s (%s) and %s; remove the objects that do "
                 "not belong (see 'keybound keys')",
                 id_hex, n_priv, n_priv == 1 ? "" : "s", pl, pubs_text);
    } else if (why[0] == '\0') {
        k->pub_handle = pubs[0];
        if (!same_key_type(s, k->handle, pubs[0]) ||
            (f->type != KB_KEY_RSA && !same_curve(s, k->handle, pubs[0])))
            snprintf(why, sizeof why,
                     "the public key object with its CKA_ID %s is of another key type or curve",
                     id_hex);
        else {
            fill_from_pub(s, k);
            k->has_spki = object_spki(s, pubs[0], f, k->spki_sha256);
        }
        if (why[0] == '\0' && !k->has_spki)
            snprintf(why, sizeof why,
                     "the public key object with its CKA_ID %s cannot be read as a public key",
                     id_hex);
    }
    free(privs);
    free(pubs);
    if (why[0] == '\0')
        return 0;
    k->has_spki = false;
    k->pub_handle = CK_INVALID_HANDLE;
    size_t need = strlen(why) + strlen(f->label) + strlen(s->token->facts.label) + 100;
    k->pair_error = malloc(need);
    if (k->pair_error == NULL)
        return -1;
    snprintf(k->pair_error, need, "key '%s' on token '%s' cannot be paired with its public key: %s",
             f->label, s->token->facts.label, why);
    return 0;
}

int kb_key_read(kb_session *s, CK_OBJECT_HANDLE priv, kb_key *k, kb_err *err)
{
    memset(k, 0, sizeof *k);
    k->token = s->token;
    k->handle = priv;
    k->pub_handle = CK_INVALID_HANDLE;
    struct kb_key_facts *f = &k->facts;
    unsigned char *v = NULL;
    CK_ULONG len = 0;

    if (kb_attr_get(s, priv, CKA_ID, &v, &len) == CKR_OK && len <= KB_ID_MAX) {
        memcpy(f->id, v, len);
        f->id_len = len;
    }
    free(v);
    if (kb_attr_get(s, priv, CKA_LABEL, &v, &len) == CKR_OK)
        copy_label(f->label, v, len);
    free(v);

    CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof kt};
    s->token->module->fn->C_GetAttributeValue(s->h, priv, &a, 1);
    f->type = kt == CKK_RSA          ? KB_KEY_RSA
              : kt == CKK_EC         ? KB_KEY_EC
              : kt == CKK_EC_EDWARDS ? KB_KEY_EDDSA
                                     : KB_KEY_UNKNOWN;

    f->sensitive = get_tri(s, priv, CKA_SENSITIVE);
    f->extractable = get_tri(s, priv, CKA_EXTRACTABLE);
    f->never_extractable = get_tri(s, priv, CKA_NEVER_EXTRACTABLE);
    f->always_sensitive = get_tri(s, priv, CKA_ALWAYS_SENSITIVE);
    f->local = get_tri(s, priv, CKA_LOCAL);
    f->private_obj = get_tri(s, priv, CKA_PRIVATE);
    f->always_authenticate = get_tri(s, priv, CKA_ALWAYS_AUTHENTICATE);
    f->sign = get_tri(s, priv, CKA_SIGN);

    if (f->type == KB_KEY_RSA) {
        if (kb_attr_get(s, priv, CKA_MODULUS, &v, &len) == CKR_OK)
            f->bits = kb_bignum_bits(v, len);
        free(v);
    } else if (f->type != KB_KEY_UNKNOWN) {
        if (kb_attr_get(s, priv, CKA_EC_PARAMS, &v, &len) == CKR_OK)
            kb_ec_params_curve(v, len, f->curve, sizeof f->curve, &f->bits);
        free(v);
    }
    if (read_public(s, k) != 0)
        return kb_err_set(err, "out of memory");
    fill_from_pub(s, k);
    k->uri = kb_uri_for(s->token, "private", f->label, f->id, f->id_len);
    if (k->uri == NULL)
        return kb_err_set(err, "out of memory");
    return 0;
}

bool kb_key_lacks_pss(const kb_key *k)
{
    return k->facts.type == KB_KEY_RSA &&
           !kb_token_has_mechanism(k->token, CKM_RSA_PKCS_PSS, CKF_SIGN);
}

void kb_key_clear(kb_key *k)
{
    free(k->uri);
    k->uri = NULL;
    free(k->pair_error);
    k->pair_error = NULL;
}

static void cert_parse(kb_cert *c)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != 0)
        return;
    gnutls_datum_t der = {c->der, (unsigned)c->der_len}, dn = {NULL, 0};
    if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) != 0)
        goto out;
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
        c->subject = strndup((char *)dn.data, dn.size);
        gnutls_free(dn.data);
    }
    if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
        c->issuer = strndup((char *)dn.data, dn.size);
        gnutls_free(dn.data);
    }
    c->not_before = gnutls_x509_crt_get_activation_time(crt);
    c->not_after = gnutls_x509_crt_get_expiration_time(crt);
    unsigned critical = 0;
    c->is_ca = gnutls_x509_crt_get_ca_status(crt, &critical) > 0;
    size_t size = sizeof c->sha256;
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, c->sha256, &size) != 0)
        goto out;
    size = sizeof c->spki_sha256;
    if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, c->spki_sha256, &size) != 0)
        goto out;
    c->parsed = c->subject != NULL && c->issuer != NULL;
out:
    gnutls_x509_crt_deinit(crt);
}

static void cert_clear(kb_cert *c)
{
    free(c->der);
    free(c->subject);
    free(c->issuer);
    free(c->uri);
}

static int read_cert(kb_session *s, CK_OBJECT_HANDLE h, kb_cert *c)
{
    memset(c, 0, sizeof *c);
    c->token = s->token;
    c->handle = h;
    c->key = -1;
    unsigned char *v = NULL;
    CK_ULONG len = 0;
    if (kb_attr_get(s, h, CKA_ID, &v, &len) == CKR_OK && len <= KB_ID_MAX) {
        memcpy(c->id, v, len);
        c->id_len = len;
    }
    free(v);
    if (kb_attr_get(s, h, CKA_LABEL, &v, &len) == CKR_OK)
        copy_label(c->label, v, len);
    free(v);
    if (kb_attr_get(s, h, CKA_VALUE, &v, &len) == CKR_OK) {
        c->der = v;
        c->der_len = len;
        cert_parse(c);
    }
    c->uri = kb_uri_for(s->token, "cert", c->label, c->id, c->id_len);
    return c->uri == NULL ? -1 : 0;
}

static bool filter_match(P11KitUri *filter, const char *label, const unsigned char *id,
                         size_t id_len)
{
    if (filter == NULL)
        return true;
    CK_ATTRIBUTE attrs[2] = {{CKA_LABEL, (void *)label, strlen(label)},
                             {CKA_ID, (void *)id, id_len}};
    return p11_kit_uri_match_attributes(filter, attrs, 2) == 1;
}

static bool want_class(P11KitUri *filter, CK_OBJECT_CLASS cls)
{
    CK_ATTRIBUTE *a = filter ? p11_kit_uri_get_attribute(filter, CKA_CLASS) : NULL;
    return a == NULL || (a->ulValueLen == sizeof cls && *(CK_OBJECT_CLASS *)a->pValue == cls);
}

/* Adds " (why)" or "; why" to o->left_out, once per distinct message. */
static int note_left_out(kb_objects *o, const char *why)
{
    if (o->left_out != NULL && strstr(o->left_out, why) != NULL)
        return 0;
    size_t had = o->left_out ? strlen(o->left_out) : 0, need = had + strlen(why) + 4;
    char *v = realloc(o->left_out, need);
    if (v == NULL)
        return -1;
    if (had == 0)
        snprintf(v, need, " (%s)", why);
    else
        snprintf(v + had - 1, need - had + 1, "; %s)", why);
    o->left_out = v;
    return 0;
}

void kb_objects_free(kb_objects *o)
{
    for (size_t i = 0; i < o->n_keys; i++)
        kb_key_clear(&o->keys[i]);
    for (size_t i = 0; i < o->n_certs; i++)
        cert_clear(&o->certs[i]);
    free(o->keys);
    free(o->certs);
    free(o->left_out);
    memset(o, 0, sizeof *o);
}

int kb_objects_list(kb_session *s, P11KitUri *filter, kb_objects *out, kb_err *err)
{
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0, first_key = out->n_keys;
    if (kb_find(s, CKO_PRIVATE_KEY, 0, NULL, 0, &h, &n, err) != 0)
        return -1;
    if (s->token->facts.login_required && !s->logged_in)
        out->hidden_private++;
    for (size_t i = 0; i < n; i++) {
        kb_key k;
        if (kb_key_read(s, h[i], &k, err) != 0)
            goto fail;
        if (!want_class(filter, CKO_PRIVATE_KEY) ||
            !filter_match(filter, k.facts.label, k.facts.id, k.facts.id_len)) {
            kb_key_clear(&k);
            continue;
        }
        if (k.pair_error != NULL && note_left_out(out, k.pair_error) != 0) {
            kb_key_clear(&k);
            goto oom;
        }
        kb_key *v = realloc(out->keys, (out->n_keys + 1) * sizeof *v);
        if (v == NULL) {
            kb_key_clear(&k);
            goto oom;
        }
        out->keys = v;
        out->keys[out->n_keys++] = k;
    }
    free(h);
    h = NULL;
    if (kb_find(s, CKO_CERTIFICATE, 0, NULL, 0, &h, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        kb_cert c;
        if (read_cert(s, h[i], &c) != 0) {
            cert_clear(&c);
            goto oom;
        }
        for (size_t j = first_key; j < out->n_keys; j++) {
            const kb_key *k = &out->keys[j];
            bool same_id = c.id_len > 0 && c.id_len == k->facts.id_len &&
                           memcmp(c.id, k->facts.id, c.id_len) == 0;
            /* Tied by the public key only: a key whose public half cannot be told has no
             * certificate (a CKA_ID is a label anyone can copy). An unreadable certificate
             * with the key's id stays with it, to be reported as unreadable. */
            bool same_pub =
                c.parsed && k->has_spki && memcmp(c.spki_sha256, k->spki_sha256, 32) == 0;
            if (same_pub || (same_id && !c.parsed && k->has_spki)) {
                c.key = (long)j;
                c.id_mismatch = false;
                break;
            }
            if (same_id && k->has_spki) /* known to be another key, not just unknown */
                c.id_mismatch = true;
        }
        bool listed = c.key >= 0 || (want_class(filter, CKO_CERTIFICATE) &&
                                     filter_match(filter, c.label, c.id, c.id_len));
        if (!listed) {
            cert_clear(&c);
            continue;
        }
        kb_cert *v = realloc(out->certs, (out->n_certs + 1) * sizeof *v);
        if (v == NULL) {
            cert_clear(&c);
            goto oom;
        }
        out->certs = v;
        out->certs[out->n_certs++] = c;
    }
    free(h);
    return 0;
oom:
    kb_err_set(err, "out of memory");
fail:
    free(h);
    return -1;
}

/* Tokens chosen by token_uri; objects on them chosen by object_uri (NULL: all). */
static int collect(kb_p11 *p, P11KitUri *token_uri, P11KitUri *object_uri, const kb_pin_opts *pin,
                   bool login, kb_token_list *tokens, kb_objects *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    if (kb_p11_tokens(p, token_uri, KB_TOKENS_INITIALIZED, tokens, err) != 0)
        return -1;
    /* A PIN from a file or a variable belongs to one token: tried on several, it would
     * spend a try on each of the others. The terminal asks per token, naming it. */
    size_t need_login = 0;
    for (size_t i = 0; i < tokens->n; i++)
        need_login += tokens->v[i].facts.login_required;
    if (login && need_login > 1 && !kb_pin_is_interactive(pin)) {
        out->pin_withheld = need_login;
        login = false;
    }
    for (size_t i = 0; i < tokens->n; i++) {
        kb_session s;
        if (kb_session_open(&tokens->v[i], false, &s, err) != 0)
            goto fail;
        int rc = 0;
        if (login && tokens->v[i].facts.login_required && kb_pin_available(pin))
            rc = kb_session_login(&s, pin, err);
        if (rc == 0)
            rc = kb_objects_list(&s, object_uri, out, err);
        kb_session_close(&s);
        if (rc != 0)
            goto fail;
    }
    return 0;
fail:
    kb_objects_free(out);
    kb_token_list_free(tokens);
    return -1;
}

int kb_objects_collect(kb_p11 *p, P11KitUri *uri, const kb_pin_opts *pin, bool login,
                       kb_token_list *tokens, kb_objects *out, kb_err *err)
{
    return collect(p, uri, uri, pin, login, tokens, out, err);
}

static bool key_matches(P11KitUri *uri, const kb_key *k)
{
    return want_class(uri, CKO_PRIVATE_KEY) &&
           filter_match(uri, k->facts.label, k->facts.id, k->facts.id_len);
}

/* "'a' on 'dev', 'b' on 'dev'": the keys that match uri (NULL: all). */
static void describe_keys(const kb_objects *o, P11KitUri *uri, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < o->n_keys && used < len; i++)
        if (uri == NULL || key_matches(uri, &o->keys[i]))
            used += (size_t)snprintf(buf + used, len - used, "%s'%s' on '%s'", used ? ", " : "",
                                     o->keys[i].facts.label, o->keys[i].token->facts.label);
}

const char *kb_objects_hint(const kb_objects *o)
{
    if (o->pin_withheld)
        return " (several tokens need a login and one PIN is not tried on them all: add "
               "token= or serial= to choose one)";
    if (o->hidden_private)
        return " (private keys need a PIN to be seen)";
    if (o->left_out != NULL)
        return o->left_out;
    return "";
}

/* "pkcs11:token=LABEL" (RFC 7512: what is not unreserved is percent-encoded). p11-kit
 * cannot leave out the token's other fields when it formats a URI. */
static void token_uri(const kb_token *t, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = (size_t)snprintf(out, len, "pkcs11:token=");
    const char *l = t->facts.label;
    for (size_t i = 0; l[i] != '\0' && used + 4 < len; i++) {
        unsigned char ch = (unsigned char)l[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~", ch) != NULL) {
            out[used++] = (char)ch;
        } else {
            out[used++] = '%';
            out[used++] = hex[ch >> 4];
            out[used++] = hex[ch & 15];
        }
    }
    out[used < len ? used : len - 1] = '\0';
}

int kb_objects_pin_reachable(kb_p11 *p, P11KitUri *uri, const kb_pin_opts *pin, kb_err *err)
{
    if (kb_pin_available(pin))
        return 0;
    kb_token_list tokens;
    if (kb_p11_tokens(p, uri, KB_TOKENS_INITIALIZED, &tokens, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < tokens.n && rc == 0; i++)
        if (tokens.v[i].facts.login_required)
            rc = kb_err_set(err,
                            "token '%s' needs a PIN and there is no terminal: give --pin-file, "
                            "--pin-env or LoadCredential=keybound.pin",
                            tokens.v[i].facts.label);
    kb_token_list_free(&tokens);
    return rc;
}

bool kb_objects_ambiguous(const kb_objects *o, kb_err *err)
{
    if (!o->pin_withheld)
        return false;
    /* Certificates are public: the tokens that hold one are the candidates. */
    const kb_token *with[8];
    size_t n = 0;
    for (size_t i = 0; i < o->n_certs && n < 8; i++) {
        size_t j = 0;
        while (j < n && with[j] != o->certs[i].token)
            j++;
        if (j == n)
            with[n++] = o->certs[i].token;
    }
    if (n == 0)
        return false;
    char list[8 * (3 * KB_LABEL_MAX + 32)] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++) {
        char u[3 * KB_LABEL_MAX + 16];
        token_uri(with[i], u, sizeof u);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s--key '%s'",
                                 i == 0       ? ""
                                 : i + 1 == n ? " or "
                                              : ", ",
                                 u);
    }
    if (n == 1)
        kb_err_set(err,
                   "token '%s' has a key with a certificate, and %zu tokens need a login (one "
                   "PIN is not tried on them all): pass %s",
                   with[0]->facts.label, o->pin_withheld, list);
    else
        kb_err_set(err, "%zu tokens have keys with certificates: pass %s", n, list);
    return true;
}

int kb_objects_one_key(kb_p11 *p, P11KitUri *uri, const char *uri_text, const kb_pin_opts *pin,
                       kb_token_list *tokens, kb_objects *objs, kb_key **out, kb_err *err)
{
    /* Everything on the matching tokens, read with one login: when the URI names no key,
     * the error can say which keys are there. */
    if (collect(p, uri, NULL, pin, true, tokens, objs, err) != 0)
        return -1;
    size_t hits = 0, hit = 0;
    const char *unpaired = NULL;
    for (size_t i = 0; i < objs->n_keys; i++)
        if (key_matches(uri, &objs->keys[i])) {
            hits++;
            hit = i;
            if (unpaired == NULL)
                unpaired = objs->keys[i].pair_error;
        }
    /* A key whose public half cannot be told is not used for anything: its certificate
     * match and its facts would be a guess. */
    if (unpaired != NULL) {
        kb_err_set(err, "%s", unpaired);
        kb_objects_free(objs);
        kb_token_list_free(tokens);
        return -1;
    }
    if (hits == 1) {
        *out = &objs->keys[hit];
        return 0;
    }
    char *shown = kb_uri_redact(uri_text), keys[400];
    if (tokens->n == 0) {
        kb_p11_no_match(p, uri_text, "token", err);
    } else if (hits == 0) {
        describe_keys(objs, NULL, keys, sizeof keys);
        kb_err_set(err, "URI '%s' matches no private key; keys on the %zu token%s it matches: %s%s",
                   shown ? shown : "?", tokens->n, tokens->n == 1 ? "" : "s",
                   objs->n_keys ? keys : "none", kb_objects_hint(objs));
    } else {
        describe_keys(objs, uri, keys, sizeof keys);
        kb_err_set(err, "URI '%s' matches %zu keys: %s; add object= or id= to choose one",
                   shown ? shown : "?", hits, keys);
    }
    free(shown);
    kb_objects_free(objs);
    kb_token_list_free(tokens);
    return -1;
}
