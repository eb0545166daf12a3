/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "certjson.h"

#include <gnutls/x509.h>
#include <stdio.h>
#include <time.h>

void kb_iso_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_object *kb_cert_json(const gnutls_datum_t *der)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    json_object *o = json_object_new_object();
    static const char *const keys[] = {"subject",    "issuer",    "serial",
                                       "not_before", "not_after", "sha256"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_object_add(o, keys[i], NULL);
    gnutls_datum_t subject = {NULL, 0}, issuer = {NULL, 0};
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_x509_crt_get_dn3(crt, &subject, 0) < 0 ||
        gnutls_x509_crt_get_issuer_dn3(crt, &issuer, 0) < 0)
        goto out;
    unsigned char serial[64], fp[32];
    size_t serial_len = sizeof serial, fp_len = sizeof fp;
    if (gnutls_x509_crt_get_serial(crt, serial, &serial_len) < 0 ||
        gnutls_fingerprint(GNUTLS_DIG_SHA256, der, fp, &fp_len) < 0)
        goto out;
    char hex[2 * sizeof serial + 1], sha[2 * sizeof fp + 1], nb[32], na[32];
    for (size_t i = 0; i < serial_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", serial[i]);
    hex[2 * serial_len] = '\0';
    for (size_t i = 0; i < fp_len; i++)
        snprintf(sha + 2 * i, 3, "%02x", fp[i]);
    sha[2 * fp_len] = '\0';
    kb_iso_time(gnutls_x509_crt_get_activation_time(crt), nb, sizeof nb);
    kb_iso_time(gnutls_x509_crt_get_expiration_time(crt), na, sizeof na);
    json_object_object_add(o, "subject", json_object_new_string((const char *)subject.data));
    json_object_object_add(o, "issuer", json_object_new_string((const char *)issuer.data));
    json_object_object_add(o, "serial", json_object_new_string(hex));
    json_object_object_add(o, "not_before", json_object_new_string(nb));
    json_object_object_add(o, "not_after", json_object_new_string(na));
    json_object_object_add(o, "sha256", json_object_new_string(sha));
out:
    gnutls_free(subject.data);
    gnutls_free(issuer.data);
    gnutls_x509_crt_deinit(crt);
    return o;
}
