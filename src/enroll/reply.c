/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "reply.h"

#include <ctype.h>
#include <limits.h>
#include <gnutls/pkcs7.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The media type without parameters, compared case-insensitively. */
static bool type_is(const char *content_type, const char *want)
{
    if (content_type == NULL)
        return false;
    while (*content_type == ' ')
        content_type++;
    size_t n = strcspn(content_type, "; \t");
    return n == strlen(want) && strncasecmp(content_type, want, n) == 0;
}

int kb_est_base64(const char *body, size_t len, gnutls_datum_t *der, kb_err *err)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *clean = malloc(len + 1);
    if (clean == NULL)
        return kb_err_set(err, "out of memory");
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
        } else if (pad > 0 || c == '\0' || strchr(alphabet, c) == NULL) {
            free(clean);
            return kb_err_set(err, "it is not base64 (character %zu)", i + 1);
        }
        clean[n++] = c;
    }
    if (n == 0 || n % 4 != 0 || pad > 2) {
        free(clean);
        return kb_err_set(err, "it is not base64 (%s)", n == 0 ? "empty" : "bad length");
    }
    gnutls_datum_t in = {(unsigned char *)clean, (unsigned)n};
    int rc = gnutls_base64_decode2(&in, der);
    free(clean);
    if (rc < 0)
        return kb_err_set(err, "it is not base64 (%s)", gnutls_strerror(rc));
    return 0;
}

int kb_est_certs(const char *what, const char *content_type, const char *body, size_t len,
                 gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
    if (!type_is(content_type, "application/pkcs7-mime"))
        return kb_err_set(err, "the reply to %s has Content-Type '%s', not application/pkcs7-mime",
                          what, content_type ? content_type : "(none)");
    gnutls_datum_t der = {NULL, 0};
    kb_err why;
    if (kb_est_base64(body, len, &der, &why) != 0)
        return kb_err_set(err, "the reply to %s is malformed: %s", what, why.msg);
    gnutls_pkcs7_t p7 = NULL;
    int rc = gnutls_pkcs7_init(&p7);
    if (rc == 0)
        rc = gnutls_pkcs7_import(p7, &der, GNUTLS_X509_FMT_DER);
    gnutls_free(der.data);
    if (rc < 0) {
        if (p7)
            gnutls_pkcs7_deinit(p7);
        return kb_err_set(err, "the reply to %s is not a PKCS#7 certs-only structure: %s", what,
                          gnutls_strerror(rc));
    }
    int count = gnutls_pkcs7_get_crt_count(p7);
    if (count <= 0) {
        gnutls_pkcs7_deinit(p7);
        return kb_err_set(err, "the reply to %s holds no certificate", what);
    }
    gnutls_x509_crt_t *v = gnutls_calloc((size_t)count, sizeof *v);
    if (v == NULL) {
        gnutls_pkcs7_deinit(p7);
        return kb_err_set(err, "out of memory");
    }
    for (int i = 0; i < count; i++) {
        gnutls_datum_t raw = {NULL, 0};
        rc = gnutls_pkcs7_get_crt_raw2(p7, (unsigned)i, &raw);
        if (rc >= 0)
            rc = gnutls_x509_crt_init(&v[i]);
        if (rc >= 0)
            rc = gnutls_x509_crt_import(v[i], &raw, GNUTLS_X509_FMT_DER);
        gnutls_free(raw.data);
        if (rc < 0) {
            for (int j = 0; j <= i; j++)
                if (v[j])
                    gnutls_x509_crt_deinit(v[j]);
            gnutls_free(v);
            gnutls_pkcs7_deinit(p7);
            return kb_err_set(err, "certificate %d in the reply to %s cannot be read: %s", i + 1,
                              what, gnutls_strerror(rc));
        }
    }
    gnutls_pkcs7_deinit(p7);
    *certs = v;
    *n = (unsigned)count;
    return 0;
}

/* A DER tag and length at *p (< end). Returns the content length or -1. */
static long tlv(const unsigned char **p, const unsigned char *end, unsigned char *tag)
{
    if (end - *p < 2)
        return -1;
    const unsigned char *q = *p;
    *tag = *q++;
    size_t len = *q++;
    if (len & 0x80) {
        unsigned k = len & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - q) < k)
            return -1;
        len = 0;
        while (k--)
            len = len << 8 | *q++;
    }
    if ((size_t)(end - q) < len)
        return -1;
    *p = q;
    return (long)len;
}

/* Dotted text of a DER OID body. */
static bool oid_text(const unsigned char *p, size_t n, char *out, size_t cap)
{
    if (n == 0 || n > 40)
        return false;
    unsigned long v = 0;
    size_t used = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (v > (ULONG_MAX >> 7))
            return false;
        v = v << 7 | (p[i] & 0x7f);
        if (p[i] & 0x80) {
            if (i + 1 == n)
                return false;
            continue;
        }
        int w = first ? snprintf(out + used, cap - used, "%lu.%lu", v < 80 ? v / 40 : 2,
                                 v < 80 ? v % 40 : v - 80)
                      : snprintf(out + used, cap - used, ".%lu", v);
        if (w < 0 || (size_t)w >= cap - used)
            return false;
        used += (size_t)w;
        first = false;
        v = 0;
    }
    return true;
}

const char *kb_oid_name(const char *oid)
{
    /* What RFC 7030 servers ask for in /csrattrs (RFC 8295 has more examples). */
    static const char *const names[][2] = {
        {"1.3.6.1.1.1.1.22", "macAddress"},
        {"1.2.840.113549.1.9.7", "challengePassword"},
        {"1.2.840.113549.1.9.14", "extensionRequest"},
        {"1.2.840.113549.1.9.1", "emailAddress"},
        {"2.5.4.3", "commonName"},
        {"2.5.4.5", "serialNumber"},
        {"2.5.4.6", "countryName"},
        {"2.5.4.10", "organizationName"},
        {"2.5.4.11", "organizationalUnitName"},
        {"2.5.29.17", "subjectAltName"},
        {"1.3.6.1.4.1.311.20.2.3", "userPrincipalName"},
        {"1.2.840.10045.2.1", "id-ecPublicKey"},
        {"1.2.840.10045.3.1.7", "secp256r1"},
        {"1.3.132.0.34", "secp384r1"},
        {"1.3.132.0.35", "secp521r1"},
        {"1.2.840.113549.1.1.1", "rsaEncryption"},
        {"1.3.6.1.5.5.7.3.1", "serverAuth"},
        {"1.3.6.1.5.5.7.3.2", "clientAuth"},
        {"1.3.6.1.5.5.7.3.3", "codeSigning"},
        {"1.3.6.1.5.5.7.3.4", "emailProtection"},
        {"1.3.6.1.5.5.7.3.8", "timeStamping"},
        {"1.3.6.1.5.5.7.3.9", "OCSPSigning"},
        {"1.2.840.10045.4.3.2", "ecdsa-with-SHA256"},
        {"1.2.840.10045.4.3.3", "ecdsa-with-SHA384"},
        {"1.2.840.10045.4.3.4", "ecdsa-with-SHA512"},
        {"1.2.840.113549.1.1.11", "sha256WithRSAEncryption"},
        {"1.2.840.113549.1.1.12", "sha384WithRSAEncryption"},
        {"1.2.840.113549.1.1.13", "sha512WithRSAEncryption"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i][0], oid) == 0)
            return names[i][1];
    return NULL;
}

static void add_oid(char (*list)[64], size_t *n, const char *oid)
{
    if (*n < KB_CSRATTRS_MAX)
        snprintf(list[(*n)++], 64, "%s", oid);
}

static gnutls_digest_algorithm_t digest_of(const char *oid)
{
    static const struct {
        const char *oid;
        gnutls_digest_algorithm_t dig;
    } sigs[] = {
        {"1.2.840.10045.4.3.2", GNUTLS_DIG_SHA256},   {"1.2.840.10045.4.3.3", GNUTLS_DIG_SHA384},
        {"1.2.840.10045.4.3.4", GNUTLS_DIG_SHA512},   {"1.2.840.113549.1.1.11", GNUTLS_DIG_SHA256},
        {"1.2.840.113549.1.1.12", GNUTLS_DIG_SHA384}, {"1.2.840.113549.1.1.13", GNUTLS_DIG_SHA512},
    };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (strcmp(sigs[i].oid, oid) == 0)
            return sigs[i].dig;
    return GNUTLS_DIG_UNKNOWN;
}

/* An OID on its own, or an attribute's value: a hash to sign with, an extended key usage,
 * or something keybound does not fill in. */
static void take_oid(struct kb_csrattrs *a, const char *oid)
{
    gnutls_digest_algorithm_t d = digest_of(oid);
    if (d != GNUTLS_DIG_UNKNOWN)
        a->digest = d;
    else if (strncmp(oid, "1.3.6.1.5.5.7.3.", 16) == 0)
        add_oid(a->eku, &a->n_eku, oid);
    else
        add_oid(a->unknown, &a->n_unknown, oid);
}

int kb_est_csrattrs(const char *content_type, const char *body, size_t len, struct kb_csrattrs *a,
                    kb_err *err)
{
    memset(a, 0, sizeof *a);
    if (!type_is(content_type, "application/csrattrs"))
        return kb_err_set(err,
                          "the reply to /csrattrs has Content-Type '%s', not "
                          "application/csrattrs",
                          content_type ? content_type : "(none)");
    gnutls_datum_t der = {NULL, 0};
    kb_err why;
    if (kb_est_base64(body, len, &der, &why) != 0)
        return kb_err_set(err, "the reply to /csrattrs is malformed: %s", why.msg);
    const unsigned char *p = der.data, *end = der.data + der.size;
    unsigned char tag;
    char oid[64];
    int rc = -1;
    long n = tlv(&p, end, &tag);
    if (n < 0 || tag != 0x30 || p + n != end)
        goto bad;
    while (p < end) {
        long m = tlv(&p, end, &tag);
        if (m < 0)
            goto bad;
        if (tag == 0x06) {
            if (!oid_text(p, (size_t)m, oid, sizeof oid))
                goto bad;
            take_oid(a, oid);
        } else if (tag == 0x30) {
            /* Attribute { type OID, values SET OF ... }: an extensionRequest names what
             * the CA wants in the request; other types are reported, not filled in. */
            const unsigned char *q = p, *attr_end = p + m;
            long t = tlv(&q, attr_end, &tag);
            if (t < 0 || tag != 0x06 || !oid_text(q, (size_t)t, oid, sizeof oid))
                goto bad;
            q += t;
            bool ext_request = strcmp(oid, "1.2.840.113549.1.9.14") == 0;
            if (!ext_request)
                add_oid(a->unknown, &a->n_unknown, oid);
            long s = tlv(&q, attr_end, &tag);
            if (s < 0 || tag != 0x31)
                goto bad;
            const unsigned char *set_end = q + s;
            while (ext_request && q < set_end) {
                long v = tlv(&q, set_end, &tag);
                if (v < 0)
                    goto bad;
                if (tag == 0x06 && oid_text(q, (size_t)v, oid, sizeof oid))
                    take_oid(a, oid);
                q += v;
            }
        } else {
            goto bad;
        }
        p += m;
    }
    rc = 0;
    goto out;
bad:
    kb_err_set(err, "the reply to /csrattrs is not a DER CsrAttrs sequence");
out:
    gnutls_free(der.data);
    return rc;
}

long long kb_est_retry_after(const char *value, long long now)
{
    while (*value == ' ')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        long long s = strtoll(value, &end, 10);
        while (*end == ' ')
            end++;
        return *end == '\0' && s >= 0 && s < 366LL * 86400 ? s : -1;
    }
    /* An HTTP-date in any of the three forms RFC 9110 (5.6.7) has recipients accept; month
     * and day names are English whatever the locale, so they are matched here. */
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char wday[16], mon[4], tail[8] = "";
    int d, y, hh, mm, ss, n = 0;
    struct tm tm = {0};
    if (sscanf(value, "%15[A-Za-z], %2d %3s %4d %2d:%2d:%2d GMT%n", wday, &d, mon, &y, &hh, &mm,
               &ss, &n) == 7 &&
        n > 0) {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    } else if (n = 0, sscanf(value, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wday, &d, mon, &y,
                             &hh, &mm, &ss, &n) == 7 &&
                          n > 0) {
        y += y < 70 ? 2000 : 1900; /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
    } else if (n = 0, sscanf(value, "%15[A-Za-z] %3s %2d %2d:%2d:%2d %4d%n", wday, mon, &d, &hh,
                             &mm, &ss, &y, &n) == 7 &&
                          n > 0) {
        /* asctime-date: Sun Nov  6 08:49:37 1994 */
    } else {
        return -1;
    }
    if (sscanf(value + n, " %7s", tail) == 1)
        return -1;
    tm.tm_mon = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(mon, months[i]) == 0)
            tm.tm_mon = i;
    if (tm.tm_mon < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970 || y > 9999 ||
        hh < 0 || mm < 0 || ss < 0)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    time_t when = timegm(&tm);
    if (when == (time_t)-1)
        return -1;
    return when > now ? (long long)when - now : 0;
}
