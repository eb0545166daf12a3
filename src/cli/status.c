/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "policy/render.h"
#include "src/enroll/keystatus.h"
#include "src/tls/certjson.h"

static const char help[] =
    "usage: keybound status [URI] [--policy FILE] [OPTIONS]\n\n"
    "Shows, per key on the tokens (those with a certificate, and those waiting for one):\n"
    "its URI, the certificate's subject, issuer and expiry, whether its renewal is due (the\n"
    "policy's renew-before), the last enroll or renew and how it went, a request the EST\n"
    "server accepted for later with the time to ask again, and the admission decision.\n"
    "Reads only; exit 0, or 2 on an error.\n\n"
    "  URI            only the keys (or tokens) it matches\n"
    "  --policy FILE  the admission policy (default " KB_DEFAULT_POLICY ";\n"
    "                 without it, a built-in baseline)\n" KB_COMMON_HELP;

enum { OPT_POLICY = KB_OPT_FIRST_LOCAL };

/* certmonger's words where they fit: MONITORING, and the ones a user acts on. */
static const char *state_name(const struct kb_key_status *k)
{
    if (k->have_state && k->state.pending.active)
        return "PENDING";
    if (k->renewal == KB_RENEWAL_DUE)
        return k->cert_valid && k->seconds_left > 0 ? "DUE" : "EXPIRED";
    return "MONITORING";
}

static void duration(long long s, char *buf, size_t len)
{
    if (s % 86400 == 0)
        snprintf(buf, len, "%lldd", s / 86400);
    else if (s % 3600 == 0)
        snprintf(buf, len, "%lldh", s / 3600);
    else
        snprintf(buf, len, "%llds", s);
}

static void when(long long t, char *buf, size_t len)
{
    kb_cli_time((time_t)t, buf, len);
}

static void print_key(const struct kb_key_status *k, const kb_policy *pol)
{
    char a[32], b[32], c[32], line[1024];
    printf("Key '%s' on token '%s' (serial %s):\n", k->label, k->token_label, k->token_serial);
    printf("  state:        %s\n", state_name(k));
    printf("  key:          %s\n", k->key_uri);
    if (k->cert_der != NULL) {
        long long days = k->seconds_left / 86400;
        when(k->not_after, a, sizeof a);
        printf("  subject:      %s\n", k->cert_subject);
        printf("  issuer:       %s\n", k->cert_issuer);
        printf("  expires:      %s (%lld day%s %s)\n", a, days < 0 ? -days : days,
               days == 1 || days == -1 ? "" : "s", k->seconds_left < 0 ? "ago" : "left");
        if (pol->renew_before >= 0) {
            duration(pol->renew_before, b, sizeof b);
            when(k->renew_from, c, sizeof c);
            printf("  renewal:      %s (renew-before %s: due from %s)\n",
                   k->renewal == KB_RENEWAL_DUE ? "due" : "not due", b, c);
        } else {
            printf("  renewal:      %s (the policy sets no renew-before)\n",
                   k->renewal == KB_RENEWAL_DUE ? "due" : "not due");
        }
    } else {
        printf("  certificate:  none yet\n");
    }
    const kb_keystate *s = &k->state;
    if (k->have_state && s->last_op[0]) {
        when(s->last_time, a, sizeof a);
        printf("  last:         %s %s at %s%s%s\n", s->last_op, s->last_result, a,
               s->last_message[0] ? ": " : "", s->last_message);
    }
    if (k->have_state && s->pending.active) {
        const struct kb_pending *p = &s->pending;
        when(p->submitted, a, sizeof a);
        when(p->next_poll, b, sizeof b);
        printf("  pending:      %s request%s for key '%s' to %s, sent %s, %s%s\n",
               p->renew ? "renew" : "enroll", p->rekey ? " (rekey)" : "", p->label, p->url, a,
               p->next_poll ? "next poll " : "the server did not say when to ask again",
               p->next_poll ? b : "");
    }
    if (k->n_network_profiles > 0) {
        printf("  network:     ");
        for (size_t i = 0; i < k->n_network_profiles; i++)
            printf("%s %s", i ? "," : "", k->network_profiles[i]);
        printf(" (802.1X profiles; 'keybound network check')\n");
    }
    kb_verdict_summary(k->verdict, line, sizeof line);
    printf("  decision:     %s\n", line);
}

static json_object *time_json(long long t)
{
    char buf[32];
    if (t <= 0)
        return NULL;
    when(t, buf, sizeof buf);
    return json_object_new_string(buf);
}

static json_object *key_json(const struct kb_key_status *k)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "label", json_object_new_string(k->label));
    json_object_object_add(o, "key_uri", json_object_new_string(k->key_uri));
    json_object_object_add(o, "token", json_object_new_string(k->token_label));
    json_object_object_add(o, "token_serial", json_object_new_string(k->token_serial));
    char state[16];
    snprintf(state, sizeof state, "%s", state_name(k));
    for (char *c = state; *c; c++)
        *c = (char)(*c - 'A' + 'a');
    json_object_object_add(o, "state", json_object_new_string(state));
    gnutls_datum_t der = {k->cert_der, (unsigned)k->cert_der_len};
    bool cert = k->cert_der != NULL;
    json_object_object_add(o, "certificate", cert ? kb_cert_json(&der) : NULL);
    json_object_object_add(o, "certificate_valid",
                           cert ? json_object_new_boolean(k->cert_valid) : NULL);
    json_object_object_add(o, "days_left",
                           cert ? json_object_new_int64(k->seconds_left / 86400) : NULL);
    json_object_object_add(o, "renewal_due",
                           cert ? json_object_new_boolean(k->renewal == KB_RENEWAL_DUE) : NULL);
    json_object_object_add(o, "renew_from", cert ? time_json(k->renew_from) : NULL);
    const kb_keystate *s = &k->state;
    json_object *last = NULL, *pending = NULL;
    if (k->have_state && s->last_op[0]) {
        last = json_object_new_object();
        json_object_object_add(last, "operation", json_object_new_string(s->last_op));
        json_object_object_add(last, "result", json_object_new_string(s->last_result));
        json_object_object_add(last, "time", time_json(s->last_time));
        json_object_object_add(last, "message",
                               s->last_message[0] ? json_object_new_string(s->last_message) : NULL);
    }
    if (k->have_state && s->pending.active) {
        const struct kb_pending *p = &s->pending;
        pending = json_object_new_object();
        json_object_object_add(pending, "operation",
                               json_object_new_string(p->renew ? "renew" : "enroll"));
        json_object_object_add(pending, "rekey", json_object_new_boolean(p->rekey));
        json_object_object_add(pending, "label", json_object_new_string(p->label));
        json_object_object_add(pending, "url", json_object_new_string(p->url));
        json_object_object_add(pending, "submitted", time_json(p->submitted));
        json_object_object_add(pending, "last_reply", time_json(p->last_reply));
        json_object_object_add(pending, "next_poll", time_json(p->next_poll));
    }
    json_object *nets = json_object_new_array();
    for (size_t i = 0; i < k->n_network_profiles; i++)
        json_object_array_add(nets, json_object_new_string(k->network_profiles[i]));
    json_object_object_add(o, "network_profiles", nets);
    json_object_object_add(o, "last", last);
    json_object_object_add(o, "pending", pending);
    json_object_object_add(o, "decision",
                           json_object_new_string(k->verdict->admit ? "admit" : "deny"));
    /* What a user would act on; `keybound check --json` has every check. */
    json_object *why = json_object_new_array();
    for (size_t i = 0; i < k->verdict->n; i++) {
        const struct kb_check *ch = &k->verdict->checks[i];
        if (ch->status == KB_PASS || ch->status == KB_SKIP)
            continue;
        json_object *j = json_object_new_object();
        json_object_object_add(j, "id", json_object_new_string(ch->id));
        json_object_object_add(j, "status", json_object_new_string(kb_status_name(ch->status)));
        json_object_object_add(j, "reason", json_object_new_string(ch->reason));
        json_object_array_add(why, j);
    }
    json_object_object_add(o, "reasons", why);
    return o;
}

int kb_cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, OPT_POLICY}, KB_COMMON_LONGOPTS, {0}};
    struct kb_cli c = {0};
    const char *policy_path = NULL, *uri_text = NULL;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        if (opt == 'h') {
            fputs(help, stdout);
            return KB_EXIT_OK;
        }
        if (opt == OPT_POLICY)
            policy_path = optarg;
        else if (!kb_cli_common(&c, opt, optarg))
            return kb_cli_usage("status", "%s", kb_cli_bad_option(argv, longopts));
    }
    if (argc - optind > 1)
        return kb_cli_usage("status", "takes at most one URI (unexpected '%s')", argv[optind + 1]);
    uri_text = optind < argc ? argv[optind] : NULL;

    kb_err err;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    struct kb_key_status_list l = {0};
    int rc;
    if ((uri_text && kb_cli_uri(&c, uri_text, &uri, &err) != 0) ||
        kb_cli_policy(policy_path, &pol, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_key_status_collect(p, uri, &c.pin, pol, (long long)time(NULL), &l, &err) != 0) {
        rc = kb_cli_fail(&err);
        goto out;
    }
    if (uri != NULL && l.n_tokens == 0) {
        rc = kb_cli_no_token(p, uri_text);
        goto out;
    }
    if (kb_cli_json()) {
        json_object *o = json_object_new_object(), *keys = json_object_new_array();
        for (size_t i = 0; i < l.n; i++)
            json_object_array_add(keys, key_json(&l.v[i]));
        json_object_object_add(o, "keys", keys);
        json_object_object_add(o, "hidden_private_keys",
                               json_object_new_int64((int64_t)l.hidden_private));
        kb_cli_print_json(o);
    } else {
        for (size_t i = 0; i < l.n; i++) {
            if (i > 0)
                putchar('\n');
            print_key(&l.v[i], pol);
        }
        if (l.n == 0)
            printf("No key with a certificate or a pending request on %zu token%s.\n", l.n_tokens,
                   l.n_tokens == 1 ? "" : "s");
    }
    kb_cli_hidden_keys(l.hidden_private, l.pin_withheld ? l.hint : NULL);
    rc = KB_EXIT_OK;
out:
    kb_key_status_list_free(&l);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    kb_policy_free(pol);
    return rc;
}
