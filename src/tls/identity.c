#include "config.h"

#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/util/log.h"

static int sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
                     unsigned flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
    (void)key;
    kb_identity *id = userdata;
    kb_err err;
    if (kb_signer_sign_data2(id->signer, algo, flags, data, sig, &err) != 0) {
        kb_log(KB_LOG_ERROR, "%s", err.msg);
        return GNUTLS_E_PK_SIGN_FAILED;
    }
    return 0;
}

static int sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
                     unsigned flags, const gnutls_datum_t *hash, gnutls_datum_t *sig)
{
    (void)key;
    kb_identity *id = userdata;
    kb_err err;
    if (kb_signer_sign_hash2(id->signer, algo, flags, hash, sig, &err) != 0) {
        kb_log(KB_LOG_ERROR, "%s", err.msg);
        return GNUTLS_E_PK_SIGN_FAILED;
    }
    return 0;
}

static int info(gnutls_privkey_t key, unsigned flags, void *userdata)
{
    (void)key;
    const kb_identity *id = userdata;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
        return id->pk;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
        return (int)id->bits;
    if (flags & GNUTLS_PRIVKEY_INFO_SIGN_ALGO) {
        if (id->pk == GNUTLS_PK_EDDSA_ED25519)
            return GNUTLS_SIGN_EDDSA_ED25519;
        if (id->pk == GNUTLS_PK_EDDSA_ED448)
            return GNUTLS_SIGN_EDDSA_ED448;
        return 0;
    }
    if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO) {
        gnutls_sign_algorithm_t algo = GNUTLS_FLAGS_TO_SIGN_ALGO(flags);
        if (!gnutls_sign_supports_pk_algorithm(algo, (gnutls_pk_algorithm_t)id->pk))
            return 0;
        /* The token must have the PSS mechanism for an RSA-PSS signature. */
        return !(id->rsa_without_pss && gnutls_sign_get_pk_algorithm(algo) == GNUTLS_PK_RSA_PSS);
    }
    return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
}

static bool self_signed(const kb_cert *c)
{
    return c->subject != NULL && c->issuer != NULL && strcmp(c->subject, c->issuer) == 0;
}

static int add_pcert(kb_identity *id, const kb_cert *c, kb_err *err)
{
    gnutls_pcert_st *v = realloc(id->pcerts, (id->n_pcerts + 1) * sizeof *v);
    if (v == NULL)
        return kb_err_set(err, "out of memory");
    id->pcerts = v;
    gnutls_datum_t der = {c->der, (unsigned)c->der_len};
    int rc = gnutls_pcert_import_x509_raw(&v[id->n_pcerts], &der, GNUTLS_X509_FMT_DER, 0);
    if (rc < 0)
        return kb_err_set(err, "certificate '%s' on token '%s' cannot be used: %s", c->label,
                          c->token->facts.label, gnutls_strerror(rc));
    id->n_pcerts++;
    return 0;
}

int kb_identity_new(const kb_device *dev, const kb_objects *objs, kb_identity **out, kb_err *err)
{
    *out = NULL;
    if (dev->cert == NULL)
        return kb_err_set(err, "key '%s' has no certificate to present", dev->key->facts.label);
    kb_identity *id = calloc(1, sizeof *id);
    if (id == NULL)
        return kb_err_set(err, "out of memory");
    const kb_key *k = dev->key;
    snprintf(id->key_uri, sizeof id->key_uri, "%s", k->uri);
    snprintf(id->subject, sizeof id->subject, "%s", dev->cert->subject);
    snprintf(id->token, sizeof id->token, "%s", k->token->facts.label);
    id->not_after = dev->cert->not_after;
    if (add_pcert(id, dev->cert, err) != 0)
        goto fail;
    for (size_t i = 0; i < objs->n_certs; i++) {
        const kb_cert *c = &objs->certs[i];
        if (c->key < 0 && c->is_ca && c->parsed && c->token == k->token && !self_signed(c) &&
            add_pcert(id, c, err) != 0)
            goto fail;
    }
    if (kb_signer_open(k->uri, &id->signer, err) != 0 ||
        kb_signer_info(id->signer, &id->pk, &id->bits, err) != 0)
        goto fail;
    id->rsa_without_pss =
        id->pk == GNUTLS_PK_RSA && !kb_token_has_mechanism(k->token, CKM_RSA_PKCS_PSS, CKF_SIGN);
    int rc = gnutls_privkey_init(&id->privkey);
    if (rc == 0)
        rc = gnutls_privkey_import_ext4(id->privkey, id, sign_data, sign_hash, NULL, NULL, info, 0);
    if (rc < 0) {
        kb_err_set(err, "cannot set up the TLS key: %s", gnutls_strerror(rc));
        goto fail;
    }
    *out = id;
    return 0;
fail:
    kb_identity_free(id);
    return -1;
}

void kb_identity_free(kb_identity *id)
{
    if (id == NULL)
        return;
    if (id->privkey != NULL)
        gnutls_privkey_deinit(id->privkey);
    for (unsigned i = 0; i < id->n_pcerts; i++)
        gnutls_pcert_deinit(&id->pcerts[i]);
    free(id->pcerts);
    kb_signer_free(id->signer);
    free(id);
}
