#include "config.h"

#include "est.h"

/* curl's type-checking macros use pragmas that strict C11 rejects. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "src/util/log.h"

const char *kb_est_state_name(enum kb_est_state s)
{
    static const char *const names[] = {"ISSUED", "WAIT", "REJECTED", "UNREACHABLE",
                                        "UNDERCONFIGURED"};
    return names[s];
}

int kb_est_exit(const kb_est *e, enum kb_est_state s)
{
    static const int codes[] = {0, 4, 3, 5, 2};
    return s != KB_EST_ISSUED && e->malformed ? 2 : codes[s];
}

int kb_est_init(kb_est *e, const char *url, const char *ca_file, const char *fingerprint,
                kb_secret *secret, kb_err *err)
{
    memset(e, 0, sizeof *e);
    e->secret = secret;
    e->timeout_s = 30;
    e->max_wait_s = 600;
    e->max_tries = 10;
    if (strncasecmp(url, "https://", 8) != 0 || strlen(url) + 20 >= sizeof e->base)
        return kb_err_set(err,
                          "EST URL '%s' must start with https:// (e.g. "
                          "https://ca.example.com/.well-known/est)",
                          url);
    /* RFC 7030: https://host[:port]/.well-known/est[/label]; a URL without a path gets
     * the well-known one, any other path is taken as the user wrote it. */
    const char *path = strchr(url + 8, '/');
    size_t host_len = path ? (size_t)(path - url) : strlen(url);
    if (path == NULL || strcmp(path, "/") == 0)
        snprintf(e->base, sizeof e->base, "%.*s/.well-known/est", (int)host_len, url);
    else
        snprintf(e->base, sizeof e->base, "%s", url);
    size_t n = strlen(e->base);
    while (n > 0 && e->base[n - 1] == '/')
        e->base[--n] = '\0';
    if ((ca_file == NULL) == (fingerprint == NULL))
        return kb_err_set(err, "say how to trust the EST server: --ca FILE or --ca-fingerprint "
                               "sha256:HEX (one of them)");
    if (ca_file != NULL) {
        if (access(ca_file, R_OK) != 0)
            return kb_err_set(err, "CA file %s cannot be read: %s", ca_file, strerror(errno));
        snprintf(e->ca_file, sizeof e->ca_file, "%s", ca_file);
    } else {
        const char *hex = strncasecmp(fingerprint, "sha256:", 7) == 0 ? fingerprint + 7 : NULL;
        size_t j = 0;
        for (const char *c = hex; c && *c && j < 64; c++)
            if (*c != ':')
                e->fingerprint[j++] = (char)(*c >= 'A' && *c <= 'F' ? *c + 32 : *c);
        e->fingerprint[j] = '\0';
        if (hex == NULL || j != 64 || strspn(e->fingerprint, "0123456789abcdef") != 64)
            return kb_err_set(err,
                              "--ca-fingerprint '%s' is not sha256: followed by 64 hex "
                              "digits (certtool --fingerprint --hash sha256 shows it)",
                              fingerprint);
    }
    return 0;
}

void kb_est_free(kb_est *e)
{
    if (e->tmp_ca[0])
        unlink(e->tmp_ca);
    kb_secret_free(e->secret);
    e->secret = NULL;
}

void kb_est_response_free(struct kb_est_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    struct kb_est_response *r = user;
    size_t add = size * n;
    if (r->len + add > 4 * 1024 * 1024)
        return 0; /* an EST reply is small: more is not one */
    char *v = realloc(r->body, r->len + add + 1);
    if (v == NULL)
        return 0;
    memcpy(v + r->len, data, add);
    r->len += add;
    v[r->len] = '\0';
    r->body = v;
    return add;
}

static size_t on_header(char *line, size_t size, size_t n, void *user)
{
    struct kb_est_response *r = user;
    size_t len = size * n;
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf - 1 ? len : sizeof buf - 1), line);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (strncasecmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue): forget the headers of the last one. */
        r->content_type[0] = r->retry_after[0] = '\0';
    } else if (strncasecmp(buf, "Content-Type:", 13) == 0) {
        snprintf(r->content_type, sizeof r->content_type, "%s", buf + 13 + strspn(buf + 13, " "));
    } else if (strncasecmp(buf, "Retry-After:", 12) == 0) {
        snprintf(r->retry_after, sizeof r->retry_after, "%s", buf + 12 + strspn(buf + 12, " "));
    }
    return len;
}

int kb_est_request(kb_est *e, const char *op, const gnutls_datum_t *csr, bool verify,
                   struct kb_est_response *r, kb_err *err)
{
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    if (h == NULL)
        return kb_err_set(err, "libcurl cannot start");
    char url[1400], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s/%s", e->base, op);
    struct curl_slist *headers = NULL;
    char *b64 = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, e->timeout_s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (verify) {
        curl_easy_setopt(h, CURLOPT_CAINFO, e->tmp_ca[0] ? e->tmp_ca : e->ca_file);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        /* Credentials only ever go to a verified server. */
        if (e->secret != NULL) {
            curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(h, CURLOPT_USERPWD, e->secret->buf);
        }
        if (e->cert_uri != NULL) {
            curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_uri);
            curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_uri);
        }
    }
    if (csr != NULL) {
        gnutls_datum_t enc = {NULL, 0};
        if (gnutls_base64_encode2(csr, &enc) < 0) {
            curl_easy_cleanup(h);
            return kb_err_set(err, "the request cannot be encoded");
        }
        b64 = (char *)enc.data;
        headers = curl_slist_append(headers, "Content-Type: application/pkcs10");
        headers = curl_slist_append(headers, "Content-Transfer-Encoding: base64");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, b64);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)enc.size);
    }
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc != CURLE_OK) {
        const char *hint = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE
                               ? "; the server is not trusted by the given CA"
                               : "";
        ret = kb_err_set(err, "EST server %s cannot be used: %s%s", url,
                         errbuf[0] ? errbuf : curl_easy_strerror(rc), hint);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    }
    curl_slist_free_all(headers);
    gnutls_free(b64);
    curl_easy_cleanup(h);
    if (ret != 0)
        kb_est_response_free(r);
    return ret;
}

/* The server's own words for a refusal, cut to one line. */
static void server_text(const struct kb_est_response *r, char *out, size_t len)
{
    snprintf(out, len, "%.*s", (int)(r->len < 300 ? r->len : 300), r->body ? r->body : "");
    for (char *c = out; *c; c++)
        if (*c == '\r' || *c == '\n' || (unsigned char)*c < 0x20)
            *c = ' ';
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
    if (n == 0)
        snprintf(out, len, "(no text)");
}

static enum kb_est_state status_state(const char *op, const struct kb_est_response *r, kb_err *err)
{
    char text[320];
    server_text(r, text, sizeof text);
    if (r->status == 401 || r->status == 403) {
        kb_err_set(err, "the EST server refused /%s (HTTP %ld): %s", op, r->status, text);
        return KB_EST_REJECTED;
    }
    if (r->status >= 400 && r->status < 500) {
        kb_err_set(err, "the EST server rejected /%s (HTTP %ld): %s", op, r->status, text);
        return KB_EST_REJECTED;
    }
    kb_err_set(err, "the EST server failed /%s (HTTP %ld): %s", op, r->status, text);
    return KB_EST_UNREACHABLE;
}

static bool fingerprint_matches(gnutls_x509_crt_t crt, const char *hex)
{
    unsigned char fp[32];
    size_t size = sizeof fp;
    char text[65];
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &size) < 0 || size != 32)
        return false;
    for (int i = 0; i < 32; i++)
        snprintf(text + 2 * i, 3, "%02x", fp[i]);
    return strcmp(text, hex) == 0;
}

/* Pinned-fingerprint bootstrap: the anchors come from the server itself, accepted only
 * when one of them is the pinned certificate; that one becomes the CA file. */
static enum kb_est_state bootstrap(kb_est *e, kb_err *err)
{
    struct kb_est_response r;
    if (kb_est_request(e, "cacerts", NULL, false, &r, err) != 0)
        return KB_EST_UNREACHABLE;
    if (r.status != 200) {
        enum kb_est_state s = status_state("cacerts", &r, err);
        kb_est_response_free(&r);
        return s;
    }
    gnutls_x509_crt_t *certs;
    unsigned n;
    int rc = kb_est_certs("/cacerts", r.content_type, r.body, r.len, &certs, &n, err);
    kb_est_response_free(&r);
    if (rc != 0) {
        e->malformed = true;
        return KB_EST_UNREACHABLE;
    }
    long found = -1;
    for (unsigned i = 0; i < n && found < 0; i++)
        if (fingerprint_matches(certs[i], e->fingerprint))
            found = i;
    enum kb_est_state st = KB_EST_UNDERCONFIGURED;
    if (found < 0) {
        kb_err_set(err,
                   "none of the %u CA certificates the EST server sent has the pinned "
                   "fingerprint sha256:%s; not trusting it",
                   n, e->fingerprint);
        goto out;
    }
    gnutls_datum_t der = {NULL, 0};
    if (gnutls_x509_crt_export2(certs[found], GNUTLS_X509_FMT_DER, &der) < 0)
        kb_err_set(err, "cannot export the bootstrapped CA");
    else if (kb_est_pem_tempfile(der.data, der.size, e->tmp_ca, sizeof e->tmp_ca, err) == 0)
        st = KB_EST_ISSUED;
    gnutls_free(der.data);
out:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    return st;
}

int kb_est_pem_tempfile(const unsigned char *der, size_t der_len, char *path, size_t len,
                        kb_err *err)
{
    const char *env = getenv("TMPDIR");
    const char *dir = env && *env ? env : "/tmp";
    snprintf(path, len, "%s/keybound.XXXXXX", dir);
    int fd = mkstemp(path);
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)der_len}, pem = {NULL, 0};
    int rc = -1;
    if (fd >= 0 && gnutls_pem_base64_encode2("CERTIFICATE", &d, &pem) == 0 &&
        write(fd, pem.data, pem.size) == (ssize_t)pem.size)
        rc = 0;
    gnutls_free(pem.data);
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        if (fd >= 0)
            unlink(path);
        path[0] = '\0';
        return kb_err_set(err, "cannot write a temporary file in %s", dir);
    }
    return 0;
}

enum kb_est_state kb_est_cacerts(kb_est *e, gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
    if (e->fingerprint[0] && !e->tmp_ca[0]) {
        enum kb_est_state s = bootstrap(e, err);
        if (s != KB_EST_ISSUED)
            return s;
    }
    struct kb_est_response r;
    if (kb_est_request(e, "cacerts", NULL, true, &r, err) != 0)
        return KB_EST_UNREACHABLE;
    enum kb_est_state s = KB_EST_ISSUED;
    if (r.status != 200)
        s = status_state("cacerts", &r, err);
    else if (kb_est_certs("/cacerts", r.content_type, r.body, r.len, certs, n, err) != 0)
        s = KB_EST_UNREACHABLE, e->malformed = true;
    kb_est_response_free(&r);
    return s;
}

enum kb_est_state kb_est_get_csrattrs(kb_est *e, struct kb_csrattrs *a, kb_err *err)
{
    memset(a, 0, sizeof *a);
    struct kb_est_response r;
    if (kb_est_request(e, "csrattrs", NULL, true, &r, err) != 0)
        return KB_EST_UNREACHABLE;
    enum kb_est_state s = KB_EST_ISSUED;
    if (r.status == 200) {
        if (kb_est_csrattrs(r.content_type, r.body, r.len, a, err) != 0)
            s = KB_EST_UNREACHABLE, e->malformed = true;
    } else if (r.status != 204 && r.status != 404) {
        s = status_state("csrattrs", &r, err);
    }
    kb_est_response_free(&r);
    return s;
}

enum kb_est_state kb_est_submit(kb_est *e, const char *op, const gnutls_datum_t *csr,
                                gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
    unsigned waited = 0;
    char what[64];
    snprintf(what, sizeof what, "/%s", op);
    for (unsigned attempt = 1;; attempt++) {
        struct kb_est_response r;
        if (kb_est_request(e, op, csr, true, &r, err) != 0)
            return KB_EST_UNREACHABLE;
        if (r.status == 200) {
            int rc = kb_est_certs(what, r.content_type, r.body, r.len, certs, n, err);
            kb_est_response_free(&r);
            e->malformed = rc != 0;
            return rc == 0 ? KB_EST_ISSUED : KB_EST_UNREACHABLE;
        }
        if (r.status != 202) {
            enum kb_est_state s = status_state(op, &r, err);
            kb_est_response_free(&r);
            return s;
        }
        long long wait = kb_est_retry_after(r.retry_after, (long long)time(NULL));
        kb_est_response_free(&r);
        if (wait < 0) {
            kb_err_set(err,
                       "the EST server accepted /%s for later (202) without a usable "
                       "Retry-After; try again later",
                       op);
            return KB_EST_WAIT;
        }
        if (attempt >= e->max_tries || waited + wait > e->max_wait_s) {
            kb_err_set(err,
                       "the EST server has not issued the certificate after %u tries and "
                       "%u s (it asks to wait %lld s more); try again later",
                       attempt, waited, wait);
            return KB_EST_WAIT;
        }
        kb_log(KB_LOG_INFO, "the EST server will answer /%s later: waiting %lld s (try %u of %u)",
               op, wait, attempt + 1, e->max_tries);
        sleep((unsigned)wait);
        waited += (unsigned)wait;
    }
}
