/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "keystatus.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "src/attest/attester.h"
#include "src/network/network.h"
#include "src/tls/device.h"
#include "src/util/log.h"
#include "src/util/statedir.h"

static char *dup(const char *s)
{
    return strdup(s ? s : "");
}

static int fill(struct kb_key_status *ks, const kb_device *d, const kb_policy *pol, long long now)
{
    const kb_key *k = d->key;
    ks->label = dup(k->facts.label);
    ks->key_uri = dup(k->uri);
    ks->token_label = dup(k->token->facts.label);
    snprintf(ks->token_serial, sizeof ks->token_serial, "%s", k->token->facts.serial);
    if ((ks->verdict = malloc(sizeof *ks->verdict)) == NULL || !ks->label || !ks->key_uri ||
        !ks->token_label)
        return -1;
    kb_policy_evaluate(pol, &d->facts, now, ks->verdict);
    if (k->has_spki)
        kb_net_profiles_of(k->spki_sha256, &ks->network_profiles, &ks->n_network_profiles);
    ks->renewal = KB_RENEWAL_NO_CERT;
    if (d->cert == NULL)
        return 0;
    if ((ks->cert_der = malloc(d->cert->der_len)) == NULL)
        return -1;
    memcpy(ks->cert_der, d->cert->der, d->cert->der_len);
    ks->cert_der_len = d->cert->der_len;
    ks->cert_subject = dup(d->cert->subject);
    ks->cert_issuer = dup(d->cert->issuer);
    ks->not_after = (long long)d->cert->not_after;
    ks->cert_valid = d->cert_valid;
    ks->seconds_left = ks->not_after - now;
    /* The policy's renew-before is what `renew --if-expires-within` is set from in the
     * shipped timer; without it only a certificate that is no longer valid is due. */
    if (pol->renew_before >= 0)
        ks->renew_from = ks->not_after - pol->renew_before;
    bool due = !d->cert_valid || ks->seconds_left <= 0 ||
               (pol->renew_before >= 0 && ks->seconds_left <= pol->renew_before);
    ks->renewal = due ? KB_RENEWAL_DUE : KB_RENEWAL_NOT_DUE;
    return 0;
}

int kb_key_status_collect(kb_p11 *p, P11KitUri *uri, const kb_pin_opts *pin, const kb_policy *pol,
                          long long now, struct kb_key_status_list *out, kb_err *err)
{
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_trust *trust = NULL;
    kb_attester *attester = NULL;
    struct kb_key_status *v = NULL;
    size_t used = 0;
    char dir[PATH_MAX];
    kb_err why;
    bool have_dir = kb_state_dir(dir, sizeof dir, false, &why) == 0;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (kb_objects_collect(p, uri, pin, true, &tokens, &objs, err) != 0)
        goto out;
    out->n_tokens = tokens.n;
    out->hidden_private = objs.hidden_private;
    out->pin_withheld = objs.pin_withheld > 0;
    snprintf(out->hint, sizeof out->hint, "%s", kb_objects_hint(&objs));
    /* status shows each key's decision: under require-attestation that is the TPM's word
     * too, proved afresh (an admission evaluation like check's). */
    if ((trust = kb_trust_load(pol)) == NULL ||
        kb_attester_attach(trust, pol, p, pin, 0, &attester, err) != 0 ||
        (objs.n_keys && (v = calloc(objs.n_keys, sizeof *v)) == NULL)) {
        kb_err_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < objs.n_keys; i++) {
        const kb_key *k = &objs.keys[i];
        bool has_cert = false;
        for (size_t j = 0; j < objs.n_certs && !has_cert; j++)
            has_cert = objs.certs[j].key == (long)i;
        struct kb_key_status *ks = &v[used];
        int st = have_dir && k->facts.id_len
                     ? kb_keystate_load(dir, k->token->facts.serial, k->facts.id, k->facts.id_len,
                                        &ks->state, &why)
                     : 1;
        if (st < 0)
            kb_log(KB_LOG_WARN, "%s", why.msg);
        ks->have_state = st == 0;
        /* A key without a certificate is shown only while keybound waits for one. */
        if (!has_cert && !(ks->have_state && ks->state.pending.active)) {
            kb_keystate_clear(&ks->state);
            ks->have_state = false;
            continue;
        }
        kb_device d;
        if (kb_device_gather(&objs, i, trust, now, NULL, &d, err) != 0) {
            kb_keystate_clear(&ks->state);
            goto out;
        }
        used++;
        if (fill(ks, &d, pol, now) != 0) {
            kb_err_set(err, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    out->v = v;
    out->n = used;
    if (rc != 0)
        kb_key_status_list_free(out);
    kb_trust_free(trust);
    kb_attester_free(attester);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    return rc;
}

void kb_key_status_list_free(struct kb_key_status_list *l)
{
    struct kb_key_status *v = l->v;
    for (size_t i = 0; v != NULL && i < l->n; i++) {
        free(v[i].label);
        free(v[i].key_uri);
        free(v[i].token_label);
        free(v[i].cert_der);
        free(v[i].cert_subject);
        free(v[i].cert_issuer);
        free(v[i].verdict);
        kb_net_names_free(v[i].network_profiles, v[i].n_network_profiles);
        kb_keystate_clear(&v[i].state);
    }
    free(v);
    memset(l, 0, sizeof *l);
}
