/* SPDX-License-Identifier: Apache-2.0 */
/* EST replies (RFC 7030 as corrected by RFC 8951), parsed without trusting them.
 *
 * Bodies are base64 (line-wrapped or not, CRLF or LF) of DER: a PKCS#7 certs-only for
 * /cacerts, /simpleenroll and /simplereenroll (eContentType data or digestData), a
 * CsrAttrs SEQUENCE for /csrattrs. Retry-After is delta-seconds or an HTTP-date. Every
 * function checks sizes and types and fails with a message that names what was wrong. */
#ifndef KB_REPLY_H
#define KB_REPLY_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <gnutls/x509.h>

#include "src/util/err.h"

#define KB_CSRATTRS_MAX 16

/* Whitespace-tolerant, otherwise strict base64. */
int kb_est_base64(const char *body, size_t len, gnutls_datum_t *der, kb_err *err);

/* The certificates of a certs-only reply. content_type must be application/pkcs7-mime
 * (parameters allowed). what names the request in messages ("/simpleenroll"). */
int kb_est_certs(const char *what, const char *content_type, const char *body, size_t len,
                 gnutls_x509_crt_t **certs, unsigned *n, kb_err *err);

struct kb_csrattrs {
    gnutls_digest_algorithm_t digest; /* from a signature algorithm OID; 0: none asked */
    char eku[KB_CSRATTRS_MAX][64];    /* extended key usages the CA wants in the request */
    size_t n_eku;
    char unknown[KB_CSRATTRS_MAX][64]; /* OIDs keybound does not fill in: reported */
    size_t n_unknown;
};

int kb_est_csrattrs(const char *content_type, const char *body, size_t len, struct kb_csrattrs *a,
                    kb_err *err);

/* The name of an OID a CA may ask for (macAddress, clientAuth, ...), or NULL. */
const char *kb_oid_name(const char *oid);

/* Seconds to wait from now, or -1 when the header is malformed. */
long long kb_est_retry_after(const char *value, long long now);

#endif
