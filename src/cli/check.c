/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "src/util/hostport.h"
#include "pkcs11/attrs.h"
#include "pkcs11/objects.h"
#include "pkcs11/uri.h"
#include "policy/render.h"
#include "src/attest/attester.h"
#include "src/tls/device.h"

static const char help[] =
    "usage: keybound check [--policy FILE] [--key URI] [--endpoint HOST:PORT] [OPTIONS]\n\n"
    "Evaluates the device-admission policy for a key and its certificate: one line per\n"
    "check, then the decision. Without --key, every key that has a certificate on the\n"
    "tokens is evaluated, and the device is admitted when one of them is.\n"
    "Exit status: 0 admitted, 1 denied, 2 error.\n\n"
    "  --policy FILE        the policy (default " KB_DEFAULT_POLICY ";\n"
    "                       without it, a built-in baseline)\n"
    "  --key URI            the key to evaluate\n"
    "  --endpoint HOST:PORT also check that the policy lets the device present its identity\n"
    "                       there\n" KB_COMMON_HELP;

enum { OPT_POLICY = KB_OPT_FIRST_LOCAL, OPT_KEY, OPT_ENDPOINT };

static void print_device(const kb_device *d, const kb_policy *pol, const kb_verdict *v,
                         bool verbose)
{
    const kb_key *k = d->key;
    const struct kb_token_facts *t = &k->token->facts;
    char when[32];
    printf("Key '%s' on token '%s' (%s %s, serial %s)\n", k->facts.label, t->label, t->manufacturer,
           t->model, t->serial);
    printf("  key:          %s\n", k->uri);
    const char *note = kb_facts_source_note(k->token->module->facts_source);
    if (note != NULL)
        printf("  key facts:    %s\n", note);
    char attested[700];
    kb_attest_text(&d->facts.attest, attested, sizeof attested);
    if (attested[0])
        printf("  attested:     %s\n", attested);
    if (d->cert != NULL) {
        kb_cli_time(d->cert->not_after, when, sizeof when);
        printf("  certificate:  %s, issued by %s, valid to %s%s\n", d->cert->subject,
               d->cert->issuer, when, d->cert_valid ? "" : " (no valid certificate)");
        printf("  sha256:       %s\n", d->facts.cert.sha256);
    }
    for (size_t i = 0; i < d->n_cands; i++) {
        const struct kb_candidate *c = &d->cands[i];
        if (c->pick == KB_PICK_CHOSEN)
            continue;
        char fp[65] = "";
        kb_hex(c->cert->sha256, 32, fp);
        kb_cli_time(c->pick == KB_PICK_NOT_YET_VALID ? c->cert->not_before : c->cert->not_after,
                    when, sizeof when);
        printf("  passed over:  %.16s... %s: %s%s%s\n", fp,
               c->cert->subject ? c->cert->subject : c->cert->label, kb_pick_name(c->pick),
               c->pick == KB_PICK_EXPIRED         ? " on "
               : c->pick == KB_PICK_NOT_YET_VALID ? " until "
               : c->pick == KB_PICK_OLDER         ? ", valid to "
               : c->detail[0]                     ? ": "
                                                  : "",
               c->pick == KB_PICK_EXPIRED || c->pick == KB_PICK_NOT_YET_VALID ||
                       c->pick == KB_PICK_OLDER
                   ? when
                   : c->detail);
    }
    printf("Policy %s (%s):\n", pol->path ? pol->path : "built-in baseline",
           kb_mode_name(pol->mode));
    kb_verdict_print(stdout, v, verbose);
}

/* One evaluated key: the key, the certificates tied to it (each with why it was chosen or
 * passed over), the chosen one, and the verdict. */
static json_object *device_json(const kb_device *d, const kb_verdict *v)
{
    json_object *o = json_object_new_object(), *key = json_object_new_object(),
                *certs = json_object_new_array(), *verdict = kb_verdict_json(v);
    const kb_key *k = d->key;
    json_object_object_add(key, "uri", json_object_new_string(k->uri));
    json_object_object_add(key, "label", json_object_new_string(k->facts.label));
    json_object_object_add(key, "token", json_object_new_string(k->token->facts.label));
    json_object_object_add(key, "token_serial", json_object_new_string(k->token->facts.serial));
    json_object_object_add(
        key, "facts_source",
        json_object_new_string(kb_facts_source_name(k->token->module->facts_source)));
    json_object_object_add(key, "attested", kb_attest_json(&d->facts.attest));
    json_object_object_add(o, "key", key);
    json_object_object_add(o, "certificate", d->cert ? kb_cli_cert_json(d->cert) : NULL);
    for (size_t i = 0; i < d->n_cands; i++) {
        const struct kb_candidate *c = &d->cands[i];
        json_object *j = kb_cli_cert_json(c->cert);
        json_object_object_add(j, "selection", json_object_new_string(kb_pick_name(c->pick)));
        json_object_object_add(j, "detail", json_object_new_string(c->detail));
        json_object_array_add(certs, j);
    }
    json_object_object_add(o, "certificates", certs);
    /* The policy's mode is the document's, said once at its top. */
    json_object_object_foreach(verdict, name, value)
    {
        if (strcmp(name, "mode") != 0)
            json_object_object_add(o, name, json_object_get(value));
    }
    json_object_put(verdict);
    return o;
}

int kb_cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {{"policy", required_argument, NULL, OPT_POLICY},
                                             {"key", required_argument, NULL, OPT_KEY},
                                             {"endpoint", required_argument, NULL, OPT_ENDPOINT},
                                             KB_COMMON_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    const char *policy_path = NULL, *key_uri = NULL, *endpoint = NULL;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_POLICY:
            policy_path = optarg;
            break;
        case OPT_KEY:
            key_uri = optarg;
            break;
        case OPT_ENDPOINT:
            endpoint = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("check", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("check", "unexpected argument '%s'", argv[optind]);

    kb_err err;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_trust *trust = NULL;
    kb_attester *attester = NULL;
    kb_key *only = NULL;
    json_object *all = NULL;
    char host[256];
    unsigned port;
    int rc = KB_EXIT_ERROR;
    /* Everything the user typed is checked before a token is touched. */
    if ((endpoint && kb_hostport_parse(endpoint, host, sizeof host, &port, &err) != 0) ||
        kb_cli_policy(policy_path, &pol, &err) != 0 ||
        (key_uri && kb_cli_uri(&c, key_uri, &uri, &err) != 0) ||
        kb_cli_load(&c, uri, &p, &err) != 0 ||
        (key_uri ? kb_objects_one_key(p, uri, key_uri, &c.pin, &tokens, &objs, &only, &err)
                 : kb_objects_collect(p, NULL, &c.pin, true, &tokens, &objs, &err)) != 0 ||
        (trust = kb_trust_load(pol)) == NULL ||
        /* check never reuses evidence: each run is a fresh nonce (reuse 0). */
        kb_attester_attach(trust, pol, p, &c.pin, 0, &attester, &err) != 0) {
        rc = kb_cli_fail(&err);
        goto out;
    }
    time_t now = time(NULL);
    all = json_object_new_array();
    size_t evaluated = 0, admitted = 0;
    for (size_t i = 0; i < objs.n_keys; i++) {
        kb_key *k = &objs.keys[i];
        bool has_cert = false;
        for (size_t j = 0; j < objs.n_certs && !has_cert; j++)
            has_cert = objs.certs[j].key == (long)i;
        if (only ? k != only : !has_cert)
            continue;
        kb_device d;
        kb_verdict v;
        if (kb_device_gather(&objs, i, trust, now, endpoint, &d, &err) != 0) {
            rc = kb_cli_fail(&err);
            goto out;
        }
        kb_policy_evaluate(pol, &d.facts, now, &v);
        evaluated++;
        admitted += v.admit;
        if (kb_cli_json()) {
            json_object_array_add(all, device_json(&d, &v));
        } else {
            if (evaluated > 1)
                putchar('\n');
            print_device(&d, pol, &v, c.verbose > 0);
        }
    }
    if (evaluated == 0 && kb_objects_ambiguous(&objs, &err)) {
        rc = kb_cli_fail(&err); /* the user's choice to make: exit 2 */
        goto out;
    }
    char none[sizeof err.msg] = "";
    if (evaluated == 0)
        snprintf(none, sizeof none,
                 "no key with a certificate on %zu token%s%s: the device has no identity to "
                 "admit; enrol it first",
                 tokens.n, tokens.n == 1 ? "" : "s", kb_objects_hint(&objs));
    if (kb_cli_json()) {
        /* One shape whatever was found: a device with no identity is a denial too. */
        json_object *doc = json_object_new_object();
        char when[32];
        kb_cli_time(now, when, sizeof when);
        json_object_object_add(doc, "decision",
                               json_object_new_string(admitted > 0 ? "admit" : "deny"));
        json_object_object_add(doc, "mode", json_object_new_string(kb_mode_name(pol->mode)));
        json_object_object_add(doc, "policy",
                               json_object_new_string(pol->path ? pol->path : "built-in"));
        json_object_object_add(doc, "evaluated_at", json_object_new_string(when));
        json_object_object_add(doc, "endpoint", endpoint ? json_object_new_string(endpoint) : NULL);
        json_object_object_add(doc, "reason", none[0] ? json_object_new_string(none) : NULL);
        json_object_object_add(doc, "devices", json_object_get(all));
        kb_cli_print_json(doc);
    }
    if (evaluated == 0) {
        rc = kb_cli_refuse("%s", none);
        goto out;
    }
    rc = admitted > 0 ? KB_EXIT_OK : KB_EXIT_REFUSED;
out:
    json_object_put(all);
    kb_trust_free(trust);
    kb_attester_free(attester);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    kb_policy_free(pol);
    return rc;
}
