/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkcs11/objects.h"
#include "pkcs11/quirks.h"
#include "pkcs11/recovery.h"
#include "pkcs11/uri.h"
#include "policy/render.h"
#include "src/attest/attester.h"
#include "src/tls/certjson.h"
#include "src/tls/device.h"
#include "src/util/hostport.h"
#include "src/util/log.h"
#include "src/util/trustfile.h"

/* Asked by kb_tls_reauth on a worker: a device the policy no longer admits (a reload
 * retired its generation) or whose certificate has expired answers nothing. */
static int gen_admitted(void *arg, kb_err *err)
{
    struct gen *g = arg;
    pthread_mutex_lock(&g->x->state_lock);
    bool retired = g->retired;
    pthread_mutex_unlock(&g->x->state_lock);
    if (retired)
        return kb_err_set(err, "the device is no longer admitted for this endpoint");
    if (g->id->not_after != 0 && (long long)time(NULL) > g->id->not_after)
        return kb_err_set(err, "the device certificate %s has expired", g->id->subject);
    return 0;
}

/* Adds g's to sum. */
static void gen_count(const struct gen *g, struct kb_tun_totals *sum)
{
    struct kb_tls_counts n;
    kb_tls_counts(g->client, &n);
    sum->tls.full += n.full;
    sum->tls.resumed += n.resumed;
    sum->tls.post_handshake += n.post_handshake;
    sum->tls.renegotiations += n.renegotiations;
    sum->tls.reauth_refused += n.reauth_refused;
    sum->tls.redone += n.redone;
    sum->sigs += kb_signer_signatures(g->id->signer);
    kb_signer_latency(g->id->signer, &sum->latency);
}

void kb_tun_totals(const struct tunnel *t, struct kb_tun_totals *out)
{
    *out = t->past;
    for (const struct gen *g = t->gens; g != NULL; g = g->next_live)
        gen_count(g, out);
}

void kb_tun_gen_put(struct gen *g)
{
    if (g != NULL && --g->refs == 0) {
        if (g->t != NULL) {
            struct tunnel *t = g->t;
            gen_count(g, &t->past);
            struct gen **pp = &t->gens;
            while (*pp != NULL && *pp != g)
                pp = &(*pp)->next_live;
            if (*pp == g)
                *pp = g->next_live;
        }
        kb_tls_client_free(g->client);
        kb_identity_free(g->id);
        for (size_t i = 0; i < g->peer.n_pins; i++)
            free(g->peer.pins[i]);
        free(g->peer.pins);
        free(g->priority);
        free(g);
    }
}

/* The generation's settings (a copy of the tunnel's now) and its peer as they and the
 * policy's endpoint rule say. */
static int gen_peer(struct gen *g, const kb_tunnel_conf *now, const kb_policy *pol, kb_err *err)
{
    g->conf = *now;
    const kb_tunnel_conf *conf = &g->conf;
    kb_tls_peer *peer = &g->peer;
    if (kb_hostport_parse(conf->connect, peer->host, sizeof peer->host, &peer->port, err) != 0)
        return -1;
    const struct kb_endpoint_rule *rule = kb_policy_endpoint(pol, peer->host, peer->port);
    if (kb_tls_peer_apply(peer, rule, conf->ca[0] ? conf->ca : NULL,
                          conf->server_name[0] ? conf->server_name : NULL, err) != 0)
        return -1;
    peer->connect_timeout_ms = peer->handshake_timeout_ms = conf->connect_timeout_s * 1000;
    peer->cancel_fd = &g->x->cancel[0];
    if (conf->proxy[0])
        peer->proxy = conf->proxy;
    for (size_t a = 0; a < conf->n_alpn && a < KB_ALPN_MAX; a++)
        peer->alpn[peer->n_alpn++] = conf->alpn[a];
    /* The generation outlives the policy it was made under: own what points into it. */
    char **pins = peer->pins;
    size_t n_pins = peer->n_pins;
    peer->pins = NULL;
    peer->n_pins = 0;
    if (n_pins > 0) {
        if ((peer->pins = calloc(n_pins, sizeof *peer->pins)) == NULL)
            return kb_err_set(err, "out of memory");
        for (size_t i = 0; i < n_pins; i++)
            if ((peer->pins[peer->n_pins++] = strdup(pins[i])) == NULL)
                return kb_err_set(err, "out of memory");
    }
    if (peer->priority != NULL && (peer->priority = g->priority = strdup(peer->priority)) == NULL)
        return kb_err_set(err, "out of memory");
    return 0;
}

/* Keys admitted in one evaluation, to keep a TPM token within KB_TPM_KEYS_MAX. */
struct tpm_use {
    const kb_module *m;
    CK_SLOT_ID slot;
    char label[2][KB_LABEL_MAX];
    unsigned char id[KB_TPM_KEYS_MAX][KB_ID_MAX];
    size_t id_len[KB_TPM_KEYS_MAX];
    unsigned n;
};

/* 0 when k may be used beside the keys already in use on its TPM token (it is one of
 * them, or there is room); -1 with err naming them. */
static int tpm_room(struct tpm_use *use, size_t *n_use, const kb_key *k, kb_err *err)
{
    const kb_token *t = k->token;
    if (!t->module->tpm)
        return 0;
    struct tpm_use *u = NULL;
    for (size_t i = 0; i < *n_use && u == NULL; i++)
        if (use[i].m == t->module && use[i].slot == t->slot)
            u = &use[i];
    if (u == NULL) {
        u = &use[(*n_use)++];
        memset(u, 0, sizeof *u);
        u->m = t->module;
        u->slot = t->slot;
    }
    for (unsigned j = 0; j < u->n; j++)
        if (u->id_len[j] == k->facts.id_len && memcmp(u->id[j], k->facts.id, u->id_len[j]) == 0)
            return 0;
    if (u->n == KB_TPM_KEYS_MAX)
        return kb_err_set(err,
                          "key '%s' would be a third key in use on TPM token '%s' (besides '%s' "
                          "and '%s'): a TPM keeps two keys loaded for one program; let tunnels "
                          "share a key, or run them in another keybound (with a resource manager)",
                          k->facts.label, t->facts.label, u->label[0], u->label[1]);
    snprintf(u->label[u->n], sizeof u->label[u->n], "%s", k->facts.label);
    memcpy(u->id[u->n], k->facts.id, k->facts.id_len);
    u->id_len[u->n++] = k->facts.id_len;
    return 0;
}

/* What /status says of a verdict: decision, why not, the checks that failed. */
static json_object *admission_json(const char *decision, const char *reason, const kb_verdict *v)
{
    json_object *o = json_object_new_object(), *failed = json_object_new_array();
    json_object_object_add(o, "decision", json_object_new_string(decision));
    json_object_object_add(o, "reason", reason ? json_object_new_string(reason) : NULL);
    for (size_t i = 0; v != NULL && i < v->n; i++)
        if (v->checks[i].status == KB_FAIL || v->checks[i].status == KB_ERROR)
            json_object_array_add(failed, json_object_new_string(v->checks[i].id));
    json_object_object_add(o, "failed_checks", failed);
    return o;
}

/* The admitted identity for each tunnel, from a fresh look at the tokens and the policy.
 * Returns how many tunnels are admitted, or -1 with err set. */
int kb_tun_admit(struct ctx *x, kb_err *err)
{
    kb_policy *pol = NULL;
    bool baseline;
    if (kb_policy_load_or_baseline(x->env->policy_path, &pol, &baseline, err) != 0)
        return -1;
    if (baseline)
        kb_log(KB_LOG_INFO, "no policy file: using the built-in baseline");
    kb_trust *trust = kb_trust_load(pol);
    if (!pol->require_attestation) {
        kb_attester_free(x->attester);
        x->attester = NULL;
    } else if (trust != NULL) {
        /* Evidence is reused for at most the re-evaluation interval: a periodic check always
         * attests afresh, a reload or a token coming back within it need not. */
        if (x->attester == NULL)
            x->attester = kb_attester_new(pol, x->env->p11, x->env->pin, x->recheck_s);
        else
            kb_attester_sync(x->attester, pol, x->recheck_s);
        /* Out of memory: no attester, so every key is denied as not attested. */
        if (x->attester != NULL)
            kb_trust_set_attester(trust, kb_attester_run, x->attester);
    }
    int admitted = 0;
    long long now = (long long)time(NULL);
    long long next = now + x->recheck_s;
    long long crl = kb_trust_next_update(trust);
    if (crl > now && crl < next)
        next = crl;
    struct tpm_use *use = calloc(x->n ? x->n : 1, sizeof *use);
    size_t n_use = 0;
    if (use == NULL) {
        kb_trust_free(trust);
        kb_policy_free(pol);
        return kb_err_set(err, "out of memory");
    }
    for (size_t i = 0; i < x->n && trust; i++) {
        struct tunnel *t = &x->tunnels[i];
        kb_token_list tokens = {0};
        kb_objects objs = {0};
        kb_key *only = NULL;
        P11KitUri *uri = NULL;
        kb_err e;
        kb_device d;
        kb_verdict v;
        int rc = -1;
        if (t->conf->key[0]) {
            if (kb_uri_parse(t->conf->key, 0, &uri, &e) == 0)
                rc = kb_objects_one_key(x->env->p11, uri, t->conf->key, x->env->pin, &tokens, &objs,
                                        &only, &e);
        } else {
            rc = kb_objects_collect(x->env->p11, NULL, x->env->pin, true, &tokens, &objs, &e);
        }
        if (rc == 0)
            rc = kb_device_choose(&objs, only, pol, trust, (long long)time(NULL), t->conf->connect,
                                  &d, &v, &e);
        if (rc == 0 && tpm_room(use, &n_use, d.key, &e) != 0)
            rc = -1;
        struct gen *g = NULL;
        json_object *adm = NULL;
        if (rc < 0 && t->gen != NULL && kb_p11_any_lost(x->env->p11)) {
            /* The token, not the device: its verdict stays until the token is back. */
            kb_log(KB_LOG_WARN, "tunnel %s: %s; keeping its admission until the token is back",
                   t->conf->name, e.msg);
            kb_objects_free(&objs);
            kb_token_list_free(&tokens);
            if (uri)
                p11_kit_uri_free(uri);
            admitted++;
            continue;
        }
        if (rc == 1) {
            char summary[512];
            kb_verdict_summary(&v, summary, sizeof summary);
            kb_log(KB_LOG_ERROR, "tunnel %s: the device is not admitted for %s: %s", t->conf->name,
                   t->conf->connect, summary);
            snprintf(t->why_not, sizeof t->why_not, "the device is not admitted for %s: %s",
                     t->conf->connect, summary);
            adm = admission_json("deny", summary, &v);
        } else if (rc < 0) {
            kb_log(KB_LOG_ERROR, "tunnel %s: %s", t->conf->name, e.msg);
            snprintf(t->why_not, sizeof t->why_not, "%s", e.msg);
            adm = admission_json("error", e.msg, NULL);
        } else {
            if (v.would_deny) {
                char summary[512];
                kb_verdict_summary(&v, summary, sizeof summary);
                kb_log(KB_LOG_WARN, "tunnel %s: %s", t->conf->name, summary);
            }
            if ((g = calloc(1, sizeof *g)) != NULL)
                g->x = x;
            if (g == NULL || gen_peer(g, t->conf, pol, &e) != 0 ||
                kb_identity_new(&d, &objs, &g->id, &e) != 0 ||
                kb_tls_client_new(&g->peer, g->id, &g->client, &e) != 0) {
                kb_log(KB_LOG_ERROR, "tunnel %s: %s", t->conf->name, g ? e.msg : "out of memory");
                snprintf(t->why_not, sizeof t->why_not, "%s", g ? e.msg : "out of memory");
                adm = admission_json("error", t->why_not, NULL);
                if (g != NULL) {
                    g->refs = 1;
                    kb_tun_gen_put(g);
                }
                g = NULL;
            } else {
                g->refs = 1;
                g->x = x;
                kb_tls_client_set_admission(g->client, gen_admitted, g);
                char summary[512];
                kb_verdict_summary(&v, summary, sizeof summary);
                adm = admission_json("admit", v.would_deny ? summary : NULL, &v);
                /* As many key objects as handshake threads: full handshakes sign in parallel
                 * where the token allows it. */
                kb_signer_set_pool(g->id->signer, x->n_threads);
                kb_log(KB_LOG_INFO, "tunnel %s: %s -> %s as %s (key '%s' on token '%s')",
                       t->conf->name, t->conf->listen, t->conf->connect, g->id->subject,
                       d.key->facts.label, d.key->token->facts.label);
                /* The verdict changes when min-remaining is reached, and at notAfter. */
                long long until = g->id->not_after;
                if (pol->min_remaining > 0 && until - pol->min_remaining > now)
                    until -= pol->min_remaining;
                if (until > now && until < next)
                    next = until;
            }
        }
        pthread_mutex_lock(&x->state_lock);
        /* Open connections keep their generation; one whose key the policy no longer
         * admits (another key is, or none) answers no more certificate requests. */
        if (t->gen != NULL && (g == NULL || strcmp(t->gen->id->key_uri, g->id->key_uri) != 0))
            t->gen->retired = true;
        kb_tun_gen_put(t->gen);
        t->gen = g;
        json_object_put(t->admission_json);
        t->admission_json = adm;
        json_object_put(t->cert_json);
        t->cert_json =
            g != NULL && g->id->n_pcerts > 0 ? kb_cert_json(&g->id->pcerts[0].cert) : NULL;
        snprintf(t->connect_now, sizeof t->connect_now, "%s", t->conf->connect);
        if (g != NULL) {
            g->t = t;
            g->next_live = t->gens;
            t->gens = g;
        }
        pthread_mutex_unlock(&x->state_lock);
        admitted += g != NULL;
        kb_objects_free(&objs);
        kb_token_list_free(&tokens);
        if (uri)
            p11_kit_uri_free(uri);
    }
    free(use);
    kb_trust_free(trust);
    kb_policy_free(pol);
    x->next_check = next;
    return admitted;
}

/* New settings for the tunnels that exist; listeners stay as they are until a restart. */
void kb_tun_reload_config(struct ctx *x)
{
    static kb_tunnel_conf fresh[KB_TUNNEL_MAX];
    const char *path = x->env->config_path;
    size_t n = 0;
    kb_err err;
    FILE *f = kb_trustfile_fopen(path, "config", 0, &err);
    struct kb_tunnel_global glob;
    if (f == NULL || kb_tunnel_conf_parse(f, path, fresh, &n, &glob, &err) != 0) {
        kb_log(KB_LOG_ERROR, "reload: %s; the old settings stay", err.msg);
        if (f != NULL)
            fclose(f);
        return;
    }
    fclose(f);
    /* The command line's --admission-recheck stays what it said. */
    if (!x->env->recheck_from_cli)
        x->recheck_s = glob.admission_recheck_s ? glob.admission_recheck_s : 600;
    for (size_t i = 0; i < x->n; i++) {
        kb_tunnel_conf *old = x->tunnels[i].conf;
        size_t j;
        for (j = 0; j < n && strcmp(fresh[j].name, old->name) != 0; j++)
            ;
        if (j == n) {
            kb_log(KB_LOG_WARN, "tunnel %s is no longer in %s: it runs on until a restart",
                   old->name, path);
            continue;
        }
        if (strcmp(fresh[j].listen, old->listen) != 0)
            kb_log(KB_LOG_WARN, "tunnel %s: listen = %s takes effect at a restart", old->name,
                   fresh[j].listen);
        snprintf(fresh[j].listen, sizeof fresh[j].listen, "%s", old->listen);
        fresh[j].line = old->line;
        *old = fresh[j];
    }
    for (size_t j = 0; j < n; j++) {
        size_t i;
        for (i = 0; i < x->n && strcmp(fresh[j].name, x->tunnels[i].conf->name) != 0; i++)
            ;
        if (i == x->n)
            kb_log(KB_LOG_WARN, "new tunnel %s in %s starts at a restart", fresh[j].name, path);
    }
}
