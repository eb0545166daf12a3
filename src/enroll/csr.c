/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "csr.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <string.h>

static int san_parse(const char *san, gnutls_x509_subject_alt_name_t *type, const char **value,
                     unsigned char *ip, size_t *ip_len)
{
    static const struct {
        const char *prefix;
        gnutls_x509_subject_alt_name_t type;
    } kinds[] = {{"dns:", GNUTLS_SAN_DNSNAME},
                 {"uri:", GNUTLS_SAN_URI},
                 {"email:", GNUTLS_SAN_RFC822NAME},
                 {"ip:", GNUTLS_SAN_IPADDRESS}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(san, kinds[i].prefix, n) != 0 || san[n] == '\0')
            continue;
        *type = kinds[i].type;
        *value = san + n;
        if (*type == GNUTLS_SAN_IPADDRESS) {
            if (inet_pton(AF_INET, *value, ip) == 1)
                *ip_len = 4;
            else if (inet_pton(AF_INET6, *value, ip) == 1)
                *ip_len = 16;
            else
                return -1;
        }
        return 0;
    }
    return -1;
}

int kb_san_check(const char *san, kb_err *err)
{
    gnutls_x509_subject_alt_name_t type;
    const char *value;
    unsigned char ip[16];
    size_t ip_len;
    if (san_parse(san, &type, &value, ip, &ip_len) != 0)
        return kb_err_set(err, "--san '%s' is not dns:NAME, uri:URI, email:ADDR or ip:ADDRESS",
                          san);
    return 0;
}

int kb_csr_make(kb_signer *signer, bool no_pss, const struct kb_csr_spec *spec, gnutls_datum_t *der,
                kb_err *err)
{
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_privkey_t key = NULL;
    const char *where = NULL;
    bool ok = false;
    int rc = gnutls_x509_crq_init(&crq);
    if (rc < 0) {
        kb_err_set(err, "%s", gnutls_strerror(rc));
        goto out;
    }
    gnutls_x509_crq_set_version(crq, 1);
    rc = gnutls_x509_crq_set_dn(crq, spec->subject, &where);
    if (rc < 0) {
        kb_err_set(err,
                   "subject '%s' is not a distinguished name keybound can read (near '%s'); "
                   "write it as CN=name,O=organisation",
                   spec->subject, where ? where : "?");
        goto out;
    }
    for (size_t i = 0; i < spec->n_sans; i++) {
        gnutls_x509_subject_alt_name_t type;
        const char *value;
        unsigned char ip[16];
        size_t ip_len = 0;
        if (san_parse(spec->sans[i], &type, &value, ip, &ip_len) != 0) {
            rc = kb_san_check(spec->sans[i], err);
            goto out;
        }
        rc = type == GNUTLS_SAN_IPADDRESS
                 ? gnutls_x509_crq_set_subject_alt_name(crq, type, ip, (unsigned)ip_len,
                                                        GNUTLS_FSAN_APPEND)
                 : gnutls_x509_crq_set_subject_alt_name(crq, type, value, (unsigned)strlen(value),
                                                        GNUTLS_FSAN_APPEND);
        if (rc < 0) {
            kb_err_set(err, "--san '%s' cannot be encoded: %s", spec->sans[i], gnutls_strerror(rc));
            goto out;
        }
    }
    gnutls_x509_crq_set_key_usage(crq, GNUTLS_KEY_DIGITAL_SIGNATURE);
    rc = gnutls_x509_crq_set_key_purpose_oid(crq, GNUTLS_KP_TLS_WWW_CLIENT, 0);
    for (size_t i = 0; i < spec->n_extra_eku && rc >= 0; i++)
        if (strcmp(spec->extra_eku[i], GNUTLS_KP_TLS_WWW_CLIENT) != 0)
            rc = gnutls_x509_crq_set_key_purpose_oid(crq, spec->extra_eku[i], 0);
    if (rc < 0) {
        kb_err_set(err, "cannot set the extended key usage: %s", gnutls_strerror(rc));
        goto out;
    }
    if (kb_signer_pubkey(signer, &pub, err) != 0 ||
        kb_signer_privkey(signer, no_pss, &key, err) != 0)
        goto out;
    rc = gnutls_x509_crq_set_pubkey(crq, pub);
    gnutls_digest_algorithm_t dig = spec->digest;
    if (rc >= 0 && dig == 0)
        rc = gnutls_pubkey_get_preferred_hash_algorithm(pub, &dig, NULL);
    if (rc >= 0)
        rc = gnutls_x509_crq_privkey_sign(crq, key, dig, 0);
    if (rc < 0) {
        kb_err_set(err, "the request could not be signed on the token: %s", gnutls_strerror(rc));
        goto out;
    }
    rc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, der);
    if (rc < 0)
        kb_err_set(err, "the request cannot be encoded: %s", gnutls_strerror(rc));
    else
        ok = true;
out:
    if (key)
        gnutls_privkey_deinit(key);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    return ok ? 0 : -1;
}
