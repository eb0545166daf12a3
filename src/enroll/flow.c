/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/attrs.h"
#include "pkcs11/keygen.h"
#include "pkcs11/lifecycle.h"
#include "pkcs11/store.h"
#include "pkcs11/uri.h"
#include "src/attest/attester.h"
#include "src/enroll/install.h"
#include "src/network/network.h"
#include "src/enroll/keystate.h"
#include "src/tls/certjson.h"
#include "src/tls/device.h"
#include "src/tls/identity.h"
#include "src/util/log.h"
#include "src/util/statedir.h"

int kb_enroll_secret(const char *path, kb_secret **out, kb_err *err)
{
    *out = NULL;
    char cred[4096];
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (path == NULL && dir != NULL && *dir &&
        (size_t)snprintf(cred, sizeof cred, "%s/keybound.secret", dir) < sizeof cred &&
        access(cred, F_OK) == 0)
        path = cred;
    if (path == NULL)
        return 0;
    kb_secret *s = kb_secret_new();
    if (s == NULL)
        return kb_err_set(err, "cannot allocate locked memory for the secret");
    if (kb_secret_read_file(path, "secret file", s, err) != 0) {
        kb_secret_free(s);
        return -1;
    }
    if (strchr(s->buf, ':') == NULL || s->buf[0] == ':') {
        kb_secret_free(s);
        return kb_err_set(err, "secret file %s must hold user:password (HTTP Basic)", path);
    }
    *out = s;
    return 0;
}

/* The subject and subject alternative names of crt as a request spec; text holds the
 * strings. */
static int spec_from_cert(gnutls_x509_crt_t crt, struct kb_csr_spec *spec, char *text, size_t len,
                          kb_err *err)
{
    memset(spec, 0, sizeof *spec);
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) < 0 || dn.size + 1 > len) {
        gnutls_free(dn.data);
        return kb_err_set(err, "the current certificate's subject cannot be read");
    }
    size_t used = (size_t)snprintf(text, len, "%s", (char *)dn.data) + 1;
    gnutls_free(dn.data);
    spec->subject = text;
    for (unsigned i = 0;; i++) {
        char name[512];
        size_t size = sizeof name - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &size, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            return kb_err_set(err, "the current certificate has a name too long to copy");
        if (type < 0)
            continue;
        name[size] = '\0';
        char ip[64];
        const char *kind = type == GNUTLS_SAN_DNSNAME      ? "dns"
                           : type == GNUTLS_SAN_URI        ? "uri"
                           : type == GNUTLS_SAN_RFC822NAME ? "email"
                           : type == GNUTLS_SAN_IPADDRESS  ? "ip"
                                                           : NULL;
        if (kind == NULL)
            continue;
        /* The renewed certificate must be for the same names: none may be dropped. */
        if (spec->n_sans == KB_SAN_MAX)
            return kb_err_set(err, "the current certificate has more than %d names to copy",
                              KB_SAN_MAX);
        const char *value = name;
        if (type == GNUTLS_SAN_IPADDRESS) {
            if (inet_ntop(size == 4 ? AF_INET : AF_INET6, name, ip, sizeof ip) == NULL)
                continue;
            value = ip;
        }
        int w = snprintf(text + used, len - used, "%s:%s", kind, value);
        if (w < 0 || (size_t)w >= len - used)
            return kb_err_set(err, "the current certificate has too many names to copy");
        spec->sans[spec->n_sans++] = text + used;
        used += (size_t)w + 1;
    }
    return 0;
}

static int save_certs(const char *path, gnutls_x509_crt_t *certs, unsigned n, kb_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kb_err_set(err, "cannot write %s: %s", path, strerror(errno));
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        gnutls_datum_t pem = {NULL, 0};
        if (gnutls_x509_crt_export2(certs[i], GNUTLS_X509_FMT_PEM, &pem) < 0 ||
            write(fd, pem.data, pem.size) != (ssize_t)pem.size)
            rc = kb_err_set(err, "cannot write %s", path);
        gnutls_free(pem.data);
    }
    if (close(fd) != 0 && rc == 0)
        rc = kb_err_set(err, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

/* Signs a request for key k with spec (plus what /csrattrs asked); csr is gnutls_free'd by
 * the caller. */
static int sign_request(kb_signer *signer, const kb_key *k, struct kb_csr_spec *spec,
                        const struct kb_csrattrs *attrs, gnutls_datum_t *csr, kb_err *err)
{
    spec->digest = attrs->digest;
    spec->n_extra_eku = 0;
    for (size_t i = 0; i < attrs->n_eku && i < KB_EKU_MAX; i++) {
        spec->extra_eku[spec->n_extra_eku++] = attrs->eku[i];
        const char *name = kb_oid_name(attrs->eku[i]);
        kb_log(KB_LOG_DEBUG, "the EST server asks for %s%s%s%s in the request: put in",
               name ? name : "", name ? " (" : "", attrs->eku[i], name ? ")" : "");
    }
    for (size_t i = 0; i < attrs->n_unknown; i++) {
        const char *name = kb_oid_name(attrs->unknown[i]);
        kb_log(KB_LOG_WARN,
               "the EST server asks for %s%s%s%s in the request: not honoured, keybound does "
               "not fill it in",
               name ? name : "", name ? " (" : "", attrs->unknown[i], name ? ")" : "");
    }
    return kb_csr_make(signer, kb_key_lacks_pss(k), spec, csr, err);
}

/* Submits csr to op; the certificate that comes back must be for k. */
static enum kb_est_state send_request(kb_est *e, const char *op, const gnutls_datum_t *csr,
                                      const kb_key *k, gnutls_x509_crt_t **certs, unsigned *n,
                                      kb_err *err)
{
    enum kb_est_state s = kb_est_submit(e, op, csr, certs, n, err);
    if (s == KB_EST_ISSUED &&
        kb_cert_matches_key((*certs)[0], k, "the certificate the EST server issued", err) != 0) {
        kb_free_certs(*certs, *n);
        *certs = NULL;
        *n = 0;
        e->malformed = true;
        return KB_EST_UNREACHABLE;
    }
    return s;
}

/* A request kept on disk is sent again only for the key that signed it: a state file changed
 * by someone else must not spend the device's credential on another key. */
static int request_is_for(const gnutls_datum_t *req, const kb_key *k, const char *dir, kb_err *err)
{
    gnutls_x509_crq_t crq;
    unsigned char id[32];
    size_t size = sizeof id;
    bool ok = false;
    if (gnutls_x509_crq_init(&crq) >= 0) {
        ok = gnutls_x509_crq_import(crq, req, GNUTLS_X509_FMT_DER) >= 0 &&
             gnutls_x509_crq_get_key_id(crq, GNUTLS_KEYID_USE_SHA256, id, &size) >= 0 &&
             size == sizeof id && k->has_spki && memcmp(id, k->spki_sha256, sizeof id) == 0;
        gnutls_x509_crq_deinit(crq);
    }
    return ok ? 0
              : kb_err_set(err,
                           "the request kept in %s for key '%s' is not signed by that key; "
                           "move its state file away",
                           dir, k->facts.label);
}

/* The private key with CKA_ID hex on s's token, into k: 0, or -1 when there is not exactly
 * one (err). */
static int key_by_id(kb_session *s, const char *hex, kb_key *k, kb_err *err)
{
    unsigned char id[KB_ID_MAX];
    size_t len = 0;
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    if (kb_keystate_id(hex, id, &len) != 0 ||
        kb_find(s, CKO_PRIVATE_KEY, CKA_ID, id, (CK_ULONG)len, &h, &n, err) != 0)
        return -1;
    int rc = n == 1 ? kb_key_read(s, h[0], k, err)
                    : kb_err_set(err, "%zu keys with id %s on token '%s'", n, hex,
                                 s->token->facts.label);
    free(h);
    return rc;
}

/* A key with a valid certificate, as the policy's anchors see it: the identity for a
 * renewal or for enroll --auth-key. */
struct current {
    P11KitUri *uri;
    kb_token_list tokens;
    kb_objects objs;
    kb_key *key;
    kb_device dev;
};

static int find_current(kb_p11 *p, const kb_pin_opts *pin, const char *key_uri,
                        const kb_trust *trust, long long now, const char *purpose,
                        struct current *c, kb_err *err)
{
    if (kb_uri_parse(key_uri, 0, &c->uri, err) != 0 ||
        kb_objects_one_key(p, c->uri, key_uri, pin, &c->tokens, &c->objs, &c->key, err) != 0 ||
        kb_device_gather(&c->objs, (size_t)(c->key - c->objs.keys), trust, now, NULL, &c->dev,
                         err) != 0)
        return -1;
    if (c->dev.cert == NULL || !c->dev.cert_valid)
        return kb_err_set(err, "key '%s' has no valid certificate to %s with; %s",
                          c->key->facts.label, purpose,
                          strcmp(purpose, "authenticate the renewal") == 0
                              ? "enroll it again"
                              : "give another --auth-key or --secret-file");
    return 0;
}

static void current_free(struct current *c)
{
    kb_objects_free(&c->objs);
    kb_token_list_free(&c->tokens);
    if (c->uri)
        p11_kit_uri_free(c->uri);
    memset(c, 0, sizeof *c);
}

static void describe(struct kb_enroll_outcome *out, const char *key_uri, const kb_device *d)
{
    free(out->key_uri);
    free(out->cert_subject);
    free(out->cert_issuer);
    free(out->cert_der);
    out->cert_der = NULL;
    out->cert_der_len = 0;
    if (d && d->cert && d->cert->der_len > 0 && (out->cert_der = malloc(d->cert->der_len))) {
        memcpy(out->cert_der, d->cert->der, d->cert->der_len);
        out->cert_der_len = d->cert->der_len;
    }
    out->key_uri = key_uri ? strdup(key_uri) : NULL;
    out->cert_subject = d && d->cert && d->cert->subject ? strdup(d->cert->subject) : NULL;
    out->cert_issuer = d && d->cert && d->cert->issuer ? strdup(d->cert->issuer) : NULL;
    out->cert_not_after = d && d->cert ? (long long)d->cert->not_after : 0;
    snprintf(out->cert_sha256, sizeof out->cert_sha256, "%s", d ? d->facts.cert.sha256 : "");
}

/* The result as the policy sees it, from a fresh listing of the token. */
static int final_check(kb_p11 *p, const kb_pin_opts *pin, const kb_policy *pol,
                       const kb_trust *trust, const char *key_uri, const kb_key *renewed,
                       struct kb_enroll_outcome *out, kb_err *err)
{
    struct current c = {0};
    long long now = (long long)time(NULL);
    int rc = -1;
    if (kb_uri_parse(key_uri, 0, &c.uri, err) == 0 &&
        kb_objects_one_key(p, c.uri, key_uri, pin, &c.tokens, &c.objs, &c.key, err) == 0 &&
        kb_device_gather(&c.objs, (size_t)(c.key - c.objs.keys), trust, now, NULL, &c.dev, err) ==
            0) {
        kb_policy_evaluate(pol, &c.dev.facts, now, &out->verdict);
        out->have_verdict = true;
        describe(out, key_uri, &c.dev);
        /* The network profiles of the renewed key present what renew just stored (after a
         * rekey, with the new key). */
        if (renewed != NULL && out->verdict.admit)
            kb_net_follow_renewal(&c.objs, c.key,
                                  renewed->has_spki &&
                                          memcmp(renewed->spki_sha256, c.key->spki_sha256, 32) != 0
                                      ? renewed->spki_sha256
                                      : NULL,
                                  pol, trust, now);
        rc = 0;
    }
    current_free(&c);
    return rc;
}

/* What a run remembers in the state directory (src/enroll/keystate.h). */
struct memory {
    char dir[PATH_MAX];
    bool have_dir;
    kb_keystate ks; /* the file of the key the run is about (renew: the current key) */
    bool loaded;    /* ks came from a file */
    bool resend;    /* ks.pending is what this run sends */
    long long now;
};

static void memory_open(struct memory *m, long long now)
{
    kb_err err;
    m->now = now;
    m->have_dir = kb_state_dir(m->dir, sizeof m->dir, false, &err) == 0;
}

/* The key's state as the run found it; a file that cannot be read is said and ignored (it
 * is replaced by the run's own). */
static void memory_load(struct memory *m, const kb_token *t, const kb_key *k)
{
    kb_err err;
    int rc = m->have_dir ? kb_keystate_load(m->dir, t->facts.serial, k->facts.id, k->facts.id_len,
                                            &m->ks, &err)
                         : 1;
    if (rc < 0)
        kb_log(KB_LOG_WARN, "%s", err.msg);
    m->loaded = rc == 0;
}

static void memory_identify(kb_keystate *ks, const kb_key *k)
{
    snprintf(ks->token_serial, sizeof ks->token_serial, "%s", k->token->facts.serial);
    snprintf(ks->token_label, sizeof ks->token_label, "%s", k->token->facts.label);
    kb_hex(k->facts.id, k->facts.id_len, ks->key_id);
    snprintf(ks->label, sizeof ks->label, "%s", k->facts.label);
    snprintf(ks->key_uri, sizeof ks->key_uri, "%s", k->uri ? k->uri : "");
}

static const char *result_name(enum kb_est_state s, bool denied)
{
    switch (s) {
    case KB_EST_ISSUED:
        return denied ? "denied" : "issued";
    case KB_EST_WAIT:
        return "wait";
    case KB_EST_REJECTED:
        return "rejected";
    case KB_EST_UNREACHABLE:
        return "unreachable";
    default:
        return "underconfigured";
    }
}

/* Writes ks as the state of key k with the run's result; 0, or -1 (said) when it cannot. */
static int memory_save(struct memory *m, kb_keystate *ks, const kb_key *k, bool renew,
                       const char *result, const char *message)
{
    kb_err err;
    memory_identify(ks, k);
    snprintf(ks->last_op, sizeof ks->last_op, "%s", renew ? "renew" : "enroll");
    snprintf(ks->last_result, sizeof ks->last_result, "%s", result);
    snprintf(ks->last_message, sizeof ks->last_message, "%s", message ? message : "");
    ks->last_time = m->now;
    if (kb_state_dir(m->dir, sizeof m->dir, true, &err) != 0 ||
        kb_keystate_save(m->dir, ks, &err) != 0) {
        kb_log(KB_LOG_WARN, "the result for key '%s' is not kept: %s", k->facts.label, err.msg);
        return -1;
    }
    m->have_dir = true;
    return 0;
}

static void memory_forget(struct memory *m, const kb_key *k)
{
    kb_err err;
    if (m->have_dir &&
        kb_keystate_remove(m->dir, k->token->facts.serial, k->facts.id, k->facts.id_len, &err) != 0)
        kb_log(KB_LOG_WARN, "%s", err.msg);
}

/* The 202 as a pending request: what was sent, to where, and when to ask again. */
static int pending_note(struct kb_pending *p, const struct memory *m, bool renew, bool rekey,
                        const kb_key *k, const kb_est *e, const gnutls_datum_t *csr)
{
    if (!m->resend) {
        if (kb_pending_set_csr(p, csr->data, csr->size) != 0)
            return -1;
        p->submitted = m->now;
    }
    p->active = true;
    p->renew = renew;
    p->rekey = rekey;
    kb_hex(k->facts.id, k->facts.id_len, p->key_id);
    snprintf(p->label, sizeof p->label, "%s", k->facts.label);
    snprintf(p->url, sizeof p->url, "%s", e->url);
    p->last_reply = (long long)time(NULL);
    p->next_poll = e->retry_after_s >= 0 ? p->last_reply + e->retry_after_s : 0;
    return 0;
}

int kb_enroll_run(kb_p11 *p, const kb_pin_opts *pin, const struct kb_enroll_spec *spec,
                  struct kb_enroll_outcome *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    enum kb_est_state state = KB_EST_UNDERCONFIGURED;
    const bool renew = spec->renew;
    bool rekey = renew && spec->rekey;
    const char *op = renew ? "simplereenroll" : "simpleenroll";
    kb_est est = {0};
    kb_secret *secret = spec->secret;
    kb_trust *trust = NULL;
    struct current cur = {0};
    kb_identity *id = NULL;
    P11KitUri *token_uri = NULL;
    kb_token_list tokens = {0};
    kb_token *t = NULL;
    kb_session s = {0};
    kb_key fresh = {0};
    const kb_key *subject = NULL; /* the key the certificate is for */
    bool made = false, stored = false, sent = false;
    kb_signer *signer = NULL;
    gnutls_x509_crt_t *ca_certs = NULL, *certs = NULL, *all = NULL, crt = NULL;
    unsigned n_ca = 0, n = 0, n_all = 0;
    struct kb_csrattrs attrs;
    struct kb_csr_spec csr = spec->csr;
    gnutls_datum_t req = {NULL, 0};
    char spec_text[8192], next_label[KB_LABEL_MAX + 8] = "";
    long long now = (long long)time(NULL);
    struct memory mem = {0};
    int ret = 0;
    memory_open(&mem, now);

    /* What the user gave, before the network or the token. */
    int init = kb_est_init(&est, spec->url, spec->ca, spec->fingerprint, secret, err);
    secret = NULL; /* est owns it, whatever init said */
    if (init != 0)
        goto done;
    est.max_wait_s = spec->max_wait_s;
    if (kb_est_set_proxy(&est, spec->proxy, err) != 0)
        goto done;
    if (!renew && est.secret == NULL && spec->auth_key == NULL) {
        kb_err_set(err, "no enrolment credential: give --secret-file FILE (user:password), the "
                        "systemd credential keybound.secret, or --auth-key URI");
        goto done;
    }
    if (!renew && kb_uri_parse(spec->token_uri, 0, &token_uri, err) != 0)
        goto done;
    if ((trust = kb_trust_load(spec->policy)) == NULL) {
        kb_err_set(err, "out of memory");
        goto done;
    }
    if (kb_gnutls_pkcs11_init(p, err) != 0)
        goto done;
    kb_pin_install_gnutls(pin);

    /* The certificate that authenticates us: the current one (renew) or --auth-key's. */
    const char *auth_uri = renew ? spec->key_uri : spec->auth_key;
    if (auth_uri != NULL) {
        if (find_current(p, pin, auth_uri, trust, now,
                         renew ? "authenticate the renewal" : "authenticate the enrolment", &cur,
                         err) != 0)
            goto done;
        if (renew) {
            memory_load(&mem, cur.key->token, cur.key);
            mem.resend = mem.loaded && mem.ks.pending.active && mem.ks.pending.renew;
        }
        /* A renewal the server accepted for later is due whatever the clock says. */
        if (renew && !mem.resend && spec->if_expires_within >= 0 &&
            cur.dev.cert->not_after - now > spec->if_expires_within) {
            out->monitoring = true;
            describe(out, cur.key->uri, &cur.dev);
            state = KB_EST_ISSUED;
            goto done;
        }
        if (kb_identity_new(&cur.dev, &cur.objs, &id, err) != 0)
            goto done;
        est.id = id;
    }
    if (renew) {
        gnutls_datum_t der = {cur.dev.cert->der, (unsigned)cur.dev.cert->der_len};
        if (gnutls_x509_crt_init(&crt) < 0 ||
            gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0) {
            kb_err_set(err, "the current certificate of '%s' cannot be read", cur.key->facts.label);
            goto done;
        }
        if (spec_from_cert(crt, &csr, spec_text, sizeof spec_text, err) != 0)
            goto done;
    }

    /* The CA first: an unreachable or untrusted server leaves the token as it was. */
    if ((state = kb_est_cacerts(&est, &ca_certs, &n_ca, err)) != KB_EST_ISSUED)
        goto done;
    state = KB_EST_UNDERCONFIGURED;
    if (spec->save_cacerts != NULL && save_certs(spec->save_cacerts, ca_certs, n_ca, err) != 0)
        goto done;

    /* The token: a new key (enrol, rekey), the current one, or the key of a pending
     * request. */
    if (renew)
        t = cur.key->token;
    else if (kb_p11_one_token(p, token_uri, spec->token_uri, &tokens, &t, err) != 0)
        goto done;
    if (!renew && mem.have_dir)
        mem.resend = kb_keystate_find_enroll(mem.dir, t->facts.serial, spec->label, &mem.ks) == 0;
    if (kb_session_open(t, true, &s, err) != 0 || kb_session_login(&s, pin, err) != 0)
        goto done;
    if (mem.resend) {
        struct kb_pending *pd = &mem.ks.pending;
        rekey = renew && pd->rekey;
        kb_err why;
        char when[32];
        kb_iso_time((time_t)pd->submitted, when, sizeof when);
        if ((!renew || rekey) && key_by_id(&s, pd->key_id, &fresh, &why) != 0) {
            /* Its key is gone (removed by hand): the request can never be answered. */
            kb_log(KB_LOG_WARN, "the request pending since %s for key '%s' is dropped: %s", when,
                   pd->label, why.msg);
            if (!renew && kb_keystate_forget(mem.dir, &mem.ks, &why) != 0)
                kb_log(KB_LOG_WARN, "%s", why.msg);
            kb_pending_clear(pd);
            mem.resend = false;
            rekey = renew && spec->rekey;
        }
    }
    if (mem.resend) {
        char when[32];
        subject = renew && !rekey ? cur.key : &fresh;
        req.data = mem.ks.pending.csr;
        req.size = (unsigned)mem.ks.pending.csr_len;
        if (request_is_for(&req, subject, mem.dir, err) != 0)
            goto done;
        /* RFC 7030 4.2.3: the client waits at least Retry-After before asking again. */
        long long early = mem.ks.pending.next_poll - (long long)time(NULL);
        if (early > 0 && early > (long long)spec->max_wait_s) {
            kb_iso_time((time_t)mem.ks.pending.next_poll, when, sizeof when);
            kb_err_set(err,
                       "the EST server asked to be asked again after %s; key '%s' and its "
                       "request are kept: run the same command again then",
                       when, subject->facts.label);
            state = KB_EST_WAIT;
            out->pending_kept = true;
            out->next_poll = mem.ks.pending.next_poll;
            goto done;
        }
        if (early > 0) {
            kb_log(KB_LOG_INFO, "waiting %lld s before asking again, as the EST server said",
                   early);
            sleep((unsigned)early);
        }
        kb_iso_time((time_t)mem.ks.pending.submitted, when, sizeof when);
        kb_log(KB_LOG_INFO,
               "sending again the request for key '%s' that the EST server accepted "
               "for later on %s",
               mem.ks.pending.label, when);
    } else {
        if ((state = kb_est_get_csrattrs(&est, &attrs, err)) != KB_EST_ISSUED)
            goto done;
        state = KB_EST_UNDERCONFIGURED;
        subject = renew && !rekey ? cur.key : &fresh;
        if (!renew || rekey) {
            char type[32];
            const char *label = spec->label;
            if (renew) {
                snprintf(next_label, sizeof next_label, "%s.next", cur.key->facts.label);
                kb_key_type_name(&cur.key->facts, type, sizeof type);
                label = next_label;
            }
            if (kb_keygen(&s, renew ? type : spec->type, label, &fresh, err) != 0)
                goto done;
            made = true;
        }
        if (kb_signer_open(subject->uri, &signer, err) != 0)
            goto done;
        kb_signer_set_token(signer, subject->token);
        if (sign_request(signer, subject, &csr, &attrs, &req, err) != 0)
            goto done;
    }
    sent = true;
    state = send_request(&est, op, &req, subject, &certs, &n, err);
    if (state != KB_EST_ISSUED)
        goto done;

    /* The certificate and its issuer path, from the reply (and /cacerts when asked). */
    state = KB_EST_UNDERCONFIGURED;
    n_all = n + (spec->store_chain ? n_ca : 0);
    if ((all = calloc(n_all, sizeof *all)) == NULL) {
        kb_err_set(err, "out of memory");
        goto done;
    }
    memcpy(all, certs, n * sizeof *all);
    if (spec->store_chain)
        memcpy(all + n, ca_certs, n_ca * sizeof *all);
    struct kb_install_result ir;
    if (kb_install_cert_in(&s, subject, all, n_all, &ir, err) != 0)
        goto done;
    state = KB_EST_ISSUED;
    made = false; /* the key has its certificate now: it stays */
    stored = true;

done:
    if (sent && !stored) {
        /* The server's answer decides what stays: a request it accepted for later keeps its
         * key (and is asked again by the next run); one it rejected goes with the key made
         * for it; any other failure of a request already pending changes nothing. */
        const kb_key *file_key = renew ? cur.key : subject;
        kb_keystate *ks = &mem.ks;
        if (state == KB_EST_WAIT) {
            /* Kept, "try again later" becomes when, and with what. */
            kb_err why = *err;
            size_t len = strlen(why.msg), tail = strlen("; try again later");
            if (len > tail && strcmp(why.msg + len - tail, "; try again later") == 0)
                why.msg[len - tail] = '\0';
            if (pending_note(&ks->pending, &mem, renew, rekey, subject, &est, &req) == 0 &&
                memory_save(&mem, ks, file_key, renew, "wait", why.msg) == 0) {
                made = false;
                out->pending_kept = true;
                out->next_poll = ks->pending.next_poll;
                char when[32] = "a while";
                if (out->next_poll)
                    kb_iso_time((time_t)out->next_poll, when, sizeof when);
                kb_err_set(err,
                           "%s; key '%s' and its request are kept: run the same command "
                           "again after %s",
                           why.msg, subject->facts.label, when);
            }
        } else if (mem.resend && state == KB_EST_REJECTED) {
            made = !renew || rekey;
            kb_pending_clear(&ks->pending);
            if (renew)
                memory_save(&mem, ks, file_key, renew, "rejected", err->msg);
            else
                memory_forget(&mem, subject);
        } else if (mem.resend || renew) {
            memory_save(&mem, ks, file_key, renew, result_name(state, false), err->msg);
        }
    }
    if (made) {
        kb_err gone;
        if (kb_session_unload(&s, pin, &gone) != 0 || kb_destroy_key(&s, &fresh, &gone) != 0)
            kb_log(KB_LOG_ERROR, "%s; remove key '%s' by hand", gone.msg, fresh.facts.label);
    }
    if (stored) {
        kb_err keep = *err;
        kb_pending_clear(&mem.ks.pending);
        /* Only the final check attests (a fresh nonce): the current identity's lookup above
         * is not an admission. Out of memory leaves no attester: a denial, not an error. */
        kb_attester *attester = NULL;
        kb_err no_attester;
        kb_attester_attach(trust, spec->policy, p, pin, 0, &attester, &no_attester);
        int checked = final_check(p, pin, spec->policy, trust, subject->uri, renew ? cur.key : NULL,
                                  out, err);
        kb_trust_set_attester(trust, NULL, NULL);
        kb_attester_free(attester);
        if (checked != 0) {
            kb_err why = *err;
            kb_err_set(err,
                       "the certificate is stored with key '%s', but checking the result "
                       "failed: %s",
                       subject->facts.label, why.msg);
            ret = -1;
            memory_save(&mem, &mem.ks, renew ? cur.key : subject, renew, "issued", NULL);
        } else if (rekey && out->verdict.admit) {
            /* Only now may the old key go: the new one is stored and admitted. */
            kb_err why;
            bool relabelled = false;
            if (kb_session_unload(&s, pin, &why) != 0 ||
                kb_key_supersede(&s, cur.key, &fresh, &relabelled, &why) != 0)
                kb_log(KB_LOG_WARN, "%s", why.msg);
            if (relabelled) {
                /* The key printed and remembered is the one that now has the old label. */
                char *uri = kb_uri_for(fresh.token, "private", cur.key->facts.label, fresh.facts.id,
                                       fresh.facts.id_len);
                if (uri != NULL) {
                    free(out->key_uri);
                    out->key_uri = uri;
                    free(fresh.uri);
                    fresh.uri = strdup(uri);
                    snprintf(fresh.facts.label, sizeof fresh.facts.label, "%s",
                             cur.key->facts.label);
                }
                memory_forget(&mem, cur.key);
            }
            kb_keystate next = {0};
            memory_save(&mem, relabelled ? &next : &mem.ks, relabelled ? &fresh : cur.key, renew,
                        "issued", NULL);
            *err = keep;
        } else if (rekey) {
            /* Left there, it would block every later rekey (its label is taken). */
            kb_err why;
            if (kb_session_unload(&s, pin, &why) == 0 && kb_key_remove(&s, &fresh, &why) == 0) {
                kb_log(KB_LOG_WARN,
                       "the new key '%s' is not admitted and was removed; the old key stays",
                       fresh.facts.label);
                free(out->key_uri);
                out->key_uri = NULL;
            } else {
                kb_log(KB_LOG_WARN, "the new key '%s' is not admitted; %s; the old key stays",
                       fresh.facts.label, why.msg);
            }
            memory_save(&mem, &mem.ks, cur.key, renew, "denied", NULL);
        } else {
            memory_save(&mem, &mem.ks, renew ? cur.key : subject, renew,
                        out->verdict.admit ? "issued" : "denied", NULL);
        }
        if (ret == 0 && renew && spec->prune && !spec->rekey)
            kb_prune_expired(&s, &cur.objs, cur.key, now);
    }
    out->state = state;
    out->exit_code = state != KB_EST_ISSUED                     ? kb_est_exit(&est, state)
                     : out->have_verdict && !out->verdict.admit ? 1
                                                                : 0;
    if (!mem.resend)
        gnutls_free(req.data);
    kb_keystate_clear(&mem.ks);
    kb_session_close(&s);
    kb_signer_free(signer);
    free(all);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    kb_free_certs(certs, n);
    kb_free_certs(ca_certs, n_ca);
    kb_key_clear(&fresh);
    kb_est_free(&est); /* before the identity it points to */
    kb_identity_free(id);
    current_free(&cur);
    kb_token_list_free(&tokens);
    if (token_uri)
        p11_kit_uri_free(token_uri);
    kb_trust_free(trust);
    kb_secret_free(secret);
    return ret;
}

void kb_enroll_outcome_free(struct kb_enroll_outcome *o)
{
    free(o->key_uri);
    free(o->cert_subject);
    free(o->cert_issuer);
    free(o->cert_der);
    memset(o, 0, sizeof *o);
}
