/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/objects.h"
#include "pkcs11/signer.h"
#include "policy/render.h"
#include "src/attest/attester.h"
#include "src/tls/certjson.h"
#include "src/tls/client.h"
#include "src/util/hostport.h"
#include "src/util/log.h"

static const char help[] =
    "usage: keybound connect [OPTIONS] HOST:PORT\n\n"
    "Makes one mTLS handshake with the token's key and prints a summary; with --stdio, then\n"
    "copies stdin to the server and the server to stdout (an ssh ProxyCommand, a pipe).\n"
    "The policy is evaluated first: a denied device never signs anything. The server is\n"
    "always verified (CA, name, pins) before the device's certificate is sent.\n\n"
    "  --key URI             the key (default: the one key the policy admits)\n"
    "  --policy FILE         the admission policy (default " KB_DEFAULT_POLICY ")\n"
    "  --ca FILE             CA for the server, when the policy names none for it\n"
    "  --server-name NAME    name to send (SNI) and check (default: the policy's or HOST)\n"
    "  --alpn PROTO          offer an ALPN protocol (repeatable)\n"
    "  --connect-timeout S   seconds for TCP connect and handshake each (default 10)\n"
    "  --stdio               after the handshake, pipe stdin/stdout through the connection\n"
    "  --resume-test N       N handshakes in a row; report resumed ones and token "
    "signatures\n" KB_COMMON_HELP;

enum {
    OPT_KEY = KB_OPT_FIRST_LOCAL,
    OPT_POLICY,
    OPT_CA,
    OPT_SERVER_NAME,
    OPT_ALPN,
    OPT_TIMEOUT,
    OPT_STDIO,
    OPT_RESUME,
};

/* Copies both ways until both sides are closed. The socket is non-blocking so that a
 * send the server does not take yet never stops us reading what it sends (both sides
 * writing at once would otherwise deadlock). stdin is read only when the last chunk has
 * gone out: backpressure, not an unbounded queue. stdin's end becomes our TLS
 * close_notify (the server may go on sending); the server's close_notify ends stdout. */
static int pump(gnutls_session_t s, int fd, kb_err *err)
{
    char in[16384], out[16384];
    size_t in_len = 0, in_off = 0;
    bool in_open = true, bye_sent = false, send_pending = false;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        bool sending = in_off < in_len;
        if (kb_tls_pending(s) == 0) {
            struct pollfd p[2] = {
                {.fd = fd, .events = POLLIN | (sending ? POLLOUT : 0)},
                {.fd = in_open && !sending ? 0 : -1, .events = POLLIN},
            };
            if (poll(p, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                return kb_err_set(err, "poll: %s", strerror(errno));
            }
            if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(0, in, sizeof in);
                if (n < 0 && errno != EINTR && errno != EAGAIN)
                    return kb_err_set(err, "reading stdin: %s", strerror(errno));
                if (n == 0)
                    in_open = false;
                if (n > 0) {
                    in_len = (size_t)n;
                    in_off = 0;
                    /* Its end, when it is already there (a file, a closed pipe), goes out
                     * right after the data: a server asking for the certificate after the
                     * request must not find us still open by chance. */
                    struct pollfd more = {.fd = 0, .events = POLLIN};
                    if (in_len < sizeof in && poll(&more, 1, 0) > 0) {
                        ssize_t m = read(0, in + in_len, sizeof in - in_len);
                        if (m == 0)
                            in_open = false;
                        else if (m > 0)
                            in_len += (size_t)m;
                    }
                }
            }
        }
        if (in_off < in_len) {
            ssize_t w = gnutls_record_send(s, in + in_off, in_len - in_off);
            send_pending = w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED;
            if (w > 0)
                in_off += (size_t)w;
            else if (!send_pending) {
                kb_tls_describe_error(s, (int)w, err);
                return -1;
            }
        }
        /* Our close_notify before reading on: whatever the server sends next finds our
         * side ended. */
        if (!in_open && in_off == in_len && !bye_sent) {
            int rc = gnutls_bye(s, GNUTLS_SHUT_WR);
            if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
                struct pollfd w = {.fd = fd, .events = POLLOUT};
                poll(&w, 1, -1);
                continue;
            }
            bye_sent = true;
        }
        ssize_t n = gnutls_record_recv(s, out, sizeof out);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        /* A server protecting one path asks for the certificate only now (TLS 1.3
         * post-handshake auth, TLS 1.2 renegotiation). */
        if (n < 0 && kb_tls_wants_reauth((int)n)) {
            /* TLS allows us no handshake message after our close_notify. */
            if (bye_sent)
                return kb_err_set(err,
                                  "the server asked for the certificate after standard input "
                                  "had ended, and TLS allows no answer after our close_notify; "
                                  "keep standard input open until the reply (e.g. (printf "
                                  "...; sleep 5) | keybound connect --stdio)");
            if (send_pending) {
                size_t sent;
                if (kb_tls_finish_send(s, &sent, err) != 0)
                    return -1;
                in_off += sent;
                send_pending = false;
            }
            if (kb_tls_reauth(s, (int)n, err) != 0)
                return -1;
            continue;
        }
        if (n == 0)
            break; /* the server's close_notify */
        if (n < 0) {
            kb_tls_describe_error(s, (int)n, err);
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, out + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return kb_err_set(err, "writing to stdout: %s", strerror(errno));
            off += w;
        }
    }
    close(1);
    return 0;
}

/* "A, B, C" as a JSON array. */
static json_object *json_list(const char *text)
{
    json_object *a = json_object_new_array();
    for (const char *p = text; *p;) {
        const char *end = strstr(p, ", ");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        json_object_array_add(a, json_object_new_string_len(p, (int)n));
        p += n + (end ? 2 : 0);
    }
    return a;
}

static json_object *json_request(const struct kb_tls_request *q)
{
    if (!q->asked)
        return NULL;
    json_object *o = json_object_new_object(), *cas = json_object_new_array();
    for (unsigned i = 0; i < q->n_ca; i++)
        json_object_array_add(cas, json_object_new_string(q->ca[i]));
    json_object_object_add(o, "ca_names", cas);
    json_object_object_add(o, "ca_names_total", json_object_new_int((int)q->n_ca_total));
    json_object_object_add(o, "signature_algorithms", json_list(q->sigalgs));
    json_object_object_add(o, "key_types", json_list(q->pk));
    json_object_object_add(o, "why_not_sent", q->sent ? NULL : json_object_new_string(q->why_not));
    json_object_object_add(o, "ca_mismatch",
                           q->ca_hint[0] ? json_object_new_string(q->ca_hint) : NULL);
    return o;
}

/* What --resume-test counted. */
struct resume_stats {
    unsigned handshakes, resumed;
    unsigned long signatures;
    long long total_ms;
};

static json_object *json_resume(const struct resume_stats *st)
{
    if (st == NULL)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "handshakes", json_object_new_int((int)st->handshakes));
    json_object_object_add(o, "resumed", json_object_new_int((int)st->resumed));
    json_object_object_add(o, "full", json_object_new_int((int)(st->handshakes - st->resumed)));
    json_object_object_add(o, "token_signatures", json_object_new_int64((int64_t)st->signatures));
    json_object_object_add(o, "mean_handshake_ms",
                           json_object_new_int64(st->total_ms / st->handshakes));
    return o;
}

/* The (last) handshake; with --resume-test, the counts of all of them too. */
static void print_summary(gnutls_session_t s, const kb_tls_peer *peer, const kb_identity *id,
                          const struct kb_tls_result *r, const struct resume_stats *st,
                          bool verbose)
{
    const struct kb_tls_request *q = kb_tls_request_of(s);
    char when[32], where[KB_HOSTPORT_STRLEN];
    kb_cli_time((time_t)id->not_after, when, sizeof when);
    bool sent = r->cert_sent || (q->asked && q->sent);
    char why[700];
    snprintf(why, sizeof why, "requested, not sent: %s", q->why_not);
    const char *how = sent ? "sent" : q->asked ? why : "not requested by the server";
    if (kb_cli_json()) {
        unsigned n_peer = 0;
        const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n_peer);
        json_object *o = json_object_new_object(), *cl = kb_cert_json(&id->pcerts[0].cert);
        json_object_object_add(o, "endpoint", json_object_new_string(peer->host));
        json_object_object_add(o, "port", json_object_new_int((int)peer->port));
        json_object_object_add(o, "server_name", json_object_new_string(peer->server_name));
        json_object_object_add(o, "protocol", json_object_new_string(r->protocol));
        json_object_object_add(o, "cipher_suite", json_object_new_string(r->cipher));
        json_object_object_add(o, "alpn", r->alpn[0] ? json_object_new_string(r->alpn) : NULL);
        json_object_object_add(o, "server_certificate",
                               n_peer > 0 ? kb_cert_json(&chain[0]) : NULL);
        json_object_object_add(cl, "token", json_object_new_string(id->token));
        json_object_object_add(cl, "key_uri", json_object_new_string(id->key_uri));
        json_object_object_add(cl, "sent", json_object_new_boolean(sent));
        json_object_object_add(o, "client_certificate", cl);
        json_object_object_add(o, "certificate_request", json_request(q));
        json_object_object_add(o, "resumed", json_object_new_boolean(r->resumed));
        json_object_object_add(o, "handshake_ms", json_object_new_int64(r->handshake_ms));
        json_object_object_add(o, "resume_test", json_resume(st));
        kb_cli_print_json(o);
        return;
    }
    kb_hostport_str(peer->host, peer->port, where, sizeof where);
    if (st != NULL) {
        printf("%u handshakes with %s: %u resumed, %u full; %lu token signatures; mean "
               "handshake %lld ms\n",
               st->handshakes, where, st->resumed, st->handshakes - st->resumed, st->signatures,
               st->total_ms / st->handshakes);
        return;
    }
    printf("Connected to %s with %s\n", where, r->protocol);
    printf("  cipher suite: %s\n", r->cipher);
    printf("  server:       %s\n", r->server_subject);
    printf("  issuer:       %s (verified for %s)\n", r->server_issuer, peer->server_name);
    printf("  client cert:  %s, valid to %s, key on token '%s' (%s)\n", id->subject, when,
           id->token, how);
    if (q->asked && (verbose || q->ca_hint[0])) {
        printf("  requested:    CAs ");
        for (unsigned i = 0; i < q->n_ca; i++)
            printf("%s%s", i ? "; " : "", q->ca[i]);
        if (q->n_ca_total > q->n_ca)
            printf("; and %u more", q->n_ca_total - q->n_ca);
        printf("%s\n", q->n_ca_total == 0 ? "(any)" : "");
        printf("  signatures:   %s\n", q->sigalgs[0] ? q->sigalgs : "(none named)");
        if (q->ca_hint[0])
            printf("  note:         %s\n", q->ca_hint);
    }
    if (r->alpn[0])
        printf("  alpn:         %s\n", r->alpn);
    printf("  resumed:      %s\n", r->resumed ? "yes" : "no");
    printf("  handshake:    %lld ms\n", r->handshake_ms);
}

/* What connect was admitted with, to ask again when the server wants the certificate
 * later: a long --stdio session may outlive the certificate or a time-bound rule. */
struct readmit {
    const kb_objects *objs;
    const kb_key *only, *key;
    const kb_policy *pol;
    const kb_trust *trust;
    const char *endpoint;
};

static int readmit(void *arg, kb_err *err)
{
    const struct readmit *a = arg;
    kb_device dev;
    kb_verdict v;
    int rc = kb_device_choose(a->objs, a->only, a->pol, a->trust, (long long)time(NULL),
                              a->endpoint, &dev, &v, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        char summary[512];
        kb_verdict_summary(&v, summary, sizeof summary);
        return kb_err_set(err, "the device is no longer admitted: %s", summary);
    }
    if (dev.key != a->key)
        return kb_err_set(err, "the policy now admits another key ('%s')", dev.key->facts.label);
    return 0;
}

/* n handshakes in a row, each waiting for the ticket that the next one resumes from; the
 * last session is left open in *s and *fd, described in *r, for the summary. */
static int resume_test(kb_tls_client *client, kb_identity *id, unsigned n, gnutls_session_t *s,
                       int *fd, struct kb_tls_result *r, struct resume_stats *st, kb_err *err)
{
    unsigned long before = kb_signer_signatures(id->signer);
    *st = (struct resume_stats){.handshakes = n};
    for (unsigned i = 0; i < n; i++) {
        if (kb_tls_connect(client, s, fd, r, err) != 0)
            return -1;
        int rc = kb_tls_settle(*s, 2000, err);
        if (rc != 0 || i + 1 < n) {
            kb_tls_close(*s, *fd, rc == 0 ? KB_TLS_ORDERLY : KB_TLS_ABORT);
            *s = NULL;
            *fd = -1;
        }
        if (rc != 0)
            return -1;
        st->resumed += r->resumed;
        st->total_ms += r->handshake_ms;
    }
    st->signatures = kb_signer_signatures(id->signer) - before;
    return 0;
}

int kb_cmd_connect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"ca", required_argument, NULL, OPT_CA},
        {"server-name", required_argument, NULL, OPT_SERVER_NAME},
        {"alpn", required_argument, NULL, OPT_ALPN},
        {"connect-timeout", required_argument, NULL, OPT_TIMEOUT},
        {"stdio", no_argument, NULL, OPT_STDIO},
        {"resume-test", required_argument, NULL, OPT_RESUME},
        KB_COMMON_LONGOPTS,
        {0}};
    struct kb_cli c = {0};
    kb_tls_peer peer = {.connect_timeout_ms = 10000, .handshake_timeout_ms = 10000};
    const char *key_uri = NULL, *policy_path = NULL, *ca = NULL, *server_name = NULL;
    bool stdio = false;
    unsigned resume = 0;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        unsigned long v;
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_KEY:
            key_uri = optarg;
            break;
        case OPT_POLICY:
            policy_path = optarg;
            break;
        case OPT_CA:
            ca = optarg;
            break;
        case OPT_SERVER_NAME:
            server_name = optarg;
            break;
        case OPT_ALPN:
            if (peer.n_alpn == KB_ALPN_MAX || !*optarg || strlen(optarg) > KB_ALPN_LEN)
                return kb_cli_usage("connect", "--alpn takes up to %d protocols of 1 to %d bytes",
                                    KB_ALPN_MAX, KB_ALPN_LEN);
            peer.alpn[peer.n_alpn++] = optarg;
            break;
        case OPT_TIMEOUT:
            if (!kb_cli_count(optarg, 1, 3600, &v))
                return kb_cli_usage("connect", "--connect-timeout takes seconds from 1 to 3600");
            peer.connect_timeout_ms = peer.handshake_timeout_ms = (unsigned)v * 1000;
            break;
        case OPT_STDIO:
            stdio = true;
            break;
        case OPT_RESUME:
            if (!kb_cli_count(optarg, 1, 100000, &v))
                return kb_cli_usage("connect", "--resume-test takes a count from 1 to 100000");
            resume = (unsigned)v;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("connect", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (argc - optind != 1)
        return kb_cli_usage("connect", "needs one HOST:PORT");
    if (stdio && resume)
        return kb_cli_usage("connect", "--stdio and --resume-test do not go together");
    if (stdio && kb_cli_json())
        return kb_cli_usage("connect",
                            "--stdio and --json do not go together: standard output carries "
                            "the connection");
    const char *endpoint = argv[optind];

    kb_err err;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_trust *trust = NULL;
    kb_attester *attester = NULL;
    kb_key *only = NULL;
    kb_identity *id = NULL;
    kb_tls_client *client = NULL;
    gnutls_session_t session = NULL;
    int fd = -1;
    int rc = KB_EXIT_ERROR;
    char name[sizeof peer.server_name];
    if (kb_hostport_parse(endpoint, peer.host, sizeof peer.host, &peer.port, &err) != 0 ||
        (server_name &&
         kb_server_name_norm("--server-name", server_name, name, sizeof name, &err) != 0) ||
        kb_cli_policy(policy_path, &pol, &err) != 0)
        goto fail;
    if (server_name)
        server_name = name;
    const struct kb_endpoint_rule *rule = kb_policy_endpoint(pol, peer.host, peer.port);
    if (rule == NULL && !pol->allow_unlisted_endpoints && pol->mode == KB_MODE_ENFORCE) {
        /* Refused before any token is touched. */
        rc = kb_cli_refuse("denied: the policy does not list %s (endpoint.listed); the "
                           "device identity is not presented there",
                           endpoint);
        goto out;
    }
    if (rule != NULL && rule->ca != NULL && ca != NULL && strcmp(rule->ca, ca) != 0) {
        kb_err_set(&err, "the policy fixes the CA for %s (%s); --ca cannot override it", endpoint,
                   rule->ca);
        goto fail;
    }
    if (rule != NULL && rule->server_name != NULL && server_name != NULL &&
        strcasecmp(rule->server_name, server_name) != 0) {
        kb_err_set(&err,
                   "the policy fixes the server name for %s (%s); --server-name cannot "
                   "override it",
                   endpoint, rule->server_name);
        goto fail;
    }
    if (kb_tls_peer_apply(&peer, rule, ca, server_name, &err) != 0)
        goto fail;

    if ((key_uri && kb_cli_uri(&c, key_uri, &uri, &err) != 0) ||
        kb_cli_load(&c, uri, &p, &err) != 0 ||
        (key_uri ? kb_objects_one_key(p, uri, key_uri, &c.pin, &tokens, &objs, &only, &err)
                 : kb_objects_collect(p, NULL, &c.pin, true, &tokens, &objs, &err)) != 0 ||
        (trust = kb_trust_load(pol)) == NULL ||
        /* A fresh nonce for every evaluation, the re-admission before a handshake too. */
        kb_attester_attach(trust, pol, p, &c.pin, 0, &attester, &err) != 0)
        goto fail;
    kb_device dev;
    kb_verdict v;
    int chosen =
        kb_device_choose(&objs, only, pol, trust, (long long)time(NULL), endpoint, &dev, &v, &err);
    if (chosen < 0)
        goto fail;
    if (chosen == 1) {
        char summary[512];
        kb_verdict_summary(&v, summary, sizeof summary);
        rc = kb_cli_refuse("key '%s' on token '%s' is not admitted: %s; 'keybound check "
                           "--key URI' shows why",
                           dev.key->facts.label, dev.key->token->facts.label, summary);
        goto out;
    }
    if (v.would_deny) {
        char summary[512];
        kb_verdict_summary(&v, summary, sizeof summary);
        kb_log(KB_LOG_WARN, "%s", summary);
    }
    if (kb_gnutls_pkcs11_init(p, &err) != 0)
        goto fail;
    kb_pin_install_gnutls(&c.pin);
    if (kb_identity_new(&dev, &objs, &id, &err) != 0 ||
        kb_tls_client_new(&peer, id, &client, &err) != 0)
        goto fail;
    struct readmit again = {&objs, only, dev.key, pol, trust, endpoint};
    kb_tls_client_set_admission(client, readmit, &again);
    struct kb_tls_result r;
    struct resume_stats st;
    if (resume) {
        if (resume_test(client, id, resume, &session, &fd, &r, &st, &err) != 0)
            goto fail;
        kb_tls_describe_session(session, &r);
        print_summary(session, &peer, id, &r, &st, c.verbose > 0);
        rc = KB_EXIT_OK;
        goto out;
    }
    if (kb_tls_connect(client, &session, &fd, &r, &err) != 0)
        goto fail;
    if (stdio) {
        kb_log(KB_LOG_DEBUG, "connected to %s with %s, resumed %s", endpoint, r.protocol,
               r.resumed ? "yes" : "no");
        if (pump(session, fd, &err) != 0)
            goto fail;
    } else {
        /* In TLS 1.3 the server judges our certificate after our side of the handshake: a
         * rejection arrives as an alert just after it. */
        if (kb_tls_settle(session, 1000, &err) != 0)
            goto fail;
        kb_tls_describe_session(session, &r);
        print_summary(session, &peer, id, &r, NULL, c.verbose > 0);
    }
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    kb_tls_close(session, fd, rc == KB_EXIT_OK ? KB_TLS_ORDERLY : KB_TLS_ABORT);
    kb_tls_client_free(client);
    kb_identity_free(id);
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
