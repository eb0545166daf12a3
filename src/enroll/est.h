/* The EST client (RFC 7030) over libcurl with GnuTLS.
 *
 * The server is always verified: against a CA file, or after a bootstrap in which the
 * /cacerts reply (fetched unverified, and without credentials) is accepted only if one
 * of its certificates has the pinned SHA-256 fingerprint; every later request is then
 * verified against that certificate. There is no implicit trust anchor. Credentials are
 * HTTP Basic (a one-time enrolment secret) or a client certificate on a token, named by
 * pkcs11: URIs that libcurl hands to GnuTLS (the PIN comes from keybound's callback).
 * Submissions follow 202 + Retry-After with bounded retries and a cap on the total wait. */
#ifndef KB_EST_H
#define KB_EST_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <gnutls/x509.h>

#include "src/enroll/reply.h"
#include "src/util/secret.h"

/* certmonger-style outcomes; the exit code of enroll and renew is kb_est_exit(). */
enum kb_est_state {
    KB_EST_ISSUED,
    KB_EST_WAIT,
    KB_EST_REJECTED,
    KB_EST_UNREACHABLE,
    KB_EST_UNDERCONFIGURED,
};

typedef struct kb_est {
    char base[1200];      /* https://host[:port]/.well-known/est[/label] */
    char ca_file[4096];   /* anchors for the server, given or bootstrapped */
    char fingerprint[65]; /* pinned CA SHA-256 (hex) for the bootstrap, or "" */
    kb_secret *secret;    /* "user:password", or NULL */
    const char *cert_uri; /* client certificate on a token, or NULL */
    const char *key_uri;
    long timeout_s;
    unsigned max_wait_s; /* 202: total wait cap */
    unsigned max_tries;  /* 202: how many submissions */
    char tmp_ca[4096];   /* bootstrapped anchors, removed by kb_est_free */
    bool malformed;      /* the last failure was a reply keybound could not use */
} kb_est;

struct kb_est_response {
    long status;
    char content_type[256];
    char retry_after[128];
    char *body;
    size_t len;
};

const char *kb_est_state_name(enum kb_est_state s);

/* 0 ISSUED, 4 WAIT, 3 REJECTED, 5 UNREACHABLE, 2 UNDERCONFIGURED, and 2 for a malformed
 * reply (bad input, whatever the state). */
int kb_est_exit(const kb_est *e, enum kb_est_state s);

/* Checks the URL (https only) and keeps what it needs; secret is taken over. */
int kb_est_init(kb_est *e, const char *url, const char *ca_file, const char *fingerprint,
                kb_secret *secret, kb_err *err);
void kb_est_free(kb_est *e);

/* One request. Returns 0 when the server answered (any status), -1 when it could not be
 * reached or verified (err says which). */
int kb_est_request(kb_est *e, const char *op, const gnutls_datum_t *csr, bool verify,
                   struct kb_est_response *r, kb_err *err);
void kb_est_response_free(struct kb_est_response *r);

/* /cacerts, verified (bootstrapping first when a fingerprint is pinned). */
enum kb_est_state kb_est_cacerts(kb_est *e, gnutls_x509_crt_t **certs, unsigned *n, kb_err *err);

/* /csrattrs: 0 with a filled, or with nothing asked when the server has none (204/404). */
enum kb_est_state kb_est_get_csrattrs(kb_est *e, struct kb_csrattrs *a, kb_err *err);

/* POSTs the request to op (simpleenroll or simplereenroll), waiting out 202s. */
enum kb_est_state kb_est_submit(kb_est *e, const char *op, const gnutls_datum_t *csr,
                                gnutls_x509_crt_t **certs, unsigned *n, kb_err *err);

/* Writes a DER certificate as PEM to a new private file in $TMPDIR (or /tmp) for libcurl,
 * its name in path; on failure nothing is left behind and path is "". The caller
 * unlinks it. */
int kb_est_pem_tempfile(const unsigned char *der, size_t der_len, char *path, size_t len,
                        kb_err *err);

#endif
