#include "config.h"

#include "flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkcs11/pin.h"
#include "pkcs11/store.h"
#include "src/enroll/install.h"
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

enum kb_est_state kb_enroll_request(kb_est *e, const char *op, kb_signer *signer, const kb_key *k,
                                    struct kb_csr_spec *spec, const struct kb_csrattrs *attrs,
                                    gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
    spec->digest = attrs->digest;
    spec->n_extra_eku = 0;
    for (size_t i = 0; i < attrs->n_eku && i < KB_EKU_MAX; i++)
        spec->extra_eku[spec->n_extra_eku++] = attrs->eku[i];
    for (size_t i = 0; i < attrs->n_unknown; i++)
        kb_log(KB_LOG_WARN,
               "the EST server asks for %s in the request, which keybound does not "
               "fill in",
               attrs->unknown[i]);
    gnutls_datum_t csr = {NULL, 0};
    if (kb_csr_make(signer, kb_key_lacks_pss(k), spec, &csr, err) != 0)
        return KB_EST_UNDERCONFIGURED;
    enum kb_est_state s = kb_est_submit(e, op, &csr, certs, n, err);
    gnutls_free(csr.data);
    if (s == KB_EST_ISSUED && kb_cert_matches_key((*certs)[0], k,
                                                  "the certificate the EST "
                                                  "server issued",
                                                  err) != 0) {
        kb_free_certs(*certs, *n);
        *certs = NULL;
        *n = 0;
        e->malformed = true;
        return KB_EST_UNREACHABLE;
    }
    return s;
}

int kb_spec_from_cert(gnutls_x509_crt_t crt, struct kb_csr_spec *spec, char *text, size_t len,
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
    for (unsigned i = 0; spec->n_sans < KB_SAN_MAX; i++) {
        char name[512];
        size_t size = sizeof name - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &size, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
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

int kb_save_certs(const char *path, gnutls_x509_crt_t *certs, unsigned n, kb_err *err)
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
