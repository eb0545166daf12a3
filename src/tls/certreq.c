/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

/* The answer to a CertificateRequest: what it asked for, and whether the identity fits
 * (contract in session.h and client.h). */
#include "session.h"

#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>

/* A DER distinguished name as one printable RFC 4514 line: it comes from the server. */
static void dn_text(const gnutls_datum_t *der, char *out, size_t len)
{
    gnutls_x509_dn_t dn;
    gnutls_datum_t str;
    snprintf(out, len, "?");
    if (gnutls_x509_dn_init(&dn) < 0)
        return;
    if (gnutls_x509_dn_import(dn, der) == 0 && gnutls_x509_dn_get_str2(dn, &str, 0) == 0) {
        kb_printable((const char *)str.data, out, len);
        gnutls_free(str.data);
    }
    gnutls_x509_dn_deinit(dn);
}

static const char *pk_name(int pk)
{
    switch (pk) {
    case GNUTLS_PK_RSA:
    case GNUTLS_PK_RSA_PSS:
        return "RSA";
    case GNUTLS_PK_ECDSA:
        return "EC";
    case GNUTLS_PK_EDDSA_ED25519:
    case GNUTLS_PK_EDDSA_ED448:
        return "EdDSA";
    default:
        return gnutls_pk_get_name((gnutls_pk_algorithm_t)pk);
    }
}

/* In TLS 1.2 GnuTLS derives the key types from the request's certificate types, and
 * ecdsa_sign stands for EdDSA too (RFC 8422); TLS 1.3 names EdDSA itself. */
static bool pk_matches(int ours, gnutls_pk_algorithm_t theirs, bool tls13)
{
    if (ours == GNUTLS_PK_RSA || ours == GNUTLS_PK_RSA_PSS)
        return theirs == GNUTLS_PK_RSA || theirs == GNUTLS_PK_RSA_PSS;
    if ((ours == GNUTLS_PK_EDDSA_ED25519 || ours == GNUTLS_PK_EDDSA_ED448) && !tls13 &&
        theirs == GNUTLS_PK_ECDSA)
        return true;
    return (int)theirs == ours;
}

/* Whether one of the server's CA names is an issuer on our path (or a CA on it): servers
 * often list only roots, so any certificate on the path counts. */
static bool ca_listed(const kb_identity *id, const gnutls_datum_t *names, int n)
{
    for (unsigned i = 0; i < id->n_pcerts; i++) {
        gnutls_x509_crt_t crt;
        if (gnutls_x509_crt_init(&crt) < 0)
            continue;
        gnutls_datum_t issuer = {NULL, 0}, subject = {NULL, 0};
        bool found = false;
        if (gnutls_x509_crt_import(crt, &id->pcerts[i].cert, GNUTLS_X509_FMT_DER) == 0 &&
            gnutls_x509_crt_get_raw_issuer_dn(crt, &issuer) == 0 &&
            gnutls_x509_crt_get_raw_dn(crt, &subject) == 0) {
            for (int j = 0; j < n && !found; j++)
                found = (names[j].size == issuer.size &&
                         memcmp(names[j].data, issuer.data, issuer.size) == 0) ||
                        (i > 0 && names[j].size == subject.size &&
                         memcmp(names[j].data, subject.data, subject.size) == 0);
        }
        gnutls_free(issuer.data);
        gnutls_free(subject.data);
        gnutls_x509_crt_deinit(crt);
        if (found)
            return true;
    }
    return false;
}

/* Keeps what the CertificateRequest asked for, for messages and connect's summary. */
static void note_request(gnutls_session_t session, struct kb_tls_request *q,
                         const gnutls_datum_t *ca, int n_ca, const gnutls_pk_algorithm_t *pk,
                         int n_pk)
{
    memset(q, 0, sizeof *q);
    q->asked = true;
    q->n_ca_total = n_ca > 0 ? (unsigned)n_ca : 0;
    for (int i = 0; i < n_ca && q->n_ca < sizeof q->ca / sizeof q->ca[0]; i++)
        dn_text(&ca[i], q->ca[q->n_ca++], sizeof q->ca[0]);
    size_t used = 0;
    for (unsigned i = 0; used < sizeof q->sigalgs; i++) {
        gnutls_sign_algorithm_t algo;
        if (gnutls_sign_algorithm_get_requested(session, i, &algo) != 0)
            break;
        const char *name = gnutls_sign_get_name(algo);
        if (name != NULL)
            used += (size_t)snprintf(q->sigalgs + used, sizeof q->sigalgs - used, "%s%s",
                                     used ? ", " : "", name);
    }
    used = 0;
    for (int i = 0; i < n_pk && used < sizeof q->pk; i++) {
        const char *name = pk_name(pk[i]);
        bool dup = false;
        for (int j = 0; j < i; j++)
            dup = dup || strcmp(pk_name(pk[j]), name) == 0;
        if (!dup)
            used +=
                (size_t)snprintf(q->pk + used, sizeof q->pk - used, "%s%s", used ? ", " : "", name);
    }
}

int kb_tls_our_certificate(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int n_req,
                           const gnutls_pk_algorithm_t *pk_algos, int n_pk_algos,
                           gnutls_pcert_st **pcert, unsigned *n_pcert, gnutls_privkey_t *privkey)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(session);
    const kb_identity *id = ctx->client->id;
    struct kb_tls_request *q = &ctx->req;
    *pcert = NULL;
    *n_pcert = 0;
    *privkey = NULL;
    if (ctx->no_sign && id != NULL) {
        /* On an event loop the key must not sign: the handshake ends here, before anything
         * is signed, and is done again where signing may block (kb_tls_resume_step). */
        ctx->wants_signer = true;
        return -1;
    }
    note_request(session, q, req_ca_dn, n_req, pk_algos, n_pk_algos);
    /* GnuTLS may ask while reading the CertificateRequest, which in TLS 1.3 comes before the
     * server's Certificate: what is handed out here is only sent after verify_server
     * passed. An unverified peer never has an identity. */
    if (id == NULL) {
        snprintf(q->why_not, sizeof q->why_not, "this connection carries no device identity");
        return 0;
    }
    bool pk_ok = n_pk_algos <= 0;
    for (int i = 0; i < n_pk_algos && !pk_ok; i++)
        pk_ok =
            pk_matches(id->pk, pk_algos[i], gnutls_protocol_get_version(session) == GNUTLS_TLS1_3);
    if (!pk_ok) {
        /* Sending it would only end in an error GnuTLS words as an internal one. */
        char kind[64];
        unsigned bits = id->bits;
        gnutls_pubkey_get_pk_algorithm(id->pcerts[0].pubkey, &bits);
        if (id->pk == GNUTLS_PK_ECDSA)
            snprintf(kind, sizeof kind, "EC P-%u", bits == 528 ? 521 : bits);
        else
            snprintf(kind, sizeof kind, "%s %u", pk_name(id->pk), bits);
        snprintf(q->why_not, sizeof q->why_not,
                 "the server accepts only %s signatures; key '%s' is %s; no certificate was sent",
                 q->pk[0] ? q->pk : "other", id->label, kind);
        return 0;
    }
    if (n_req > 0 && !ca_listed(id, req_ca_dn, n_req)) {
        char ours[256] = "?";
        gnutls_x509_crt_t crt;
        gnutls_datum_t issuer;
        if (gnutls_x509_crt_init(&crt) == 0) {
            if (gnutls_x509_crt_import(crt, &id->pcerts[0].cert, GNUTLS_X509_FMT_DER) == 0 &&
                gnutls_x509_crt_get_raw_issuer_dn(crt, &issuer) == 0) {
                dn_text(&issuer, ours, sizeof ours);
                gnutls_free(issuer.data);
            }
            gnutls_x509_crt_deinit(crt);
        }
        snprintf(q->ca_hint, sizeof q->ca_hint,
                 "the server asks for a certificate from %s%s; ours is issued by %s", q->ca[0],
                 q->n_ca_total > 1 ? " (and others)" : "", ours);
    }
    q->sent = true;
    *pcert = id->pcerts;
    *n_pcert = id->n_pcerts;
    *privkey = id->privkey;
    return 0;
}

const struct kb_tls_request *kb_tls_request_of(gnutls_session_t s)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    return &ctx->req;
}
