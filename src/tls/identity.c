/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/tls/chain.h"
#include "src/util/log.h"

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

int kb_identity_path(const kb_cert *leaf, const kb_objects *objs, const kb_cert **path,
                     unsigned *len, kb_err *err)
{
    gnutls_x509_crt_t leaf_crt = kb_cert_x509(leaf), *cands = NULL;
    size_t *from = NULL;
    unsigned n = 0, idx[KB_CHAIN_MAX];
    int rc = -1;
    *len = 0;
    if (leaf_crt == NULL) {
        kb_err_set(err, "certificate '%s' on token '%s' cannot be parsed", leaf->label,
                   leaf->token->facts.label);
        goto out;
    }
    cands = calloc(objs->n_certs ? objs->n_certs : 1, sizeof *cands);
    from = calloc(objs->n_certs ? objs->n_certs : 1, sizeof *from);
    if (cands == NULL || from == NULL) {
        kb_err_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < objs->n_certs; i++) {
        const kb_cert *c = &objs->certs[i];
        if (c == leaf || c->key >= 0 || !c->parsed || c->token != leaf->token)
            continue;
        if ((cands[n] = kb_cert_x509(c)) != NULL)
            from[n++] = i;
    }
    if (kb_chain_build(leaf_crt, cands, n, KB_CHAIN_MAX, (long long)time(NULL), idx, len, err) !=
        0) {
        if (err != NULL) {
            size_t used = strlen(err->msg);
            snprintf(err->msg + used, sizeof err->msg - used,
                     " on token '%s'; remove the extra CA certificates from it",
                     leaf->token->facts.label);
        }
        goto out;
    }
    for (unsigned i = 0; i < *len; i++)
        path[i] = &objs->certs[from[idx[i]]];
    rc = 0;
out:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(cands[i]);
    free(cands);
    free(from);
    if (leaf_crt != NULL)
        gnutls_x509_crt_deinit(leaf_crt);
    return rc;
}

/* Only the issuer path is sent, in order, without the anchor. */
static int add_path(kb_identity *id, const kb_cert *leaf, const kb_objects *objs, kb_err *err)
{
    const kb_cert *path[KB_CHAIN_MAX];
    unsigned len = 0;
    if (kb_identity_path(leaf, objs, path, &len, err) != 0)
        return -1;
    for (unsigned i = 0; i < len; i++)
        if (add_pcert(id, path[i], err) != 0)
            return -1;
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
    snprintf(id->label, sizeof id->label, "%s", k->facts.label);
    snprintf(id->subject, sizeof id->subject, "%s", dev->cert->subject);
    snprintf(id->token, sizeof id->token, "%s", k->token->facts.label);
    id->not_after = dev->cert->not_after;
    if (add_pcert(id, dev->cert, err) != 0 || add_path(id, dev->cert, objs, err) != 0)
        goto fail;
    if (kb_signer_open(k->uri, &id->signer, err) != 0)
        goto fail;
    kb_signer_set_token(id->signer, k->token);
    if (kb_signer_info(id->signer, &id->pk, &id->bits, err) != 0)
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
