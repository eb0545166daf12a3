#include "config.h"

#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/util/log.h"

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
    id->rsa_without_pss = kb_key_lacks_pss(k);
    if (kb_signer_privkey(id->signer, id->rsa_without_pss, &id->privkey, err) != 0)
        goto fail;
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
