/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "keygen.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/util/log.h"

/* DER ECParameters: named curves by OID. */
static const unsigned char oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const unsigned char oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

static const struct keytype {
    const char *name;
    CK_MECHANISM_TYPE mech;
    CK_KEY_TYPE key_type;
    CK_ULONG bits;
    const unsigned char *params;
    size_t params_len;
} types[] = {
    {"ec-p256", CKM_EC_KEY_PAIR_GEN, CKK_EC, 256, oid_p256, sizeof oid_p256},
    {"ec-p384", CKM_EC_KEY_PAIR_GEN, CKK_EC, 384, oid_p384, sizeof oid_p384},
    {"rsa-2048", CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, 2048, NULL, 0},
    {"rsa-3072", CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, 3072, NULL, 0},
    {"rsa-4096", CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, 4096, NULL, 0},
    {"ed25519", CKM_EC_EDWARDS_KEY_PAIR_GEN, CKK_EC_EDWARDS, 256, oid_ed25519, sizeof oid_ed25519},
};

static const struct keytype *find_type(const char *name)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

bool kb_keygen_type_known(const char *name)
{
    return find_type(name) != NULL;
}

static const char *mech_name(CK_MECHANISM_TYPE m)
{
    return m == CKM_EC_KEY_PAIR_GEN           ? "CKM_EC_KEY_PAIR_GEN"
           : m == CKM_RSA_PKCS_KEY_PAIR_GEN   ? "CKM_RSA_PKCS_KEY_PAIR_GEN"
           : m == CKM_EC_EDWARDS_KEY_PAIR_GEN ? "CKM_EC_EDWARDS_KEY_PAIR_GEN"
                                              : "?";
}

static int check_mechanism(kb_token *t, const struct keytype *kt, kb_err *err)
{
    CK_MECHANISM_INFO mi;
    CK_RV rv = t->module->fn->C_GetMechanismInfo(t->slot, kt->mech, &mi);
    if (rv != CKR_OK || !(mi.flags & CKF_GENERATE_KEY_PAIR))
        return kb_err_set(err,
                          "token '%s' cannot generate %s keys (it lacks %s); choose another "
                          "--type (see 'keybound keygen --help')",
                          t->facts.label, kt->name, mech_name(kt->mech));
    /* Tokens report RSA sizes in bits and EC sizes in bits or bytes: only RSA is checked. */
    if (kt->key_type == CKK_RSA && mi.ulMaxKeySize != 0 &&
        (kt->bits > mi.ulMaxKeySize || kt->bits < mi.ulMinKeySize))
        return kb_err_set(err, "token '%s' makes RSA keys of %lu to %lu bits only, not %s",
                          t->facts.label, (unsigned long)mi.ulMinKeySize,
                          (unsigned long)mi.ulMaxKeySize, kt->name);
    return 0;
}

static int label_taken(kb_session *s, const char *label, kb_err *err)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};
    for (size_t i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE *h = NULL;
        size_t n = 0;
        if (kb_find(s, classes[i], CKA_LABEL, label, strlen(label), &h, &n, err) != 0)
            return -1;
        free(h);
        if (n > 0)
            return kb_err_set(err,
                              "token '%s' already has a key labelled '%s'; choose another "
                              "--label (see 'keybound keys')",
                              s->token->facts.label, label);
    }
    return 0;
}

/* What the template asked for, as read back. A token may accept a template and still
 * store other values; the key is only kept when every one of these holds. */
static const char *template_broken(const kb_key *k, const unsigned char *id, size_t id_len)
{
    const struct kb_key_facts *f = &k->facts;
    if (f->sensitive != KB_TRI_TRUE)
        return "CKA_SENSITIVE is not true";
    if (f->extractable != KB_TRI_FALSE)
        return "CKA_EXTRACTABLE is not false";
    if (f->never_extractable != KB_TRI_TRUE)
        return "CKA_NEVER_EXTRACTABLE is not true";
    if (f->always_sensitive != KB_TRI_TRUE)
        return "CKA_ALWAYS_SENSITIVE is not true";
    if (f->local != KB_TRI_TRUE)
        return "CKA_LOCAL is not true";
    if (f->private_obj != KB_TRI_TRUE)
        return "CKA_PRIVATE is not true";
    if (f->sign != KB_TRI_TRUE)
        return "CKA_SIGN is not true";
    if (f->id_len != id_len || memcmp(f->id, id, id_len) != 0)
        return "CKA_ID differs from the one given";
    if (k->pub_handle == CK_INVALID_HANDLE)
        return "the public key has another CKA_ID";
    return NULL;
}

int kb_keygen(kb_session *s, const char *type, const char *label, kb_key *k, kb_err *err)
{
    memset(k, 0, sizeof *k);
    const struct keytype *kt = find_type(type);
    if (kt == NULL)
        return kb_err_set(err,
                          "key type '%s' is unknown; use ec-p256, ec-p384, rsa-2048, "
                          "rsa-3072, rsa-4096 or ed25519",
                          type);
    if (*label == '\0' || strlen(label) >= KB_LABEL_MAX)
        return kb_err_set(err, "key label must have 1 to %d bytes", KB_LABEL_MAX - 1);
    if (check_mechanism(s->token, kt, err) != 0 || label_taken(s, label, err) != 0)
        return -1;

    /* One id for both halves: left to the token or to GnuTLS, the key and its later
     * certificate can end up with different ids. */
    unsigned char id[20];
    if (gnutls_rnd(GNUTLS_RND_RANDOM, id, sizeof id) != 0)
        return kb_err_set(err, "cannot get random bytes for the key id");

    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY, priv_class = CKO_PRIVATE_KEY;
    CK_KEY_TYPE key_type = kt->key_type;
    CK_ULONG bits = kt->bits;
    static const CK_BYTE exponent[] = {0x01, 0x00, 0x01};
    CK_ATTRIBUTE pub[9] = {
        {CKA_CLASS, &pub_class, sizeof pub_class},
        {CKA_KEY_TYPE, &key_type, sizeof key_type},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_ID, id, sizeof id},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_ULONG n_pub = 7;
    if (kt->key_type == CKK_RSA) {
        pub[n_pub++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof bits};
        pub[n_pub++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, (void *)exponent, sizeof exponent};
    } else {
        pub[n_pub++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)kt->params, kt->params_len};
    }
    CK_ATTRIBUTE priv[] = {
        {CKA_CLASS, &priv_class, sizeof priv_class},
        {CKA_KEY_TYPE, &key_type, sizeof key_type},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_ID, id, sizeof id},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_MECHANISM mech = {kt->mech, NULL, 0};
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    CK_FUNCTION_LIST *fn = s->token->module->fn;
    CK_RV rv = fn->C_GenerateKeyPair(s->h, &mech, pub, n_pub, priv, sizeof priv / sizeof priv[0],
                                     &hpub, &hpriv);
    if (rv != CKR_OK && s->token->module->tpm && rv == CKR_GENERAL_ERROR)
        return kb_err_set(err, "the TPM of token '%s' failed to generate a %s key (%s): %s",
                          s->token->facts.label, kt->name, kb_ckr_name(rv),
                          kb_tpm_failure_hint(s->token));
    if (rv != CKR_OK)
        return kb_err_set(err, "token '%s' refused to generate a %s key: %s", s->token->facts.label,
                          kt->name, kb_ckr_name(rv));

    const char *broken = "its attributes cannot be read";
    if (kb_key_read(s, hpriv, k, err) == 0 && (broken = template_broken(k, id, sizeof id)) == NULL)
        return 0;
    kb_key_clear(k);
    CK_RV d1 = fn->C_DestroyObject(s->h, hpriv), d2 = fn->C_DestroyObject(s->h, hpub);
    if (d1 != CKR_OK || d2 != CKR_OK)
        kb_log(KB_LOG_ERROR,
               "could not destroy the rejected key '%s' on token '%s' (%s); "
               "remove it by hand",
               label, s->token->facts.label, kb_ckr_name(d1 != CKR_OK ? d1 : d2));
    return kb_err_set(err,
                      "token '%s' did not honour the key template: %s; the new key was "
                      "destroyed",
                      s->token->facts.label, broken);
}
