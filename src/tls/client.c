/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "client.h"
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/signer.h"
#include "policy/policy.h"
#include "src/util/hostport.h"
#include "src/util/log.h"
#include "src/util/net.h"
#include "src/util/proxy.h"

static bool is_address(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The names a certificate is for, for a host-name mismatch message; tagged: each with its
 * kind (DNS, IP), where an address was asked for. */
static void cert_names(gnutls_x509_crt_t crt, bool tagged, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; used < len; i++) {
        char name[256];
        size_t size = sizeof name - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &size, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type == GNUTLS_SAN_DNSNAME) {
            name[size] = '\0';
            used += (size_t)snprintf(out + used, len - used, "%s%s%s", used ? ", " : "",
                                     tagged ? "DNS " : "", name);
        } else if (type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16)) {
            char ip[64];
            inet_ntop(size == 4 ? AF_INET : AF_INET6, name, ip, sizeof ip);
            used += (size_t)snprintf(out + used, len - used, "%s%s%s", used ? ", " : "",
                                     tagged ? "IP " : "", ip);
        }
    }
    if (used == 0) {
        size_t size = len;
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &size) < 0)
            snprintf(out, len, "no name");
    }
}

static int verify_server(gnutls_session_t session)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(session);
    const kb_tls_peer *peer = ctx->client->peer;
    if (peer->unverified)
        return 0; /* the bootstrap: it has no identity to send, and ctx->verified stays false */
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
    if (chain == NULL || n == 0) {
        snprintf(ctx->why, sizeof ctx->why, "the server sent no certificate");
        return -1;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0 ||
        gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) < 0) {
        snprintf(ctx->why, sizeof ctx->why, "the server's certificate cannot be parsed");
        return -1;
    }
    /* The name, and that the certificate is meant for a TLS server: a client certificate
     * from the same CA must not pass for the server. */
    gnutls_typed_vdata_st data[2] = {
        {GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)peer->server_name, 0},
        {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER, 0},
    };
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers(session, data, 2, &status);
    int result = -1;
    if (rc < 0) {
        snprintf(ctx->why, sizeof ctx->why, "the server's certificate cannot be verified: %s",
                 gnutls_strerror(rc));
    } else if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
        char names[300];
        bool address = is_address(peer->server_name);
        cert_names(crt, address, names, sizeof names);
        if (address)
            snprintf(ctx->why, sizeof ctx->why,
                     "address mismatch: the server's certificate has no IP address entry for "
                     "%s in its subjectAltName, which is all an address is matched against "
                     "(it names: %s)",
                     peer->server_name, names);
        else
            snprintf(ctx->why, sizeof ctx->why,
                     "host name mismatch: the server's certificate is for %s, not %s", names,
                     peer->server_name);
    } else if (status & GNUTLS_CERT_PURPOSE_MISMATCH) {
        snprintf(ctx->why, sizeof ctx->why,
                 "the server's certificate is not meant for a TLS server (no serverAuth "
                 "extended key usage)");
    } else if (status & GNUTLS_CERT_EXPIRED) {
        char when[64] = "";
        time_t t = gnutls_x509_crt_get_expiration_time(crt);
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, " on %Y-%m-%d %H:%M UTC", &tm);
        snprintf(ctx->why, sizeof ctx->why, "the server's certificate expired%s", when);
    } else if (status & GNUTLS_CERT_NOT_ACTIVATED) {
        snprintf(ctx->why, sizeof ctx->why, "the server's certificate is not valid yet");
    } else if (status != 0) {
        char why[256];
        kb_verify_status_text(status, why, sizeof why);
        snprintf(ctx->why, sizeof ctx->why,
                 "the server's certificate is not trusted by the anchors in %s (%s)", peer->ca_file,
                 why);
    } else if (peer->n_pins > 0) {
        unsigned char id[32];
        size_t size = sizeof id;
        gnutls_datum_t raw = {id, 32}, b64 = {NULL, 0};
        if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id, &size) == 0 &&
            gnutls_base64_encode2(&raw, &b64) == 0) {
            for (size_t i = 0; i < peer->n_pins && result != 0; i++)
                if (strlen(peer->pins[i]) == b64.size &&
                    memcmp(peer->pins[i], b64.data, b64.size) == 0)
                    result = 0;
            if (result != 0)
                snprintf(ctx->why, sizeof ctx->why,
                         "pin mismatch: the server's key (pin-sha256 %.*s) is not among the %zu "
                         "pinned keys",
                         (int)b64.size, (char *)b64.data, peer->n_pins);
            gnutls_free(b64.data);
        } else {
            snprintf(ctx->why, sizeof ctx->why, "the server's key cannot be hashed for the pins");
        }
    } else {
        result = 0;
    }
    gnutls_x509_crt_deinit(crt);
    ctx->verified = result == 0;
    return result;
}

/* What the next handshake resumes from: the session's data (a TLS 1.3 ticket, or the TLS
 * 1.2 session), for every handshake of its client, and those waiting for it. */
static bool keep_session(gnutls_session_t session)
{
    kb_tls_client *c = ((struct session_ctx *)gnutls_session_get_ptr(session))->client;
    gnutls_datum_t data;
    if (gnutls_session_get_data2(session, &data) != 0)
        return false;
    pthread_mutex_lock(&c->lock);
    gnutls_free(c->ticket.data);
    c->ticket = data;
    c->ticket_tls12 = gnutls_protocol_get_version(session) != GNUTLS_TLS1_3;
    pthread_cond_broadcast(&c->ticket_cv);
    pthread_mutex_unlock(&c->lock);
    return true;
}

static int ticket_hook(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
                       const gnutls_datum_t *msg)
{
    (void)htype;
    (void)when;
    (void)incoming;
    (void)msg;
    struct session_ctx *ctx = gnutls_session_get_ptr(session);
    if (keep_session(session))
        ctx->got_ticket = true;
    return 0;
}

int kb_tls_peer_apply(kb_tls_peer *peer, const struct kb_endpoint_rule *rule, const char *ca,
                      const char *server_name, kb_err *err)
{
    char name[KB_HOSTPORT_STRLEN];
    if (rule != NULL && rule->ca != NULL)
        ca = rule->ca;
    if (ca == NULL)
        return kb_err_set(err,
                          "no CA to verify %s: give one (--ca FILE, or ca = FILE in a "
                          "tunnel), or ca = FILE in the policy's [endpoint \"%s\"] section",
                          HP(peer), kb_hostport_str(peer->host, 0, name, sizeof name));
    snprintf(peer->ca_file, sizeof peer->ca_file, "%s", ca);
    snprintf(peer->server_name, sizeof peer->server_name, "%s",
             rule && rule->server_name ? rule->server_name
             : server_name             ? server_name
                                       : peer->host);
    /* A link-local address's zone (fe80::1%eth0) says which interface to use; no
     * certificate names it, and left on it would make the address pass for a DNS name,
     * sent as SNI. */
    char *zone = strchr(peer->server_name, '%');
    if (zone != NULL && strchr(peer->server_name, ':') != NULL)
        *zone = '\0';
    peer->min_tls = rule && rule->min_tls ? rule->min_tls : 12;
    if (rule != NULL) {
        peer->pins = rule->pins;
        peer->n_pins = rule->n_pins;
        peer->priority = rule->priority;
    }
    return 0;
}

/* GnuTLS's NORMAL with X25519 first, as OpenSSL and the browsers order it: with one key
 * share in the ClientHello (session_new) that is the one nearly every server takes, and
 * on this machine half the CPU of P-256's (nettle: 93 us against 132 for keygen and
 * ECDH). A server without X25519 answers with a HelloRetryRequest: one more round trip.
 * AES-128-GCM before AES-256-GCM, as Go and BoringSSL offer them where the CPU has AES:
 * the suite's hash is then SHA-256, which x86's SHA extensions compute, where SHA-384 (no
 * such instructions) took 6.5% of a tunnel's CPU per resumed TLS 1.3 connection; and the
 * keys this tool holds (P-256, RSA-2048) and X25519 are of 128-bit strength, which a
 * 256-bit cipher does not raise. The set of ciphers is NORMAL's; only the order moves,
 * and a server that keeps its own order still picks AES-256. */
#define DEFAULT_PRIORITY                                                                           \
    "NORMAL:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"          \
    "+GROUP-X448:+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:"             \
    "+GROUP-FFDHE8192:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:"      \
    "+AES-256-CCM:+AES-128-CBC:+AES-256-CBC"

int kb_tls_client_new(const kb_tls_peer *peer, kb_identity *id, kb_tls_client **out, kb_err *err)
{
    *out = NULL;
    if (peer->unverified && id != NULL)
        return kb_err_set(err,
                          "an unverified connection to %s cannot carry the device's "
                          "identity",
                          HP(peer));
    bool no_pss = id != NULL && id->rsa_without_pss;
    if (peer->min_tls == 13 && no_pss)
        return kb_err_set(err,
                          "key '%s' is RSA on a token without RSA-PSS, which TLS 1.3 needs, and "
                          "%s requires TLS 1.3 (min-tls); use an EC key",
                          id->key_uri, HP(peer));
    kb_tls_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return kb_err_set(err, "out of memory");
    c->peer = peer;
    c->id = id;
    pthread_mutex_init(&c->lock, NULL);
    /* Waits are measured on the monotonic clock: a wall-clock step must not stretch them. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->ticket_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = gnutls_certificate_allocate_credentials(&c->cred);
    if (rc < 0) {
        kb_err_set(err, "%s", gnutls_strerror(rc));
        goto fail;
    }
    if (peer->n_anchors > 0)
        rc = gnutls_certificate_set_x509_trust(c->cred, (gnutls_x509_crt_t *)peer->anchors,
                                               (int)peer->n_anchors);
    else if (peer->unverified)
        rc = 1; /* nothing to verify against */
    else
        rc = gnutls_certificate_set_x509_trust_file(c->cred, peer->ca_file, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
        kb_err_set(err,
                   "CA file %s %s; it must hold the PEM certificates that the server's "
                   "certificate chains to",
                   peer->ca_file, rc == 0 ? "holds no certificate" : "cannot be read");
        goto fail;
    }
    gnutls_certificate_set_verify_function(c->cred, verify_server);
    /* Handed out per handshake rather than given to the credentials, which would then own
     * (and free) the identity. */
    gnutls_certificate_set_retrieve_function2(c->cred, kb_tls_our_certificate);
    /* TLS 1.2 at least; a token without PSS caps an RSA key at TLS 1.2. */
    char prio[1024];
    snprintf(prio, sizeof prio, "%s:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL%s%s",
             peer->priority ? peer->priority : DEFAULT_PRIORITY,
             peer->min_tls == 13 ? ":-VERS-TLS1.2" : "", no_pss ? ":-VERS-TLS1.3" : "");
    if (no_pss)
        kb_log(KB_LOG_INFO,
               "key '%s' is RSA and its token has no RSA-PSS: using TLS 1.2 for this key",
               id->key_uri);
    const char *where = NULL;
    rc = gnutls_priority_init2(&c->priority, prio, &where, 0);
    if (rc < 0) {
        kb_err_set(err,
                   "priority string '%s' for %s is not valid near '%s'; see "
                   "gnutls_priority_init(3)",
                   peer->priority ? peer->priority : "NORMAL", HP(peer), where ? where : "?");
        goto fail;
    }
    /* GnuTLS 3.7.9 renegotiating a session that has a TLS 1.2 ticket sends the ticket
     * extension again and then waits for a NewSessionTicket that OpenSSL servers do not
     * send ("An unexpected TLS packet was received"). Tickets stay on for resumption (some
     * servers, lighttpd, resume TLS 1.2 from tickets only) and go off for renegotiations:
     * this priority, set just before one, adds the session flag GNUTLS_NO_TICKETS_TLS12. */
    size_t used = strlen(prio);
    snprintf(prio + used, sizeof prio - used, ":%%NO_TICKETS_TLS12");
    if ((rc = gnutls_priority_init2(&c->reneg_priority, prio, NULL, 0)) < 0) {
        kb_err_set(err, "%s", gnutls_strerror(rc));
        goto fail;
    }
    /* Resuming a TLS 1.2 session on an event loop, a ClientHello offering TLS 1.3 too
     * would make a key share (30 us of CPU) that the server never uses. A full handshake
     * (on a worker) offers both again, so a server that moves to TLS 1.3 is followed. */
    prio[used] = '\0';
    if (peer->min_tls != 13 && !no_pss) {
        /* A priority that leaves only TLS 1.3 has no TLS 1.2 sessions to resume: none. */
        snprintf(prio + used, sizeof prio - used, ":-VERS-TLS1.3");
        if (gnutls_priority_init2(&c->resume12_priority, prio, NULL, 0) < 0)
            c->resume12_priority = NULL;
    }
    *out = c;
    return 0;
fail:
    kb_tls_client_free(c);
    return -1;
}

void kb_tls_client_free(kb_tls_client *c)
{
    if (c == NULL)
        return;
    if (c->priority)
        gnutls_priority_deinit(c->priority);
    if (c->reneg_priority)
        gnutls_priority_deinit(c->reneg_priority);
    if (c->resume12_priority)
        gnutls_priority_deinit(c->resume12_priority);
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    gnutls_free(c->ticket.data);
    pthread_cond_destroy(&c->ticket_cv);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void kb_tls_client_set_admission(kb_tls_client *c, kb_tls_admit_fn fn, void *arg)
{
    c->admit = fn;
    c->admit_arg = arg;
}

static const char *alert_name(gnutls_session_t s)
{
    const char *n = gnutls_alert_get_name(gnutls_alert_get(s));
    return n ? n : "unknown";
}

static bool rejection_alert(gnutls_alert_description_t a)
{
    switch (a) {
    case GNUTLS_A_BAD_CERTIFICATE:
    case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
    case GNUTLS_A_CERTIFICATE_REVOKED:
    case GNUTLS_A_CERTIFICATE_EXPIRED:
    case GNUTLS_A_CERTIFICATE_UNKNOWN:
    case GNUTLS_A_UNKNOWN_CA:
    case GNUTLS_A_ACCESS_DENIED:
    case GNUTLS_A_DECRYPT_ERROR:
    case GNUTLS_A_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

bool kb_tls_rejected(gnutls_session_t s, int rc)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    return rc == GNUTLS_E_FATAL_ALERT_RECEIVED && ctx->req.asked &&
           (rejection_alert(gnutls_alert_get(s)) || !ctx->req.sent);
}

void kb_tls_describe_error(gnutls_session_t s, int rc, kb_err *err)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    const kb_tls_peer *peer = ctx->client->peer;
    const struct kb_tls_request *q = &ctx->req;
    if (ctx->why[0] != '\0') {
        kb_err_set(err, "server %s failed verification: %s; our certificate was not sent", HP(peer),
                   ctx->why);
    } else if (rc == GNUTLS_E_PK_SIGN_FAILED && kb_signer_thread_failure() != NULL) {
        kb_err_set(err, "handshake with %s: %s", HP(peer), kb_signer_thread_failure());
    } else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED && q->asked && !q->sent) {
        kb_err_set(err, "server %s ended the connection (alert: %s): %s", HP(peer), alert_name(s),
                   q->why_not);
    } else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED && q->asked &&
               rejection_alert(gnutls_alert_get(s))) {
        if (q->ca_hint[0])
            kb_err_set(err, "server %s rejected our certificate (alert: %s); %s", HP(peer),
                       alert_name(s), q->ca_hint);
        else
            kb_err_set(err,
                       "server %s rejected our certificate (alert: %s); is it issued by a "
                       "CA the server trusts?",
                       HP(peer), alert_name(s));
    } else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED &&
               (gnutls_alert_get(s) == GNUTLS_A_PROTOCOL_VERSION ||
                gnutls_alert_get(s) == GNUTLS_A_HANDSHAKE_FAILURE ||
                gnutls_alert_get(s) == GNUTLS_A_INSUFFICIENT_SECURITY)) {
        kb_err_set(err, "server %s shares no TLS version or cipher suite with us (alert: %s)",
                   HP(peer), alert_name(s));
    } else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        kb_err_set(err, "server %s ended the connection with alert %s", HP(peer), alert_name(s));
    } else if (rc == GNUTLS_E_UNSUPPORTED_VERSION_PACKET || rc == GNUTLS_E_NO_CIPHER_SUITES ||
               rc == GNUTLS_E_UNKNOWN_CIPHER_SUITE || rc == GNUTLS_E_NO_PRIORITIES_WERE_SET ||
               rc == GNUTLS_E_INSUFFICIENT_CREDENTIALS) {
        kb_err_set(err, "server %s shares no TLS version or cipher suite with us (%s)", HP(peer),
                   gnutls_strerror(rc));
    } else if (rc == GNUTLS_E_TIMEDOUT) {
        kb_err_set(err, "handshake with %s timed out after %u ms", HP(peer),
                   peer->handshake_timeout_ms);
    } else if (ctx->established && (rc == GNUTLS_E_PREMATURE_TERMINATION ||
                                    rc == GNUTLS_E_PULL_ERROR || rc == GNUTLS_E_PUSH_ERROR)) {
        kb_err_set(err,
                   "the connection to %s was cut without a TLS close (%s); what came "
                   "through may be incomplete",
                   HP(peer), gnutls_strerror(rc));
    } else if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PULL_ERROR ||
               rc == GNUTLS_E_PUSH_ERROR) {
        kb_err_set(err,
                   "server %s closed the connection during the TLS handshake; is it a TLS "
                   "server?",
                   HP(peer));
    } else {
        kb_err_set(err, "TLS with %s failed: %s", HP(peer), gnutls_strerror(rc));
    }
}

void kb_tls_describe_session(gnutls_session_t s, struct kb_tls_result *r)
{
    char *desc = gnutls_session_get_desc(s);
    snprintf(r->cipher, sizeof r->cipher, "%s", desc ? desc : "?");
    gnutls_free(desc);
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
    gnutls_x509_crt_t crt;
    if (chain == NULL || n == 0 || gnutls_x509_crt_init(&crt) < 0)
        return;
    gnutls_datum_t dn;
    if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0) {
        if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
            snprintf(r->server_subject, sizeof r->server_subject, "%s", (char *)dn.data);
            gnutls_free(dn.data);
        }
        if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
            snprintf(r->server_issuer, sizeof r->server_issuer, "%s", (char *)dn.data);
            gnutls_free(dn.data);
        }
    }
    gnutls_x509_crt_deinit(crt);
}

/* Waits while the first full handshake's ticket may still come; returns whether this
 * handshake is to be that first one. Called with c->lock held. */
static bool gate(kb_tls_client *c)
{
    long long deadline = kb_now_ms() + 3000;
    while (!c->gate_off && c->ticket.data == NULL) {
        long long now = kb_now_ms();
        bool waiting = c->first_in_flight || now < c->first_done_ms + 1000;
        if (!waiting)
            break;
        if (now >= deadline) {
            c->gate_off = true;
            break;
        }
        long long until = c->first_in_flight ? deadline : c->first_done_ms + 1000;
        if (until > deadline)
            until = deadline;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ms = until - now;
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->ticket_cv, &c->lock, &ts);
    }
    if (c->ticket.data == NULL && c->first_done_ms != 0 && !c->first_in_flight &&
        kb_now_ms() >= c->first_done_ms + 1000)
        c->gate_off = true; /* no ticket came: this server does not give them */
    if (c->ticket.data == NULL && !c->first_in_flight) {
        c->first_in_flight = true;
        return true;
    }
    return false;
}

/* How long the server's addresses are used before they are looked up again: a name that
 * moves takes effect within this, and a failed connect looks it up at once. */
#define ADDRS_TTL_MS 30000

/* Whether the addresses kept are young enough to use; c->lock held. */
static bool addrs_fresh(const kb_tls_client *c)
{
    return c->addrs_ms != 0 && kb_now_ms() - c->addrs_ms < ADDRS_TTL_MS;
}

/* The server's addresses, looked up again when they are older than ADDRS_TTL_MS. */
static int addresses(kb_tls_client *c, struct kb_addrs *out, kb_err *err)
{
    const kb_tls_peer *peer = c->peer;
    pthread_mutex_lock(&c->lock);
    bool fresh = addrs_fresh(c);
    if (fresh)
        *out = c->addrs;
    pthread_mutex_unlock(&c->lock);
    if (fresh)
        return 0;
    if (kb_resolve(peer->host, peer->port, out, err) != 0)
        return -1;
    pthread_mutex_lock(&c->lock);
    c->addrs = *out;
    c->addrs_good = 0;
    c->addrs_ms = kb_now_ms();
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void kb_tls_forget_addresses(kb_tls_client *c)
{
    pthread_mutex_lock(&c->lock);
    c->addrs_ms = 0;
    pthread_mutex_unlock(&c->lock);
}

static int connect_direct(kb_tls_client *c, int cancel, int *fd, kb_err *err)
{
    const kb_tls_peer *peer = c->peer;
    struct kb_addrs a;
    unsigned used = 0;
    int rc = addresses(c, &a, err);
    if (rc == 0)
        rc = kb_tcp_connect_to(&a, peer->host, peer->port, peer->connect_timeout_ms, cancel, fd,
                               &used, err);
    if (rc != 0) {
        kb_tls_forget_addresses(c);
        return rc;
    }
    /* The address that answered is the one an event loop tries: "localhost" on Debian is
     * ::1 first, and a server listening on 127.0.0.1 only would refuse every such try. */
    pthread_mutex_lock(&c->lock);
    if (used < c->addrs.n && memcmp(&c->addrs.a[used], &a.a[used], sizeof a.a[used]) == 0)
        c->addrs_good = used;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int kb_tls_connect(kb_tls_client *c, gnutls_session_t *session, int *fd, struct kb_tls_result *r,
                   kb_err *err)
{
    const kb_tls_peer *peer = c->peer;
    *session = NULL;
    *fd = -1;
    memset(r, 0, sizeof *r); /* a failed connect says nothing of the handshake */
    int rc, cancel = peer->cancel_fd ? *peer->cancel_fd : -1;
    if (peer->proxy != NULL) {
        char host[256];
        unsigned port;
        if (kb_proxy_parse_url(peer->proxy, host, sizeof host, &port, err) != 0 ||
            kb_tcp_connect(host, port, peer->connect_timeout_ms, cancel, fd, err) != 0)
            return -1;
        rc = kb_proxy_connect(*fd, peer->proxy, peer->host, peer->port, peer->connect_timeout_ms,
                              cancel, err);
    } else {
        /* One retry after a short pause, the name looked up again: a backend restarting, a
         * listen queue full. */
        rc = connect_direct(c, cancel, fd, err);
        if (rc != 0 && (cancel < 0 || kb_wait_fd(cancel, POLLIN, 0, -1) == 0)) {
            /* The pause is abandoned too when the tunnel stops. */
            if (kb_wait_fd(-1, 0, 250, cancel) != -2)
                rc = connect_direct(c, cancel, fd, err);
        }
    }
    if (rc == 0)
        rc = kb_tls_handshake_fd(c, *fd, session, r, err);
    if (rc != 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

/* A client session on fd with c's settings, not yet started. */
static int session_new(kb_tls_client *c, int fd, gnutls_session_t *out, kb_err *err)
{
    const kb_tls_peer *peer = c->peer;
    gnutls_session_t s;
    struct session_ctx *ctx = calloc(1, sizeof *ctx);
    /* Post-handshake auth only where there is a certificate to give. One key share, for
     * the first group of the priority: GnuTLS's default makes two (P-256 and X25519) and
     * the server uses one. */
    unsigned flags = GNUTLS_CLIENT | GNUTLS_KEY_SHARE_TOP;
    if (c->id != NULL)
        flags |= GNUTLS_POST_HANDSHAKE_AUTH;
    int rc = ctx ? gnutls_init(&s, flags) : GNUTLS_E_MEMORY_ERROR;
    if (rc < 0) {
        free(ctx);
        return kb_err_set(err, "%s", gnutls_strerror(rc));
    }
    ctx->client = c;
    ctx->start_ms = kb_now_ms();
    gnutls_session_set_ptr(s, ctx);
    gnutls_priority_set(s, c->priority);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred);
    if (!is_address(peer->server_name))
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, peer->server_name, strlen(peer->server_name));
    if (peer->n_alpn > 0) {
        gnutls_datum_t protos[KB_ALPN_MAX];
        for (size_t i = 0; i < peer->n_alpn; i++)
            protos[i] =
                (gnutls_datum_t){(unsigned char *)peer->alpn[i], (unsigned)strlen(peer->alpn[i])};
        gnutls_alpn_set_protocols(s, protos, (unsigned)peer->n_alpn, 0);
    }
    gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST,
                                       ticket_hook);
    kb_tls_transport_set(s, ctx, fd);
    *out = s;
    return 0;
}

/* The handshake ended (rc): r filled in, the session kept for resumption and counted; on a
 * failure err says why and the session is gone. */
static int handshake_ended(gnutls_session_t s, int rc, struct kb_tls_result *r, kb_err *err)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    kb_tls_client *c = ctx->client;
    r->handshake_ms = kb_now_ms() - ctx->start_ms;
    r->cert_requested = gnutls_certificate_client_get_request_status(s) != 0;
    r->cert_sent = gnutls_certificate_get_ours(s) != NULL;
    r->token_failed = rc == GNUTLS_E_PK_SIGN_FAILED;
    if (rc < 0) {
        kb_tls_describe_error(s, rc, err);
        /* A TLS record starts with a byte from 20 to 24; text ("HTTP/1.1 400", an HTML
         * page) is a plain-HTTP server: the wrong port or scheme, where GnuTLS sees only a
         * record it cannot parse. */
        r->plain_http = ctx->first_byte >= 0x20 && ctx->first_byte < 0x7f;
        if (r->plain_http)
            kb_err_set(err, "%s answers in plain HTTP, not TLS", HP(c->peer));
        kb_tls_close(s, -1, KB_TLS_ABORT);
        return -1;
    }
    ctx->established = true;
    r->resumed = gnutls_session_is_resumed(s) != 0;
    snprintf(r->protocol, sizeof r->protocol, "%s",
             gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
    gnutls_datum_t alpn;
    if (gnutls_alpn_get_selected_protocol(s, &alpn) == 0)
        snprintf(r->alpn, sizeof r->alpn, "%.*s", (int)alpn.size, (char *)alpn.data);
    /* TLS 1.2 resumes from the session itself; TLS 1.3 from a ticket (ticket_hook). */
    if (gnutls_protocol_get_version(s) != GNUTLS_TLS1_3)
        keep_session(s);
    pthread_mutex_lock(&c->lock);
    if (r->resumed)
        c->counts.resumed++;
    else
        c->counts.full++;
    if (r->resumed && !ctx->no_sign)
        c->loop_off = false; /* the server resumes again: so may the loops */
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int kb_tls_handshake_fd(kb_tls_client *c, int fd, gnutls_session_t *session,
                        struct kb_tls_result *r, kb_err *err)
{
    const kb_tls_peer *peer = c->peer;
    memset(r, 0, sizeof *r);
    *session = NULL;
    gnutls_session_t s;
    if (session_new(c, fd, &s, err) != 0)
        return -1;
    pthread_mutex_lock(&c->lock);
    bool first = gate(c);
    if (c->ticket.data != NULL)
        gnutls_session_set_data(s, c->ticket.data, c->ticket.size);
    pthread_mutex_unlock(&c->lock);
    long long start = kb_now_ms();
    ((struct session_ctx *)gnutls_session_get_ptr(s))->start_ms = start; /* the wait is not its */
    /* Cancellable: non-blocking, waiting here on the socket and the cancel descriptor, with
     * GnuTLS's own timeout off (with one, GnuTLS waits in poll by itself). */
    int cancel = peer->cancel_fd ? *peer->cancel_fd : -1, fl = -1;
    bool cancelled = false;
    if (cancel >= 0 && (fl = fcntl(fd, F_GETFL)) >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    gnutls_handshake_set_timeout(s, fl >= 0 ? 0 : peer->handshake_timeout_ms);
    int rc;
    for (;;) {
        rc = gnutls_handshake(s);
        if (rc >= 0 || gnutls_error_is_fatal(rc))
            break;
        if (fl >= 0 && rc == GNUTLS_E_AGAIN) {
            long long left = start + peer->handshake_timeout_ms - kb_now_ms();
            int w = left > 0 ? kb_tls_wait(s, (int)left, cancel) : 0;
            if (w == 0 || w == -2) {
                cancelled = w == -2;
                rc = GNUTLS_E_TIMEDOUT;
                break;
            }
        }
    }
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl);
    if (first) {
        pthread_mutex_lock(&c->lock);
        c->first_in_flight = false;
        /* A failed first handshake brings no ticket: nobody waits for one then. */
        if (rc >= 0)
            c->first_done_ms = kb_now_ms();
        pthread_cond_broadcast(&c->ticket_cv);
        pthread_mutex_unlock(&c->lock);
    }
    if (cancelled) {
        handshake_ended(s, rc, r, err);
        return kb_err_set(err, "handshake with %s abandoned: stopping", HP(peer));
    }
    if (handshake_ended(s, rc, r, err) != 0)
        return -1;
    *session = s;
    return 0;
}

bool kb_tls_resumable(kb_tls_client *c, struct sockaddr_storage *sa, socklen_t *len)
{
    if (c->peer->proxy != NULL || c->peer->unverified)
        return false;
    pthread_mutex_lock(&c->lock);
    bool ok = !c->loop_off && c->ticket.data != NULL && addrs_fresh(c) && c->addrs.n > 0;
    if (ok) {
        *sa = c->addrs.a[c->addrs_good].sa;
        *len = c->addrs.a[c->addrs_good].len;
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

int kb_tls_resume_begin(kb_tls_client *c, int fd, gnutls_session_t *session, kb_err *err)
{
    *session = NULL;
    gnutls_session_t s;
    if (session_new(c, fd, &s, err) != 0)
        return -1;
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    ctx->no_sign = true;
    pthread_mutex_lock(&c->lock);
    int rc = c->ticket.data != NULL ? gnutls_session_set_data(s, c->ticket.data, c->ticket.size)
                                    : GNUTLS_E_INVALID_SESSION;
    if (rc == 0 && c->ticket_tls12 && c->resume12_priority != NULL)
        rc = gnutls_priority_set(s, c->resume12_priority);
    pthread_mutex_unlock(&c->lock);
    if (rc < 0) {
        kb_tls_close(s, -1, KB_TLS_ABORT);
        return kb_err_set(err, "no session to resume with %s", HP(c->peer));
    }
    gnutls_handshake_set_timeout(s, 0); /* the caller's loop keeps the time */
    *session = s;
    return 0;
}

enum kb_tls_step kb_tls_resume_step(gnutls_session_t s, struct kb_tls_result *r, kb_err *err)
{
    int rc;
    /* The last flight waits for the caller's first request (kb_tls_flush). */
    kb_tls_hold(s);
    /* A warning alert (unrecognized_name, from many servers) is not a failure. */
    do
        rc = gnutls_handshake(s);
    while (rc == GNUTLS_E_WARNING_ALERT_RECEIVED);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        /* Nothing is held while waiting for the server: it would wait for us. */
        int held = kb_tls_flush(s);
        if (held > 0 || (held == 0 && gnutls_record_get_direction(s)))
            return KB_TLS_WANT_WRITE;
        if (held == 0)
            return KB_TLS_WANT_READ;
        rc = GNUTLS_E_PUSH_ERROR;
    }
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    kb_tls_client *c = ctx->client;
    if (rc < 0 && !ctx->sent) {
        /* Not a byte reached the server: the connect failed. */
        int e = ctx->io_errno;
        kb_tls_close(s, -1, KB_TLS_ABORT);
        kb_err_set(err, "cannot connect to %s: %s", HP(c->peer),
                   e == ECONNREFUSED ? "connection refused" : strerror(e));
        return KB_TLS_NO_CONNECTION;
    }
    if (rc < 0) {
        /* Refused or failed: a worker does it again from scratch (a server that moved to
         * TLS 1.3 only fails a TLS 1.2 resumption's ClientHello), and new connections go
         * to the workers until one resumes there: a server that never resumes costs no
         * attempt on the loop per connection. */
        bool asked = ctx->wants_signer;
        handshake_ended(s, rc, r, err); /* says why, and ends the session */
        if (asked)
            kb_err_set(err, "the server did not resume the session and asked for the "
                            "certificate");
        pthread_mutex_lock(&c->lock);
        c->counts.redone++;
        c->loop_off = true;
        pthread_mutex_unlock(&c->lock);
        return KB_TLS_REDO;
    }
    handshake_ended(s, rc, r, err); /* rc >= 0: it succeeds */
    /* Later requests for the certificate are answered by kb_tls_reauth, which the caller
     * runs where signing may block. */
    ctx->no_sign = false;
    return KB_TLS_DONE;
}

void kb_tls_close(gnutls_session_t s, int fd, enum kb_tls_close_mode mode)
{
    if (s != NULL) {
        struct session_ctx *ctx = gnutls_session_get_ptr(s);
        if (mode == KB_TLS_ORDERLY)
            gnutls_bye(s, GNUTLS_SHUT_WR);
        gnutls_deinit(s);
        kb_tls_transport_free(ctx, mode != KB_TLS_ABORT);
        free(ctx);
    }
    if (fd >= 0) {
        if (mode == KB_TLS_ABORT) {
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(fd);
    }
}

bool kb_tls_session_verified(gnutls_session_t s)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    if (ctx == NULL || ctx->client->peer->unverified || !ctx->established)
        return false;
    return ctx->verified || gnutls_session_is_resumed(s) != 0;
}

void kb_tls_counts(kb_tls_client *c, struct kb_tls_counts *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->counts;
    pthread_mutex_unlock(&c->lock);
}
