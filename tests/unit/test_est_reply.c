/* SPDX-License-Identifier: Apache-2.0 */
/* EST reply parsing: base64 forms, PKCS#7 certs-only, csrattrs, Retry-After. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/pkcs7.h>

#include "pkcs11/store.h"
#include "src/enroll/reply.h"

static void base64_forms(void **state)
{
    (void)state;
    gnutls_datum_t d;
    kb_err err;
    const char *ok[] = {"aGVsbG8=", "aGVs\r\nbG8=", "aGVs\nbG8=\n", " aGVs bG8= "};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(kb_est_base64(ok[i], strlen(ok[i]), &d, &err), 0);
        assert_int_equal(d.size, 5);
        assert_memory_equal(d.data, "hello", 5);
        gnutls_free(d.data);
    }
    const char *bad[] = {"", "aGVsbG8", "aGV!bG8=", "aG=sbG8=", "aGVsbG8===", "\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kb_est_base64(bad[i], strlen(bad[i]), &d, &err), -1);
        assert_non_null(strstr(err.msg, "not base64"));
    }
    /* A NUL inside the body is not base64 either. */
    assert_int_equal(kb_est_base64("aGVs\0bG8=", 9, &d, &err), -1);
}

/* A certs-only PKCS#7 holding n throwaway self-signed certificates, base64. */
static char *make_pkcs7(unsigned n)
{
    gnutls_pkcs7_t p7;
    assert_int_equal(gnutls_pkcs7_init(&p7), 0);
    for (unsigned i = 0; i < n; i++) {
        gnutls_x509_privkey_t key;
        gnutls_x509_crt_t crt;
        assert_int_equal(gnutls_x509_privkey_init(&key), 0);
        assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, 256, 0), 0);
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        gnutls_x509_crt_set_version(crt, 3);
        unsigned char serial[4] = {1, 2, 3, (unsigned char)i};
        gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
        gnutls_x509_crt_set_dn(crt, "CN=test", NULL);
        gnutls_x509_crt_set_activation_time(crt, 1700000000);
        gnutls_x509_crt_set_expiration_time(crt, 1800000000);
        gnutls_x509_crt_set_key(crt, key);
        assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
        assert_int_equal(gnutls_pkcs7_set_crt(p7, crt), 0);
        gnutls_x509_crt_deinit(crt);
        gnutls_x509_privkey_deinit(key);
    }
    gnutls_datum_t der, b64;
    assert_int_equal(gnutls_pkcs7_export2(p7, GNUTLS_X509_FMT_DER, &der), 0);
    assert_int_equal(gnutls_base64_encode2(&der, &b64), 0);
    char *s = malloc(b64.size + 1);
    memcpy(s, b64.data, b64.size);
    s[b64.size] = '\0';
    gnutls_free(der.data);
    gnutls_free(b64.data);
    gnutls_pkcs7_deinit(p7);
    return s;
}

static void pkcs7_certs_only(void **state)
{
    (void)state;
    char *body = make_pkcs7(2);
    gnutls_x509_crt_t *certs;
    unsigned n;
    kb_err err;
    assert_int_equal(kb_est_certs("/simpleenroll", "application/pkcs7-mime; smime-type=certs-only",
                                  body, strlen(body), &certs, &n, &err),
                     0);
    assert_int_equal(n, 2);
    kb_free_certs(certs, n);
    /* Content-Type: parameters and case do not matter, the type does. */
    assert_int_equal(
        kb_est_certs("/cacerts", "Application/PKCS7-MIME", body, strlen(body), &certs, &n, &err),
        0);
    kb_free_certs(certs, n);
    assert_int_equal(kb_est_certs("/cacerts", "text/html", body, strlen(body), &certs, &n, &err),
                     -1);
    assert_non_null(strstr(err.msg, "Content-Type 'text/html'"));
    assert_int_equal(kb_est_certs("/cacerts", NULL, body, strlen(body), &certs, &n, &err), -1);
    /* Truncated: half of the base64 (on a 4-character boundary). */
    size_t half = strlen(body) / 8 * 4;
    assert_int_equal(
        kb_est_certs("/simpleenroll", "application/pkcs7-mime", body, half, &certs, &n, &err), -1);
    assert_non_null(strstr(err.msg, "not a PKCS#7"));
    assert_null(certs);
    free(body);
    /* A degenerate SignedData with no certificate (GnuTLS cannot make one to export). */
    static const unsigned char empty[] = {
        0x30, 0x25, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
        0xa0, 0x18, 0x30, 0x16, 0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x0b, 0x06, 0x09,
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x00, 0x31, 0x00};
    gnutls_datum_t raw = {(unsigned char *)empty, sizeof empty}, b64;
    assert_int_equal(gnutls_base64_encode2(&raw, &b64), 0);
    assert_int_equal(kb_est_certs("/simpleenroll", "application/pkcs7-mime", (char *)b64.data,
                                  b64.size, &certs, &n, &err),
                     -1);
    assert_non_null(strstr(err.msg, "no certificate"));
    gnutls_free(b64.data);
}

static void csrattrs(void **state)
{
    (void)state;
    /* SEQUENCE { ecdsa-with-SHA384, macAddress OID,
     *            SEQUENCE { extensionRequest, SET { clientAuth, serverAuth } },
     *            SEQUENCE { challengePassword, SET { } } } */
    static const unsigned char der[] = {
        0x30, 0x45, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03, 0x06, 0x07, 0x2b,
        0x06, 0x01, 0x01, 0x01, 0x01, 0x16, 0x30, 0x21, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
        0x0d, 0x01, 0x09, 0x0e, 0x31, 0x14, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03,
        0x02, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01, 0x30, 0x0d, 0x06, 0x09,
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07, 0x31, 0x00};
    gnutls_datum_t raw = {(unsigned char *)der, sizeof der}, b64;
    assert_int_equal(gnutls_base64_encode2(&raw, &b64), 0);
    struct kb_csrattrs a;
    kb_err err;
    int rc = kb_est_csrattrs("application/csrattrs", (char *)b64.data, b64.size, &a, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(a.digest, GNUTLS_DIG_SHA384);
    assert_int_equal(a.n_eku, 2);
    assert_string_equal(a.eku[0], "1.3.6.1.5.5.7.3.2");
    assert_string_equal(a.eku[1], "1.3.6.1.5.5.7.3.1");
    assert_int_equal(a.n_unknown, 2);
    assert_string_equal(a.unknown[0], "1.3.6.1.1.1.1.22");
    assert_string_equal(a.unknown[1], "1.2.840.113549.1.9.7");
    /* The same bytes with a lying outer length, and under the wrong type. */
    unsigned char bad[sizeof der];
    memcpy(bad, der, sizeof der);
    bad[1] = 0x60; /* longer than the data */
    gnutls_datum_t braw = {bad, sizeof bad}, bb64;
    assert_int_equal(gnutls_base64_encode2(&braw, &bb64), 0);
    assert_int_equal(
        kb_est_csrattrs("application/csrattrs", (char *)bb64.data, bb64.size, &a, &err), -1);
    assert_non_null(strstr(err.msg, "not a DER CsrAttrs"));
    assert_int_equal(kb_est_csrattrs("text/plain", (char *)b64.data, b64.size, &a, &err), -1);
    gnutls_free(b64.data);
    gnutls_free(bb64.data);
}

static void retry_after(void **state)
{
    (void)state;
    long long now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(kb_est_retry_after("120", now), 120);
    assert_int_equal(kb_est_retry_after(" 0 ", now), 0);
    assert_int_equal(kb_est_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now), 60);
    /* A date in the past means now. */
    assert_int_equal(kb_est_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
    assert_int_equal(kb_est_retry_after("", now), -1);
    assert_int_equal(kb_est_retry_after("12 seconds", now), -1);
    assert_int_equal(kb_est_retry_after("-5", now), -1);
    assert_int_equal(kb_est_retry_after("soon", now), -1);
    assert_int_equal(kb_est_retry_after("99999999999", now), -1);
}

int main(void)
{
    gnutls_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_forms),
        cmocka_unit_test(pkcs7_certs_only),
        cmocka_unit_test(csrattrs),
        cmocka_unit_test(retry_after),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gnutls_global_deinit();
    return rc;
}
