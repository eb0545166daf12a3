/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "device.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkcs11/attrs.h"
#include "src/tls/chain.h"
#include "src/util/hostport.h"

struct kb_trust {
    gnutls_x509_trust_list_t list; /* NULL: the policy names no anchors */
    char error[256];               /* anchors unusable: every chain check is an error */
    bool crl_wanted;
    char crl_error[256];
    char *crl_path;
    /* The CRLs of the policy's file, as read: each is believed only for a certificate whose
     * issuer path holds the CA that signed it (verified then, against that CA). */
    gnutls_x509_crl_t *crls;
    unsigned n_crls;
    bool attest_wanted; /* the policy's require-attestation */
    kb_attester_fn *attester;
    void *attester_ctx;
};

/* snprintf for messages: a text that does not fit ends in "..." instead of stopping
 * silently. */
static void say(char *out, size_t len, const char *fmt, ...) KB_PRINTF(3, 4);
static void say(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= len && len > 4)
        memcpy(out + len - 4, "...", 4);
}

void kb_verify_status_text(unsigned status, char *out, size_t len)
{
    gnutls_datum_t text = {NULL, 0};
    if (gnutls_certificate_verification_status_print(status | GNUTLS_CERT_INVALID, GNUTLS_CRT_X509,
                                                     &text, 0) != 0) {
        snprintf(out, len, "verification status 0x%x", status);
        return;
    }
    /* GnuTLS starts with "The certificate is NOT trusted. ": the rest is why. */
    const char *why = strstr((char *)text.data, "trusted. ");
    snprintf(out, len, "%s", why ? why + 9 : (char *)text.data);
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '.'))
        out[--n] = '\0';
    gnutls_free(text.data);
}

const char *kb_pick_name(enum kb_pick p)
{
    static const char *const names[] = {"chosen",       "older",      "expired", "not-yet-valid",
                                        "other-issuer", "unreadable", "revoked"};
    return names[p];
}

static void load_crls(kb_trust *t, const char *path)
{
    gnutls_datum_t data = {NULL, 0};
    gnutls_x509_crl_t *crls = NULL;
    unsigned n = 0;
    int rc = gnutls_load_file(path, &data);
    if (rc < 0) {
        snprintf(t->crl_error, sizeof t->crl_error, "CRL file %s cannot be read", path);
        return;
    }
    rc = gnutls_x509_crl_list_import2(&crls, &n, &data, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n == 0) {
        gnutls_free(crls);
        crls = NULL;
        n = 0;
        rc = gnutls_x509_crl_list_import2(&crls, &n, &data, GNUTLS_X509_FMT_DER, 0);
    }
    gnutls_free(data.data);
    if (rc < 0 || n == 0) {
        snprintf(t->crl_error, sizeof t->crl_error, "CRL file %s holds no CRL GnuTLS can read",
                 path);
        gnutls_free(crls);
        return;
    }
    t->crls = crls;
    t->n_crls = n;
}

kb_trust *kb_trust_load(const kb_policy *pol)
{
    kb_trust *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->crl_wanted = pol->crl != NULL;
    t->attest_wanted = pol->require_attestation;
    if (pol->trust == NULL)
        return t;
    int rc = gnutls_x509_trust_list_init(&t->list, 0);
    if (rc < 0) {
        snprintf(t->error, sizeof t->error, "%s", gnutls_strerror(rc));
        return t;
    }
    rc =
        gnutls_x509_trust_list_add_trust_file(t->list, pol->trust, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc <= 0)
        snprintf(t->error, sizeof t->error, "trust file %s %s", pol->trust,
                 rc == 0 ? "holds no PEM certificate" : "cannot be read");
    else if (t->crl_wanted && (t->crl_path = strdup(pol->crl)) == NULL)
        snprintf(t->crl_error, sizeof t->crl_error, "out of memory");
    else if (t->crl_wanted)
        load_crls(t, pol->crl);
    return t;
}

void kb_trust_set_attester(kb_trust *t, kb_attester_fn *fn, void *ctx)
{
    t->attester = fn;
    t->attester_ctx = ctx;
}

bool kb_trust_wants_attestation(const kb_trust *t)
{
    return t != NULL && t->attest_wanted;
}

long long kb_trust_next_update(const kb_trust *t)
{
    long long soonest = 0;
    for (size_t i = 0; t != NULL && i < t->n_crls; i++) {
        long long next = gnutls_x509_crl_get_next_update(t->crls[i]);
        if (next > 0 && (soonest == 0 || next < soonest))
            soonest = next;
    }
    return soonest;
}

void kb_trust_free(kb_trust *t)
{
    if (t == NULL)
        return;
    if (t->list != NULL)
        gnutls_x509_trust_list_deinit(t->list, 1);
    for (unsigned i = 0; i < t->n_crls; i++)
        gnutls_x509_crl_deinit(t->crls[i]);
    gnutls_free(t->crls);
    free(t->crl_path);
    free(t);
}

gnutls_x509_crt_t kb_cert_x509(const kb_cert *c)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t der = {c->der, (unsigned)c->der_len};
    if (gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    return crt;
}

/* What GnuTLS said about each certificate of the chain being verified, and what the CRLs
 * say about each link of the issuer path it found. GnuTLS's callback takes no user data,
 * hence the thread-local pointer. */
struct verify_report {
    const kb_trust *trust;
    long long now;
    gnutls_x509_crt_t leaf;
    unsigned others;   /* what was said of the certificates above the leaf */
    bool leaf_linked;  /* the leaf's issuer was met */
    bool leaf_covered; /* a current CRL from the leaf's issuer was verified */
    bool revoked;      /* a verified CRL lists a certificate of the path */
    char revoked_by[200];
    char problem[256]; /* a CRL for a CA of the path is forged or out of date */
    char leaf_issuer[200];
};
static _Thread_local struct verify_report *report;

/* A DN for a message, cut with "..." rather than silently. */
static void dn_text(gnutls_x509_crt_t crt, bool issuer, char *out, size_t len)
{
    gnutls_datum_t dn = {NULL, 0};
    int rc =
        issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) : gnutls_x509_crt_get_dn3(crt, &dn, 0);
    if (rc < 0) {
        snprintf(out, len, "(unreadable name)");
        return;
    }
    if ((size_t)snprintf(out, len, "%.*s", (int)dn.size, (char *)dn.data) >= len && len > 4)
        memcpy(out + len - 4, "...", 4);
    gnutls_free(dn.data);
}

/* The CRLs for one link of the path: cert, issued by issuer. Only a CRL in the issuer's
 * name is looked at, and it must be signed by the issuer; one that is not is refused. */
static void crl_link(struct verify_report *rep, gnutls_x509_crt_t cert, gnutls_x509_crt_t issuer)
{
    const kb_trust *t = rep->trust;
    bool is_leaf = gnutls_x509_crt_equals(cert, rep->leaf);
    gnutls_datum_t name = {NULL, 0};
    if (gnutls_x509_crt_get_raw_dn(issuer, &name) < 0) {
        say(rep->problem, sizeof rep->problem, "a CA's name on the path cannot be read");
        return;
    }
    bool current = false, stale = false;
    for (unsigned i = 0; i < t->n_crls; i++) {
        gnutls_datum_t by = {NULL, 0};
        if (gnutls_x509_crl_get_raw_issuer_dn(t->crls[i], &by) < 0)
            continue;
        bool same = by.size == name.size && memcmp(by.data, name.data, name.size) == 0;
        gnutls_free(by.data);
        if (!same)
            continue;
        char ca[200];
        /* Only the signature is judged here; an overdue CRL is reported as such below
         * (GnuTLS flags one whatever the flags say). */
        const unsigned timing = GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                                GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE | GNUTLS_CERT_INVALID;
        unsigned status = 1;
        if (gnutls_x509_crl_verify(t->crls[i], &issuer, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS,
                                   &status) < 0 ||
            (status & ~timing) != 0 || status == GNUTLS_CERT_INVALID) {
            dn_text(issuer, false, ca, sizeof ca);
            say(rep->problem, sizeof rep->problem,
                "a CRL in %s in the name of %s is not signed by that CA", t->crl_path, ca);
            continue;
        }
        if (gnutls_x509_crt_check_revocation(cert, &t->crls[i], 1) == 1 && !rep->revoked) {
            rep->revoked = true;
            dn_text(issuer, false, rep->revoked_by, sizeof rep->revoked_by);
        }
        long long next = gnutls_x509_crl_get_next_update(t->crls[i]);
        long long this = gnutls_x509_crl_get_this_update(t->crls[i]);
        if ((next > 0 && rep->now > next) || this > rep->now)
            stale = true;
        else
            current = true;
    }
    gnutls_free(name.data);
    if (stale && !current && rep->problem[0] == '\0') {
        char ca[200];
        dn_text(issuer, false, ca, sizeof ca);
        say(rep->problem, sizeof rep->problem,
            "the CRL from %s is not current (its next update was due before now, or it "
            "is dated later than now)",
            ca);
    }
    if (is_leaf) {
        rep->leaf_linked = true;
        rep->leaf_covered = current;
        dn_text(issuer, false, rep->leaf_issuer, sizeof rep->leaf_issuer);
    }
}

static int note(gnutls_x509_crt_t cert, gnutls_x509_crt_t issuer, gnutls_x509_crl_t crl,
                unsigned output)
{
    if (report == NULL || crl != NULL || cert == NULL)
        return 0;
    if (!gnutls_x509_crt_equals(cert, report->leaf))
        report->others |= output;
    if (issuer != NULL && report->trust->crl_wanted)
        crl_link(report, cert, issuer);
    return 0;
}

struct chain_result {
    enum kb_chain chain;
    enum kb_tri revoked;
    char detail[256];
    char crl_detail[256]; /* why revocation is unknown, or who revoked */
};

/* Does c chain to the anchors, with CA certificates on the same token as intermediates?
 * Validity times are the validity rule's business, so they are not checked here. With a
 * CRL in the policy, every link of the issuer path GnuTLS found is looked up in it: the
 * issuing CA must have a current CRL; a CA higher up is checked when its CRL is given. */
static void check_chain(const kb_trust *t, const kb_objects *objs, const kb_cert *c, long long now,
                        struct chain_result *r)
{
    memset(r, 0, sizeof *r);
    r->revoked = KB_TRI_UNKNOWN;
    if (t->list == NULL && t->error[0] == '\0') {
        r->chain = KB_CHAIN_UNCHECKED;
        return;
    }
    if (t->error[0]) {
        r->chain = KB_CHAIN_ERROR;
        snprintf(r->detail, sizeof r->detail, "%s", t->error);
        return;
    }
    /* The intermediates are the issuer path built from every CA certificate on the token,
     * as the TLS identity sends it: taking the first few in token order let unrelated CA
     * certificates crowd out the issuer, and a good device was denied. */
    gnutls_x509_crt_t chain[KB_CHAIN_MAX + 1];
    unsigned n = 0;
    if ((chain[n] = kb_cert_x509(c)) == NULL) {
        r->chain = KB_CHAIN_ERROR;
        snprintf(r->detail, sizeof r->detail, "the certificate cannot be parsed");
        return;
    }
    n++;
    gnutls_x509_crt_t *cands = calloc(objs->n_certs + 1, sizeof *cands);
    unsigned n_cands = 0, path[KB_CHAIN_MAX], len = 0;
    for (size_t i = 0; cands != NULL && i < objs->n_certs; i++) {
        const kb_cert *o = &objs->certs[i];
        if (o->key < 0 && o->is_ca && o->token == c->token &&
            (cands[n_cands] = kb_cert_x509(o)) != NULL)
            n_cands++;
    }
    kb_err why;
    int built = cands == NULL
                    ? kb_err_set(&why, "out of memory")
                    : kb_chain_build(chain[0], cands, n_cands, KB_CHAIN_MAX, now, path, &len, &why);
    for (unsigned i = 0; built == 0 && i < len; i++) {
        chain[n++] = cands[path[i]];
        cands[path[i]] = NULL;
    }
    for (unsigned i = 0; i < n_cands; i++)
        if (cands[i] != NULL)
            gnutls_x509_crt_deinit(cands[i]);
    free(cands);
    if (built != 0) {
        r->chain = KB_CHAIN_ERROR;
        say(r->detail, sizeof r->detail, "%s", why.msg);
        for (unsigned i = 0; i < n; i++)
            gnutls_x509_crt_deinit(chain[i]);
        return;
    }
    /* Twice: once without time checks, where anything but a revocation is a fault (GnuTLS
     * reports some, such as an unsupported signature algorithm, as a bare INVALID); once
     * at the present time, where an intermediate or anchor out of its validity is a fault.
     * The leaf's own time is the validity rule's business. */
    unsigned status = 0, now_status = 0;
    int rc = gnutls_x509_trust_list_verify_crt2(t->list, chain, n, NULL, 0,
                                                GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                                                    GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                                                &status, NULL);
    struct verify_report rep = {.trust = t, .now = now, .leaf = chain[0]};
    report = &rep;
    if (rc >= 0)
        rc = gnutls_x509_trust_list_verify_crt2(t->list, chain, n, NULL, 0, 0, &now_status, note);
    report = NULL;
    const unsigned timed = GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED;
    bool leaf_in_time = gnutls_x509_crt_get_activation_time(chain[0]) <= now &&
                        now <= gnutls_x509_crt_get_expiration_time(chain[0]);
    bool other_out_of_time = (rep.others & timed) || (leaf_in_time && (now_status & timed));
    if (rc < 0) {
        r->chain = KB_CHAIN_ERROR;
        snprintf(r->detail, sizeof r->detail, "%s", gnutls_strerror(rc));
    } else if (status != 0) {
        r->chain = KB_CHAIN_FAIL;
        kb_verify_status_text(status, r->detail, sizeof r->detail);
    } else if (other_out_of_time) {
        r->chain = KB_CHAIN_FAIL;
        snprintf(r->detail, sizeof r->detail,
                 "an intermediate or anchor certificate is not valid at this time");
    } else {
        r->chain = KB_CHAIN_OK;
        /* A revocation by a verified CRL stands, whatever else is wrong with the CRLs. */
        r->revoked = rep.revoked                           ? KB_TRI_TRUE
                     : rep.leaf_covered && !rep.problem[0] ? KB_TRI_FALSE
                                                           : KB_TRI_UNKNOWN;
        if (!t->crl_wanted)
            r->revoked = KB_TRI_UNKNOWN;
        else if (rep.revoked)
            say(r->crl_detail, sizeof r->crl_detail, "revoked by %s", rep.revoked_by);
        else if (rep.problem[0])
            say(r->crl_detail, sizeof r->crl_detail, "%s", rep.problem);
        else if (!rep.leaf_covered)
            say(r->crl_detail, sizeof r->crl_detail,
                "no CRL from the certificate's issuer (%s) was given, so "
                "revocation is unknown",
                rep.leaf_linked ? rep.leaf_issuer : "not found");
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(chain[i]);
}

/* Whether the DN GnuTLS writes for crt is all of text (a NUL inside would cut it). */
static bool dn_whole(gnutls_x509_crt_t crt, bool issuer, const char *text)
{
    gnutls_datum_t dn = {NULL, 0};
    int rc =
        issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) : gnutls_x509_crt_get_dn3(crt, &dn, 0);
    bool whole =
        rc == 0 && text != NULL && strlen(text) == dn.size && memcmp(text, dn.data, dn.size) == 0;
    gnutls_free(dn.data);
    return whole;
}

/* DNs, CA flag, EKUs and URI names of the chosen certificate: each whole, or flagged. */
static void cert_details(const kb_cert *c, struct kb_cert_facts *f)
{
    gnutls_x509_crt_t crt = kb_cert_x509(c);
    if (crt == NULL) {
        f->subject = f->issuer = NULL;
        f->ca = KB_TRI_UNKNOWN;
        f->eku_unfit = f->san_uri_unfit = true;
        return;
    }
    if (!dn_whole(crt, false, f->subject))
        f->subject = NULL;
    if (!dn_whole(crt, true, f->issuer))
        f->issuer = NULL;
    unsigned critical = 0;
    int rc = gnutls_x509_crt_get_ca_status(crt, &critical);
    f->ca = rc > 0                                                   ? KB_TRI_TRUE
            : rc == 0 || rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ? KB_TRI_FALSE
                                                                     : KB_TRI_UNKNOWN;
    for (unsigned i = 0;; i++) {
        char oid[sizeof f->eku[0]];
        size_t size = sizeof oid;
        rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &size, NULL);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc < 0 || f->n_eku == KB_CERT_LIST_MAX || strlen(oid) != size) {
            f->eku_unfit = true;
            break;
        }
        memcpy(f->eku[f->n_eku++], oid, size + 1);
    }
    for (unsigned i = 0;; i++) {
        char name[sizeof f->san_uri[0]];
        size_t size = sizeof name - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &size, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER) {
            /* Too long for the buffer: fatal only if it is a URI. */
            char *big = malloc(size + 1);
            size_t big_size = size + 1;
            type = big ? gnutls_x509_crt_get_subject_alt_name(crt, i, big, &big_size, NULL)
                       : GNUTLS_E_MEMORY_ERROR;
            free(big);
            if (type == GNUTLS_SAN_URI || type < 0) {
                f->san_uri_unfit = true;
                break;
            }
            continue;
        }
        if (type < 0) {
            f->san_uri_unfit = true;
            break;
        }
        if (type != GNUTLS_SAN_URI)
            continue;
        name[size] = '\0';
        if (f->n_san_uri == KB_CERT_LIST_MAX || strlen(name) != size) {
            f->san_uri_unfit = true;
            break;
        }
        memcpy(f->san_uri[f->n_san_uri++], name, size + 1);
    }
    gnutls_x509_crt_deinit(crt);
}

int kb_device_gather(const kb_objects *objs, size_t key, const kb_trust *trust, long long now,
                     const char *endpoint, kb_device *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    const kb_key *k = &objs->keys[key];
    out->key = k;
    out->facts.token = k->token->facts;
    out->facts.key = k->facts;
    if (endpoint != NULL) {
        struct kb_endpoint_facts *e = &out->facts.endpoint;
        if (kb_hostport_parse(endpoint, e->host, sizeof e->host, &e->port, err) != 0)
            return -1;
        e->given = true;
    }
    if (trust->attest_wanted && trust->attester != NULL) {
        trust->attester(trust->attester_ctx, k, now, &out->facts.attest);
        /* Whatever the attester did, the fact says it was tried: never an unchecked pass. */
        out->facts.attest.checked = true;
        if (!out->facts.attest.attested && out->facts.attest.reason[0] == '\0')
            snprintf(out->facts.attest.reason, sizeof out->facts.attest.reason,
                     "the attester gave no reason");
    }

    struct chain_result results[KB_MAX_CANDIDATES];
    long best = -1, newest = -1;
    for (size_t i = 0; i < objs->n_certs && out->n_cands < KB_MAX_CANDIDATES; i++) {
        const kb_cert *c = &objs->certs[i];
        if (c->key != (long)key)
            continue;
        size_t j = out->n_cands++;
        struct kb_candidate *cand = &out->cands[j];
        cand->cert = c;
        if (!c->parsed) {
            cand->pick = KB_PICK_UNREADABLE;
            snprintf(cand->detail, sizeof cand->detail, "not an X.509 certificate");
            continue;
        }
        check_chain(trust, objs, c, now, &results[j]);
        if (newest < 0 || c->not_before > out->cands[newest].cert->not_before)
            newest = (long)j;
        if (now < c->not_before) {
            cand->pick = KB_PICK_NOT_YET_VALID;
        } else if (now > c->not_after) {
            cand->pick = KB_PICK_EXPIRED;
        } else if (results[j].chain == KB_CHAIN_FAIL) {
            cand->pick = KB_PICK_OTHER_ISSUER;
            snprintf(cand->detail, sizeof cand->detail, "%s", results[j].detail);
        } else if (results[j].revoked == KB_TRI_TRUE) {
            cand->pick = KB_PICK_REVOKED;
        } else {
            cand->pick = KB_PICK_OLDER;
            if (best < 0 || c->not_before > out->cands[best].cert->not_before)
                best = (long)j;
        }
    }
    /* Without a valid one, the newest is shown so that the denial names its faults. */
    out->cert_valid = best >= 0;
    long chosen = best >= 0 ? best : newest;
    if (chosen < 0)
        return 0;
    out->cands[chosen].pick = KB_PICK_CHOSEN;
    out->cert = out->cands[chosen].cert;

    struct kb_cert_facts *f = &out->facts.cert;
    const kb_cert *c = out->cert;
    f->present = true;
    f->subject = c->subject;
    f->issuer = c->issuer;
    f->not_before = c->not_before;
    f->not_after = c->not_after;
    kb_hex(c->sha256, 32, f->sha256);
    cert_details(c, f);
    const struct chain_result *r = &results[chosen];
    f->chain = r->chain;
    snprintf(f->chain_detail, sizeof f->chain_detail, "%s", r->detail);
    if (trust->crl_wanted) {
        if (trust->crl_error[0]) {
            f->crl_error = true;
            say(f->crl_detail, sizeof f->crl_detail, "%s", trust->crl_error);
        } else if (r->chain != KB_CHAIN_OK) {
            f->crl_error = true;
            say(f->crl_detail, sizeof f->crl_detail,
                "the certificate does not chain to the anchors");
        } else if (r->revoked == KB_TRI_UNKNOWN) {
            f->crl_error = true;
            say(f->crl_detail, sizeof f->crl_detail, "%s", r->crl_detail);
        } else {
            say(f->crl_detail, sizeof f->crl_detail, "%s", r->crl_detail);
        }
        f->revoked = f->crl_error ? KB_TRI_UNKNOWN : r->revoked;
    }
    return 0;
}

int kb_device_choose(const kb_objects *objs, const kb_key *only, const kb_policy *pol,
                     const kb_trust *trust, long long now, const char *endpoint, kb_device *dev,
                     kb_verdict *v, kb_err *err)
{
    size_t admitted = 0, candidates = 0;
    char names[400] = "";
    size_t used = 0;
    kb_device d;
    kb_verdict vd;
    for (size_t i = 0; i < objs->n_keys; i++) {
        const kb_key *k = &objs->keys[i];
        bool has_cert = false;
        for (size_t j = 0; j < objs->n_certs && !has_cert; j++)
            has_cert = objs->certs[j].key == (long)i;
        if (only ? k != only : !has_cert)
            continue;
        if (kb_device_gather(objs, i, trust, now, endpoint, &d, err) != 0)
            return -1;
        kb_policy_evaluate(pol, &d.facts, now, &vd);
        /* The first denial is kept for the message; an admitted key replaces it. */
        if (candidates++ == 0 || (vd.admit && admitted == 0)) {
            *dev = d;
            *v = vd;
        }
        if (vd.admit) {
            admitted++;
            if (used < sizeof names)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s' on '%s'",
                                         used ? ", " : "", k->facts.label, k->token->facts.label);
        }
    }
    if (candidates == 0 && kb_objects_ambiguous(objs, err))
        return -1;
    if (candidates == 0)
        return kb_err_set(err, "no key with a certificate on the tokens%s; enrol the device first",
                          kb_objects_hint(objs));
    if (admitted > 1)
        return kb_err_set(err, "%zu keys are admitted: %s; choose one with --key URI", admitted,
                          names);
    return admitted == 1 ? 0 : 1;
}
