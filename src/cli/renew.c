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
    "usage: keybound renew --key URI --est URL (--ca FILE | --ca-fingerprint sha256:HEX)\n"
    "                      [--if-expires-within DURATION] [--rekey] [--prune] [OPTIONS]\n\n"
    "Renews the key's certificate over EST /simplereenroll, authenticated with the current\n"
    "certificate (same subject and names). The old certificate stays until the new one is\n"
    "stored; the newest valid one is then used. States and exit codes as for enroll; a\n"
    "certificate that is not due yet (--if-expires-within) prints \"state: MONITORING\" and\n"
    "exits 0.\n\n"
    "  --key URI                     the key whose certificate to renew\n"
    "  --est URL, --ca FILE, --ca-fingerprint sha256:HEX, --save-cacerts FILE, --max-wait S\n"
    "                                as for enroll\n"
    "  --if-expires-within DURATION  only renew when less than this is left (e.g. 30d)\n"
    "  --rekey                       a new key on the token first; the old key is removed once\n"
    "                                the new certificate is stored and admitted\n"
    "  --prune                       remove the key's expired certificates afterwards\n"
    "  --policy FILE                 the admission policy\n" KB_COMMON_HELP;

enum {
    OPT_KEY = KB_OPT_FIRST_LOCAL,
    OPT_EST,
    OPT_CA,
    OPT_FP,
    OPT_WITHIN,
    OPT_REKEY,
    OPT_PRUNE,
    OPT_SAVE,
    OPT_POLICY,
    OPT_MAX_WAIT,
};

static void prune(kb_session *s, const kb_objects *objs, const kb_key *k, long long now)
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

int kb_cmd_renew(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"est", required_argument, NULL, OPT_EST},
        {"ca", required_argument, NULL, OPT_CA},
        {"ca-fingerprint", required_argument, NULL, OPT_FP},
        {"if-expires-within", required_argument, NULL, OPT_WITHIN},
        {"rekey", no_argument, NULL, OPT_REKEY},
        {"prune", no_argument, NULL, OPT_PRUNE},
        {"save-cacerts", required_argument, NULL, OPT_SAVE},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"max-wait", required_argument, NULL, OPT_MAX_WAIT},
        KB_COMMON_LONGOPTS,
        {0}};
    struct kb_cli c = {0};
    const char *key_uri = NULL, *url = NULL, *ca = NULL, *fp = NULL, *save = NULL;
    const char *policy_path = NULL;
    long long within = -1;
    bool rekey = false, do_prune = false;
    unsigned long max_wait = 600;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, KB_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_KEY:
            key_uri = optarg;
            break;
        case OPT_EST:
            url = optarg;
            break;
        case OPT_CA:
            ca = optarg;
            break;
        case OPT_FP:
            fp = optarg;
            break;
        case OPT_WITHIN:
            if ((within = kb_duration_parse(optarg)) < 0)
                return kb_cli_usage("renew",
                                    "--if-expires-within '%s' is not a duration such "
                                    "as 30d or 12h",
                                    optarg);
            break;
        case OPT_REKEY:
            rekey = true;
            break;
        case OPT_PRUNE:
            do_prune = true;
            break;
        case OPT_SAVE:
            save = optarg;
            break;
        case OPT_POLICY:
            policy_path = optarg;
            break;
        case OPT_MAX_WAIT:
            if (!kb_cli_count(optarg, 0, 86400, &max_wait))
                return kb_cli_usage("renew", "--max-wait takes seconds from 0 to 86400");
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("renew", "%s", kb_cli_bad_option(argv));
        }
    }
    if (optind < argc)
        return kb_cli_usage("renew", "unexpected argument '%s'", argv[optind]);
    if (key_uri == NULL || url == NULL)
        return kb_cli_usage("renew", "--key URI and --est URL are required");

    enum kb_est_state state = KB_EST_UNDERCONFIGURED;
    kb_err err;
    kb_est est = {0};
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_key *old = NULL, fresh = {0};
    kb_trust *trust = NULL;
    kb_session s = {0};
    bool made = false;
    kb_signer *signer = NULL;
    gnutls_x509_crt_t *ca_certs = NULL, *certs = NULL, cur = NULL;
    unsigned n_ca = 0, n = 0;
    struct kb_csrattrs attrs;
    struct kb_csr_spec spec;
    char spec_text[8192], cert_file[4200] = "", next_label[KB_LABEL_MAX + 8];
    kb_device d;
    kb_verdict v;
    bool have_verdict = false;
    char cert_line[1200] = "";
    long long now = (long long)time(NULL);
    if (kb_cli_policy(policy_path, &pol, &err) != 0 ||
        kb_est_init(&est, url, ca, fp, NULL, &err) != 0)
        goto done;
    est.max_wait_s = (unsigned)max_wait;
    if (kb_cli_uri(&c, key_uri, &uri, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_objects_one_key(p, uri, key_uri, &c.pin, &tokens, &objs, &old, &err) != 0 ||
        (trust = kb_trust_load(pol)) == NULL ||
        kb_device_gather(&objs, (size_t)(old - objs.keys), trust, now, NULL, &d, &err) != 0)
        goto done;
    if (d.cert == NULL || !d.cert_valid) {
        kb_err_set(&err,
                   "key '%s' has no valid certificate to authenticate the renewal with; "
                   "enroll it again",
                   old->facts.label);
        goto done;
    }
    if (within >= 0 && d.cert->not_after - now > within) {
        char when[32];
        kb_cli_time(d.cert->not_after, when, sizeof when);
        printf("state: MONITORING\nkey: %s\ncertificate: %s valid to %s: not due for renewal\n",
               old->uri, d.cert->subject, when);
        state = KB_EST_ISSUED;
        goto quiet;
    }
    gnutls_datum_t der = {d.cert->der, (unsigned)d.cert->der_len};
    if (gnutls_x509_crt_init(&cur) < 0 ||
        gnutls_x509_crt_import(cur, &der, GNUTLS_X509_FMT_DER) < 0 ||
        kb_spec_from_cert(cur, &spec, spec_text, sizeof spec_text, &err) != 0 ||
        kb_est_pem_tempfile(d.cert->der, d.cert->der_len, cert_file, sizeof cert_file, &err) != 0 ||
        kb_gnutls_pkcs11_init(p, &err) != 0)
        goto done;
    kb_pin_install_gnutls(&c.pin);
    est.cert_uri = cert_file;
    est.key_uri = old->uri;
    if ((state = kb_est_cacerts(&est, &ca_certs, &n_ca, &err)) != KB_EST_ISSUED)
        goto done;
    if (save != NULL && kb_save_certs(save, ca_certs, n_ca, &err) != 0) {
        state = KB_EST_UNDERCONFIGURED;
        goto done;
    }
    if ((state = kb_est_get_csrattrs(&est, &attrs, &err)) != KB_EST_ISSUED)
        goto done;
    state = KB_EST_UNDERCONFIGURED;
    if (kb_session_open(old->token, true, &s, &err) != 0 || kb_session_login(&s, &c.pin, &err) != 0)
        goto done;
    const kb_key *subject_key = old;
    if (rekey) {
        char type[32];
        snprintf(next_label, sizeof next_label, "%s.next", old->facts.label);
        kb_key_type_name(&old->facts, type, sizeof type);
        if (kb_keygen(&s, type, next_label, &fresh, &err) != 0)
            goto done;
        made = true;
        subject_key = &fresh;
    }
    if (kb_signer_open(subject_key->uri, &signer, &err) != 0)
        goto done;
    state = kb_enroll_request(&est, "simplereenroll", signer, subject_key, &spec, &attrs, &certs,
                              &n, &err);
    if (state != KB_EST_ISSUED)
        goto done;
    bool stored;
    if (kb_store_cert(&s, certs[0], subject_key->facts.label, subject_key->facts.id,
                      subject_key->facts.id_len, &stored, &err) != 0) {
        state = KB_EST_UNDERCONFIGURED;
        goto done;
    }
    made = false;
    for (unsigned i = 1; i < n; i++)
        kb_store_chain_cert(&s, certs[i], &stored, &err);

    /* The result as the policy sees it, from a fresh listing of the token. */
    {
        P11KitUri *ku = NULL;
        kb_token_list t2 = {0};
        kb_objects o2 = {0};
        kb_key *k2 = NULL;
        kb_device d2;
        if (kb_uri_parse(subject_key->uri, 0, &ku, &err) == 0 &&
            kb_objects_one_key(p, ku, subject_key->uri, &c.pin, &t2, &o2, &k2, &err) == 0 &&
            kb_device_gather(&o2, (size_t)(k2 - o2.keys), trust, now, NULL, &d2, &err) == 0) {
            kb_policy_evaluate(pol, &d2.facts, now, &v);
            have_verdict = true;
            char when[32] = "";
            if (d2.cert)
                kb_cli_time(d2.cert->not_after, when, sizeof when);
            snprintf(cert_line, sizeof cert_line, "%s, issued by %s, valid to %s, sha256 %s",
                     d2.cert ? d2.cert->subject : "?", d2.cert ? d2.cert->issuer : "?", when,
                     d2.facts.cert.sha256);
        }
        kb_objects_free(&o2);
        kb_token_list_free(&t2);
        if (ku)
            p11_kit_uri_free(ku);
    }
    if (rekey && have_verdict && v.admit) {
        /* Only now may the old key go: the new one is stored and admitted. */
        kb_err gone;
        const struct kb_key_facts *f = &old->facts;
        if (kb_destroy_matching(&s, CKO_PRIVATE_KEY, CKA_ID, f->id, f->id_len, "the old key",
                                &gone) != 0) {
            kb_log(KB_LOG_WARN, "%s; the old key stays", gone.msg);
        } else {
            if (kb_destroy_matching(&s, CKO_PUBLIC_KEY, CKA_ID, f->id, f->id_len,
                                    "the old public key", &gone) != 0 ||
                kb_destroy_matching(&s, CKO_CERTIFICATE, CKA_ID, f->id, f->id_len,
                                    "an old certificate", &gone) != 0)
                kb_log(KB_LOG_WARN, "%s", gone.msg);
            if (kb_relabel(&s, fresh.facts.id, fresh.facts.id_len, f->label, &gone) != 0)
                kb_log(KB_LOG_WARN, "%s; the new key keeps the label '%s'", gone.msg, next_label);
        }
    } else if (rekey) {
        kb_log(KB_LOG_WARN, "the new key '%s' is not admitted; the old key stays", next_label);
    }
    if (do_prune && !rekey)
        prune(&s, &objs, old, now);
done:
    if (made) {
        kb_err keep = err, gone;
        if (kb_destroy_key(&s, &fresh, &gone) != 0)
            kb_log(KB_LOG_ERROR, "%s; remove key '%s' by hand", gone.msg, next_label);
        err = keep;
    }
    {
        const char *shown_uri = rekey && fresh.uri ? fresh.uri : old ? old->uri : NULL;
        kb_cli_est_report(&c, state, state == KB_EST_ISSUED ? shown_uri : NULL,
                          state == KB_EST_ISSUED && cert_line[0] ? cert_line : NULL,
                          have_verdict ? &v : NULL, &err);
    }
quiet:;
    int rc = state != KB_EST_ISSUED     ? kb_est_exit(&est, state)
             : have_verdict && !v.admit ? KB_EXIT_REFUSED
                                        : KB_EXIT_OK;
    kb_session_close(&s);
    kb_signer_free(signer);
    if (cert_file[0])
        unlink(cert_file);
    if (cur)
        gnutls_x509_crt_deinit(cur);
    kb_free_certs(certs, n);
    kb_free_certs(ca_certs, n_ca);
    kb_key_clear(&fresh);
    kb_trust_free(trust);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    kb_est_free(&est);
    kb_policy_free(pol);
    return rc;
}
