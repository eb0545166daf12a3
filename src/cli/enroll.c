#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/attrs.h"
#include "pkcs11/keygen.h"
#include "pkcs11/store.h"
#include "pkcs11/uri.h"
#include "policy/render.h"
#include "src/enroll/flow.h"
#include "src/util/log.h"

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
    "  --store-chain          store the CA certificates from /cacerts on the token too\n"
    "  --policy FILE          the admission policy to check the result against\n"
    "  --max-wait S           when the server says \"later\" (202): wait at most S seconds in\n"
    "                         all (default 600)\n" KB_COMMON_HELP;

enum {
    OPT_EST = KB_OPT_FIRST_LOCAL,
    OPT_TOKEN,
    OPT_LABEL,
    OPT_TYPE,
    OPT_SUBJECT,
    OPT_SAN,
    OPT_CA,
    OPT_FP,
    OPT_SECRET,
    OPT_AUTH_KEY,
    OPT_SAVE,
    OPT_STORE_CHAIN,
    OPT_POLICY,
    OPT_MAX_WAIT,
};

/* One key, freshly listed, and the verdict on it: the result as the policy sees it. */
static int judge(kb_p11 *p, struct kb_cli *c, const kb_policy *pol, const char *key_uri,
                 kb_verdict *v, char *cert_line, size_t len, kb_err *err)
{
    P11KitUri *uri = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_key *k = NULL;
    kb_trust *trust = NULL;
    kb_device d;
    int rc = -1;
    if (kb_uri_parse(key_uri, 0, &uri, err) == 0 &&
        kb_objects_one_key(p, uri, key_uri, &c->pin, &tokens, &objs, &k, err) == 0 &&
        (trust = kb_trust_load(pol)) != NULL &&
        kb_device_gather(&objs, (size_t)(k - objs.keys), trust, (long long)time(NULL), NULL, &d,
                         err) == 0) {
        kb_policy_evaluate(pol, &d.facts, (long long)time(NULL), v);
        char when[32] = "";
        if (d.cert)
            kb_cli_time(d.cert->not_after, when, sizeof when);
        snprintf(cert_line, len, "%s, issued by %s, valid to %s, sha256 %s",
                 d.cert ? d.cert->subject : "?", d.cert ? d.cert->issuer : "?", when,
                 d.facts.cert.sha256);
        rc = 0;
    }
    kb_trust_free(trust);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}

/* The outcome, as a line for people or an object for tools. */
void kb_cli_est_report(const struct kb_cli *c, int state, const char *key_uri,
                       const char *cert_line, const kb_verdict *v, const kb_err *err)
{
    enum kb_est_state s = (enum kb_est_state)state;
    char decision[512] = "";
    if (v != NULL)
        kb_verdict_summary(v, decision, sizeof decision);
    if (c->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "state", json_object_new_string(kb_est_state_name(s)));
        json_object_object_add(o, "key_uri", key_uri ? json_object_new_string(key_uri) : NULL);
        json_object_object_add(o, "certificate",
                               cert_line ? json_object_new_string(cert_line) : NULL);
        json_object_object_add(o, "decision",
                               v ? json_object_new_string(v->admit ? "admit" : "deny") : NULL);
        json_object_object_add(o, "decision_text", v ? json_object_new_string(decision) : NULL);
        json_object_object_add(o, "error",
                               s == KB_EST_ISSUED ? NULL : json_object_new_string(err->msg));
        kb_cli_print_json(o);
    } else {
        printf("state: %s\n", kb_est_state_name(s));
        if (key_uri)
            printf("key: %s\n", key_uri);
        if (cert_line)
            printf("certificate: %s\n", cert_line);
        if (v)
            printf("decision: %s\n", decision);
    }
    if (s != KB_EST_ISSUED)
        fprintf(stderr, "keybound: %s: %s\n", kb_est_state_name(s), err->msg);
}

int kb_cmd_enroll(int argc, char **argv)
{
    static const struct option longopts[] = {{"est", required_argument, NULL, OPT_EST},
                                             {"token", required_argument, NULL, OPT_TOKEN},
                                             {"label", required_argument, NULL, OPT_LABEL},
                                             {"type", required_argument, NULL, OPT_TYPE},
                                             {"subject", required_argument, NULL, OPT_SUBJECT},
                                             {"san", required_argument, NULL, OPT_SAN},
                                             {"ca", required_argument, NULL, OPT_CA},
                                             {"ca-fingerprint", required_argument, NULL, OPT_FP},
                                             {"secret-file", required_argument, NULL, OPT_SECRET},
                                             {"auth-key", required_argument, NULL, OPT_AUTH_KEY},
                                             {"save-cacerts", required_argument, NULL, OPT_SAVE},
                                             {"store-chain", no_argument, NULL, OPT_STORE_CHAIN},
                                             {"policy", required_argument, NULL, OPT_POLICY},
                                             {"max-wait", required_argument, NULL, OPT_MAX_WAIT},
                                             KB_COMMON_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    struct kb_csr_spec spec = {0};
    const char *url = NULL, *token_uri = NULL, *label = "keybound", *type = "ec-p256";
    const char *ca = NULL, *fp = NULL, *secret_file = NULL, *auth_key = NULL, *save = NULL;
    const char *policy_path = NULL;
    bool store_chain = false;
    unsigned long max_wait = 600;
    kb_err err;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, KB_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_EST:
            url = optarg;
            break;
        case OPT_TOKEN:
            token_uri = optarg;
            break;
        case OPT_LABEL:
            label = optarg;
            break;
        case OPT_TYPE:
            type = optarg;
            break;
        case OPT_SUBJECT:
            spec.subject = optarg;
            break;
        case OPT_SAN:
            if (spec.n_sans == KB_SAN_MAX)
                return kb_cli_usage("enroll", "at most %d --san", KB_SAN_MAX);
            if (kb_san_check(optarg, &err) != 0)
                return kb_cli_fail(&err);
            spec.sans[spec.n_sans++] = optarg;
            break;
        case OPT_CA:
            ca = optarg;
            break;
        case OPT_FP:
            fp = optarg;
            break;
        case OPT_SECRET:
            secret_file = optarg;
            break;
        case OPT_AUTH_KEY:
            auth_key = optarg;
            break;
        case OPT_SAVE:
            save = optarg;
            break;
        case OPT_STORE_CHAIN:
            store_chain = true;
            break;
        case OPT_POLICY:
            policy_path = optarg;
            break;
        case OPT_MAX_WAIT:
            if (!kb_cli_count(optarg, 0, 86400, &max_wait))
                return kb_cli_usage("enroll", "--max-wait takes seconds from 0 to 86400");
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("enroll", "%s", kb_cli_bad_option(argv));
        }
    }
    if (optind < argc)
        return kb_cli_usage("enroll", "unexpected argument '%s'", argv[optind]);
    if (url == NULL || token_uri == NULL)
        return kb_cli_usage("enroll", "--est URL and --token URI are required");
    if (!kb_keygen_type_known(type))
        return kb_cli_usage("enroll", "--type %s is unknown", type);
    if (secret_file && auth_key)
        return kb_cli_usage("enroll", "--secret-file and --auth-key do not go together");
    char host[256], subject[300];
    if (spec.subject == NULL) {
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        snprintf(subject, sizeof subject, "CN=%s", host);
        spec.subject = subject;
    }

    enum kb_est_state state = KB_EST_UNDERCONFIGURED;
    kb_est est = {0};
    kb_secret *secret = NULL;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL, *auth_uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0}, auth_tokens = {0};
    kb_objects auth_objs = {0};
    kb_key *auth = NULL;
    kb_token *t = NULL;
    kb_session s = {0};
    kb_key k = {0};
    bool made = false;
    kb_signer *signer = NULL;
    gnutls_x509_crt_t *ca_certs = NULL, *certs = NULL;
    unsigned n_ca = 0, n = 0;
    struct kb_csrattrs attrs;
    char auth_cert_uri[1100];
    /* Everything the user gave is checked before the network or the token. */
    if (kb_enroll_secret(secret_file, &secret, &err) != 0 ||
        kb_cli_policy(policy_path, &pol, &err) != 0)
        goto done;
    int init = kb_est_init(&est, url, ca, fp, secret, &err);
    secret = NULL; /* est owns it, whatever init said */
    if (init != 0)
        goto done;
    est.max_wait_s = (unsigned)max_wait;
    if (est.secret == NULL && auth_key == NULL) {
        kb_err_set(&err, "no enrolment credential: give --secret-file FILE (user:password), the "
                         "systemd credential keybound.secret, or --auth-key URI");
        goto done;
    }
    if (kb_cli_uri(&c, token_uri, &uri, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_gnutls_pkcs11_init(p, &err) != 0)
        goto done;
    kb_pin_install_gnutls(&c.pin);
    if (auth_key != NULL) {
        if (kb_uri_parse(auth_key, 0, &auth_uri, &err) != 0 ||
            kb_objects_one_key(p, auth_uri, auth_key, &c.pin, &auth_tokens, &auth_objs, &auth,
                               &err) != 0)
            goto done;
        char *cu =
            kb_uri_for(auth->token, "cert", auth->facts.label, auth->facts.id, auth->facts.id_len);
        snprintf(auth_cert_uri, sizeof auth_cert_uri, "%s", cu ? cu : "");
        free(cu);
        est.cert_uri = auth_cert_uri;
        est.key_uri = auth->uri;
    }
    /* The CA first: an unreachable or untrusted server leaves the token as it was. */
    if ((state = kb_est_cacerts(&est, &ca_certs, &n_ca, &err)) != KB_EST_ISSUED)
        goto done;
    if (save != NULL && kb_save_certs(save, ca_certs, n_ca, &err) != 0) {
        state = KB_EST_UNDERCONFIGURED;
        goto done;
    }
    if ((state = kb_est_get_csrattrs(&est, &attrs, &err)) != KB_EST_ISSUED)
        goto done;
    state = KB_EST_UNDERCONFIGURED;
    if (kb_p11_one_token(p, uri, token_uri, &tokens, &t, &err) != 0 ||
        kb_session_open(t, true, &s, &err) != 0 || kb_session_login(&s, &c.pin, &err) != 0 ||
        kb_keygen(&s, type, label, &k, &err) != 0)
        goto done;
    made = true;
    if (kb_signer_open(k.uri, &signer, &err) != 0)
        goto done;
    state = kb_enroll_request(&est, "simpleenroll", signer, &k, &spec, &attrs, &certs, &n, &err);
    if (state != KB_EST_ISSUED)
        goto done;
    bool stored;
    if (kb_store_cert(&s, certs[0], k.facts.label, k.facts.id, k.facts.id_len, &stored, &err) !=
        0) {
        state = KB_EST_UNDERCONFIGURED;
        goto done;
    }
    made = false; /* the key has its certificate now: it stays */
    for (unsigned i = 1; i < n; i++)
        kb_store_chain_cert(&s, certs[i], &stored, &err);
    for (unsigned i = 0; store_chain && i < n_ca; i++)
        kb_store_chain_cert(&s, ca_certs[i], &stored, &err);
done:
    if (made) {
        kb_err keep = err, gone;
        if (kb_destroy_key(&s, &k, &gone) != 0)
            kb_log(KB_LOG_ERROR, "%s; remove key '%s' by hand", gone.msg, label);
        err = keep;
    }
    kb_session_close(&s);
    kb_signer_free(signer);
    int rc;
    if (state == KB_EST_ISSUED) {
        kb_verdict v;
        char cert_line[1200];
        if (judge(p, &c, pol, k.uri, &v, cert_line, sizeof cert_line, &err) != 0) {
            rc = kb_cli_fail(&err);
        } else {
            kb_cli_est_report(&c, state, k.uri, cert_line, &v, &err);
            rc = v.admit ? KB_EXIT_OK : KB_EXIT_REFUSED;
        }
    } else {
        kb_cli_est_report(&c, state, NULL, NULL, NULL, &err);
        rc = kb_est_exit(&est, state);
    }
    kb_free_certs(certs, n);
    kb_free_certs(ca_certs, n_ca);
    kb_key_clear(&k);
    kb_objects_free(&auth_objs);
    kb_token_list_free(&auth_tokens);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    if (auth_uri)
        p11_kit_uri_free(auth_uri);
    kb_est_free(&est);
    kb_secret_free(secret);
    kb_policy_free(pol);
    return rc;
}
