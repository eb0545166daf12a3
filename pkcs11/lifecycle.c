/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "lifecycle.h"

#include "pkcs11/store.h"
#include "src/util/log.h"

int kb_key_supersede(kb_session *s, const kb_key *old, const kb_key *fresh, bool *relabelled,
                     kb_err *err)
{
    const struct kb_key_facts *f = &old->facts;
    kb_err why;
    *relabelled = false;
    if (kb_destroy_matching(s, CKO_PRIVATE_KEY, CKA_ID, f->id, f->id_len, "the old key", &why) != 0)
        return kb_err_set(err, "%s; the old key '%s' stays", why.msg, f->label);
    int rc = 0;
    if (kb_destroy_matching(s, CKO_PUBLIC_KEY, CKA_ID, f->id, f->id_len, "the old public key",
                            &why) != 0 ||
        kb_destroy_matching(s, CKO_CERTIFICATE, CKA_ID, f->id, f->id_len, "an old certificate",
                            &why) != 0)
        rc = kb_err_set(err, "%s", why.msg);
    if (kb_relabel(s, fresh->facts.id, fresh->facts.id_len, f->label, &why) != 0)
        rc = kb_err_set(err, "%s; the new key keeps the label '%s'", why.msg, fresh->facts.label);
    else
        *relabelled = true;
    return rc;
}

int kb_key_remove(kb_session *s, const kb_key *k, kb_err *err)
{
    const struct kb_key_facts *f = &k->facts;
    if (kb_destroy_matching(s, CKO_CERTIFICATE, CKA_ID, f->id, f->id_len,
                            "a certificate of the "
                            "new key",
                            err) != 0)
        return -1;
    return kb_destroy_key(s, k, err);
}

void kb_prune_expired(kb_session *s, const kb_objects *objs, const kb_key *k, long long now)
{
    for (size_t i = 0; i < objs->n_certs; i++) {
        const kb_cert *c = &objs->certs[i];
        kb_err err;
        if (c->key < 0 || &objs->keys[c->key] != k || !c->parsed || c->not_after >= now)
            continue;
        if (kb_destroy_matching(s, CKO_CERTIFICATE, CKA_VALUE, c->der, c->der_len,
                                "an expired certificate", &err) == 0)
            kb_log(KB_LOG_INFO, "removed the expired certificate %s", c->subject);
        else
            kb_log(KB_LOG_WARN, "%s", err.msg);
    }
}
