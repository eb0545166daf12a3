/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/keygen.h"
#include "policy/render.h"
#include "src/tls/certjson.h"

static const char help[] =
    "usage: keybound enroll --est URL --token URI (--ca FILE | --ca-fingerprint sha256:HEX)\n"
    "                       [--secret-file FILE | --auth-key URI] [OPTIONS]\n\n"
    "Enrols the device: a key generated on the token, a request signed there, the certificate\n"
    "from the EST server (RFC 7030) stored next to the key, and the admission policy checked.\n"
    "Prints the state (ISSUED, WAIT, REJECTED, UNREACHABLE, UNDERCONFIGURED), the certificate\n"
    "and the decision. Exit: 0 issued and admitted, 1 issued but denied, 2 underconfigured or\n"
    "a malformed reply, 3 rejected, 4 wait (try later), 5 unreachable.\n\n"
    "  --est URL              https://ca.example.com[/.well-known/est[/label]]\n"
    "  --token URI            the token to make the key on\n"
    "  --label NAME           the key's label (default: keybound)\n"
    "  --type TYPE            ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519\n"
    "  --subject DN           default: CN=<host name>\n"
    "  --san KIND:VALUE       dns:, uri:, email:, ip: (repeatable)\n"
    "  --ca FILE              anchors for the EST server\n"
    "  --ca-fingerprint sha256:HEX  trust the /cacerts certificate with this fingerprint\n"
    "  --secret-file FILE     user:password for HTTP Basic (default: the systemd credential\n"
    "                         keybound.secret)\n"
    "  --auth-key URI         authenticate with this key's existing certificate instead\n"
    "  --save-cacerts FILE    write the CA certificates from /cacerts there (PEM)\n"
    "  --store-chain          let the /cacerts certificates complete the stored issuer path\n"
    "  --policy FILE          the admission policy to check the result against\n"
    "  --max-wait S           when the server says \"later\" (202): wait at most S seconds in\n"
    "                         all (default 600)\n"
    "  --proxy http://HOST:PORT  reach the EST server through an HTTP CONNECT proxy (default:\n"
    "                         $https_proxy, unless $no_proxy names the server)\n" KB_COMMON_HELP;

enum {
    OPT_TOKEN = KB_OPT_FIRST_LOCAL,
    OPT_LABEL,
    OPT_TYPE,
    OPT_SUBJECT,
    OPT_SAN,
    OPT_SECRET,
    OPT_AUTH_KEY,
    OPT_STORE_CHAIN,
};

/* The outcome, as lines for people or an object for tools. */
void kb_cli_est_report(const struct kb_enroll_outcome *o, int exit_code, const kb_err *err)
{
    const char *state = o->monitoring ? "MONITORING" : kb_est_state_name(o->state);
    bool issued = o->state == KB_EST_ISSUED;
    char decision[512] = "", when[32] = "", cert_line[1400] = "";
    if (o->have_verdict)
        kb_verdict_summary(&o->verdict, decision, sizeof decision);
    if (o->cert_not_after)
        kb_cli_time((time_t)o->cert_not_after, when, sizeof when);
    if (issued && o->cert_subject != NULL)
        snprintf(cert_line, sizeof cert_line, "%s, issued by %s, valid to %s, sha256 %s",
                 o->cert_subject, o->cert_issuer ? o->cert_issuer : "?", when, o->cert_sha256);
    if (kb_cli_json()) {
        json_object *j = json_object_new_object();
        gnutls_datum_t der = {o->cert_der, (unsigned)o->cert_der_len};
        json_object_object_add(j, "state", json_object_new_string(state));
        json_object_object_add(j, "key_uri",
                               issued && o->key_uri ? json_object_new_string(o->key_uri) : NULL);
        json_object_object_add(j, "certificate", issued && o->cert_der ? kb_cert_json(&der) : NULL);
        json_object_object_add(j, "renewal_due", o->monitoring ? json_object_new_boolean(0) : NULL);
        json_object_object_add(
            j, "decision",
            o->have_verdict ? json_object_new_string(o->verdict.admit ? "admit" : "deny") : NULL);
        json_object_object_add(j, "decision_text",
                               o->have_verdict ? json_object_new_string(decision) : NULL);
        json_object_object_add(j, "error", issued ? NULL : json_object_new_string(err->msg));
        json_object_object_add(j, "exit", json_object_new_int(kb_cli_exit_code(exit_code)));
        kb_cli_print_json(j);
    } else if (o->monitoring) {
        printf("state: MONITORING\nkey: %s\ncertificate: %s valid to %s: not due for renewal\n",
               o->key_uri ? o->key_uri : "?", o->cert_subject ? o->cert_subject : "?", when);
    } else {
        printf("state: %s\n", state);
        if (issued && o->key_uri)
            printf("key: %s\n", o->key_uri);
        if (cert_line[0])
            printf("certificate: %s\n", cert_line);
        if (o->have_verdict)
            printf("decision: %s\n", decision);
    }
    if (!issued)
        fprintf(stderr, "keybound: %s: %s\n", state, err->msg);
}

size_t kb_cli_enroll_longopts(struct option *out, bool enroll)
{
    size_t n = 0;
    for (size_t i = 0; i < KB_ENROLL_N_OPTIONS; i++)
        if (!enroll || kb_enroll_options[i].enroll)
            out[n++] = (struct option){kb_enroll_options[i].name,
                                       kb_enroll_options[i].arg ? required_argument : no_argument,
                                       NULL, KB_OPT_ENROLL_TABLE + (int)i};
    return n;
}

int kb_cli_enroll_option(struct kb_enroll_settings *s, const char *cmd, int opt, const char *arg)
{
    if (opt < KB_OPT_ENROLL_TABLE || opt >= KB_OPT_ENROLL_TABLE + KB_ENROLL_N_OPTIONS)
        return 0;
    size_t i = (size_t)(opt - KB_OPT_ENROLL_TABLE);
    char what[64];
    kb_err err;
    snprintf(what, sizeof what, "--%s", kb_enroll_options[i].name);
    if (kb_enroll_set(s, i, what, kb_enroll_options[i].arg ? arg : "yes", &err) != 0) {
        kb_cli_usage(cmd, "%s", err.msg);
        return -1;
    }
    return 1;
}

int kb_cli_enroll_run(struct kb_cli *c, const char *uri_text, struct kb_cli_est *e)
{
    kb_err err;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    struct kb_enroll_outcome o = {0};
    int rc;
    struct kb_enroll_spec *spec = &e->s.spec;
    spec->secret = NULL;
    if ((!spec->renew && spec->auth_key == NULL &&
         kb_enroll_secret(e->secret_file, &spec->secret, &err) != 0) ||
        kb_cli_policy(e->s.policy, &pol, &err) != 0 || kb_cli_uri(c, uri_text, &uri, &err) != 0 ||
        kb_cli_load(c, uri, &p, &err) != 0) {
        kb_secret_free(spec->secret); /* kb_enroll_run, which owns it, does not run */
        o.state = KB_EST_UNDERCONFIGURED;
        rc = KB_EXIT_ERROR;
        kb_cli_est_report(&o, rc, &err);
    } else {
        spec->policy = pol;
        if (kb_enroll_run(p, &c->pin, spec, &o, &err) != 0) {
            rc = kb_cli_fail(&err);
        } else {
            rc = o.exit_code;
            kb_cli_est_report(&o, rc, &err);
        }
    }
    spec->secret = NULL;
    kb_enroll_outcome_free(&o);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    kb_policy_free(pol);
    return rc;
}

/* The command line into e, then the run; e's copies are freed by the caller. */
static int enroll(int argc, char **argv, struct kb_cli_est *e)
{
    static const struct option own[] = {{"token", required_argument, NULL, OPT_TOKEN},
                                        {"label", required_argument, NULL, OPT_LABEL},
                                        {"type", required_argument, NULL, OPT_TYPE},
                                        {"subject", required_argument, NULL, OPT_SUBJECT},
                                        {"san", required_argument, NULL, OPT_SAN},
                                        {"secret-file", required_argument, NULL, OPT_SECRET},
                                        {"auth-key", required_argument, NULL, OPT_AUTH_KEY},
                                        {"store-chain", no_argument, NULL, OPT_STORE_CHAIN},
                                        KB_COMMON_LONGOPTS,
                                        {0}};
    struct option longopts[KB_ENROLL_N_OPTIONS + sizeof own / sizeof own[0]];
    size_t n = kb_cli_enroll_longopts(longopts, true);
    memcpy(longopts + n, own, sizeof own);
    struct kb_cli c = {0};
    struct kb_enroll_spec *es = &e->s.spec;
    struct kb_csr_spec *spec = &es->csr;
    es->label = "keybound";
    es->type = "ec-p256";
    kb_err err;
    int opt, rc;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_TOKEN:
            es->token_uri = optarg;
            break;
        case OPT_LABEL:
            es->label = optarg;
            break;
        case OPT_TYPE:
            es->type = optarg;
            break;
        case OPT_SUBJECT:
            spec->subject = optarg;
            break;
        case OPT_SAN:
            if (spec->n_sans == KB_SAN_MAX)
                return kb_cli_usage("enroll", "at most %d --san", KB_SAN_MAX);
            if (kb_san_check(optarg, &err) != 0)
                return kb_cli_fail(&err);
            spec->sans[spec->n_sans++] = optarg;
            break;
        case OPT_SECRET:
            e->secret_file = optarg;
            break;
        case OPT_AUTH_KEY:
            es->auth_key = optarg;
            break;
        case OPT_STORE_CHAIN:
            es->store_chain = true;
            break;
        default:
            if ((rc = kb_cli_enroll_option(&e->s, "enroll", opt, optarg)) < 0)
                return KB_EXIT_ERROR;
            if (rc == 0 && !kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("enroll", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("enroll", "unexpected argument '%s'", argv[optind]);
    if (es->url == NULL || es->token_uri == NULL)
        return kb_cli_usage("enroll", "--est URL and --token URI are required");
    if (!kb_keygen_type_known(es->type))
        return kb_cli_usage("enroll", "--type %s is unknown", es->type);
    if (e->secret_file && es->auth_key)
        return kb_cli_usage("enroll", "--secret-file and --auth-key do not go together");
    char host[256], subject[300];
    if (spec->subject == NULL) {
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        snprintf(subject, sizeof subject, "CN=%s", host);
        spec->subject = subject;
    }
    return kb_cli_enroll_run(&c, es->token_uri, e);
}

int kb_cmd_enroll(int argc, char **argv)
{
    struct kb_cli_est e = {0};
    kb_enroll_settings_init(&e.s);
    int rc = enroll(argc, argv, &e);
    kb_enroll_settings_free(&e.s);
    return rc;
}
