/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "src/enroll/install.h"
#include "src/tls/device.h"
#include "src/tls/identity.h"
#include "src/util/log.h"

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

/* Signs a request for key k with spec (plus what /csrattrs asked) and submits it to op;
 * the certificate that comes back must be for k. */
static enum kb_est_state request(kb_est *e, const char *op, kb_signer *signer, const kb_key *k,
                                 struct kb_csr_spec *spec, const struct kb_csrattrs *attrs,
                                 gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
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
    gnutls_datum_t csr = {NULL, 0};
    if (kb_csr_make(signer, kb_key_lacks_pss(k), spec, &csr, err) != 0)
        return KB_EST_UNDERCONFIGURED;
    enum kb_est_state s = kb_est_submit(e, op, &csr, certs, n, err);
    gnutls_free(csr.data);
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
    out->key_uri = key_uri ? strdup(key_uri) : NULL;
    out->cert_subject = d && d->cert && d->cert->subject ? strdup(d->cert->subject) : NULL;
    out->cert_issuer = d && d->cert && d->cert->issuer ? strdup(d->cert->issuer) : NULL;
    out->cert_not_after = d && d->cert ? (long long)d->cert->not_after : 0;
    snprintf(out->cert_sha256, sizeof out->cert_sha256, "%s", d ? d->facts.cert.sha256 : "");
}

/* The result as the policy sees it, from a fresh listing of the token. */
static int final_check(kb_p11 *p, const kb_pin_opts *pin, const kb_policy *pol,
                       const kb_trust *trust, const char *key_uri, struct kb_enroll_outcome *out,
                       kb_err *err)
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
        rc = 0;
    }
    current_free(&c);
    return rc;
}

int kb_enroll_run(kb_p11 *p, const kb_pin_opts *pin, const struct kb_enroll_spec *spec,
                  struct kb_enroll_outcome *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    enum kb_est_state state = KB_EST_UNDERCONFIGURED;
    const bool renew = spec->renew;
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
    bool made = false, stored = false;
    kb_signer *signer = NULL;
    gnutls_x509_crt_t *ca_certs = NULL, *certs = NULL, *all = NULL, crt = NULL;
    unsigned n_ca = 0, n = 0, n_all = 0;
    struct kb_csrattrs attrs;
    struct kb_csr_spec csr = spec->csr;
    char spec_text[8192], next_label[KB_LABEL_MAX + 8] = "";
    long long now = (long long)time(NULL);
    int ret = 0;

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
        if (renew && spec->if_expires_within >= 0 &&
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
    if ((state = kb_est_get_csrattrs(&est, &attrs, err)) != KB_EST_ISSUED)
        goto done;
    state = KB_EST_UNDERCONFIGURED;

    /* The token: a new key (enrol, rekey) or the current one. */
    if (renew)
        t = cur.key->token;
    else if (kb_p11_one_token(p, token_uri, spec->token_uri, &tokens, &t, err) != 0)
        goto done;
    if (kb_session_open(t, true, &s, err) != 0 || kb_session_login(&s, pin, err) != 0)
        goto done;
    subject = renew && !spec->rekey ? cur.key : &fresh;
    if (!renew || spec->rekey) {
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
    state = request(&est, op, signer, subject, &csr, &attrs, &certs, &n, err);
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
    if (made) {
        kb_err gone;
        if (kb_session_unload(&s, pin, &gone) != 0 || kb_destroy_key(&s, &fresh, &gone) != 0)
            kb_log(KB_LOG_ERROR, "%s; remove key '%s' by hand", gone.msg, fresh.facts.label);
    }
    if (stored) {
        kb_err keep = *err;
        if (final_check(p, pin, spec->policy, trust, subject->uri, out, err) != 0) {
            kb_err why = *err;
            kb_err_set(err,
                       "the certificate is stored with key '%s', but checking the result "
                       "failed: %s",
                       subject->facts.label, why.msg);
            ret = -1;
        } else if (renew && spec->rekey && out->verdict.admit) {
            /* Only now may the old key go: the new one is stored and admitted. */
            kb_err why;
            if (kb_session_unload(&s, pin, &why) != 0 ||
                kb_key_supersede(&s, cur.key, &fresh, &why) != 0) {
                kb_log(KB_LOG_WARN, "%s", why.msg);
            } else {
                /* The key printed is the one that now has the old label. */
                char *uri = kb_uri_for(fresh.token, "private", cur.key->facts.label, fresh.facts.id,
                                       fresh.facts.id_len);
                if (uri != NULL) {
                    free(out->key_uri);
                    out->key_uri = uri;
                }
            }
            *err = keep;
        } else if (renew && spec->rekey) {
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
        }
        if (ret == 0 && renew && spec->prune && !spec->rekey)
            kb_prune_expired(&s, &cur.objs, cur.key, now);
    }
    out->state = state;
    out->exit_code = state != KB_EST_ISSUED                     ? kb_est_exit(&est, state)
                     : out->have_verdict && !out->verdict.admit ? 1
                                                                : 0;
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
    memset(o, 0, sizeof *o);
}
