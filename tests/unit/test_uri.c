/* SPDX-License-Identifier: Apache-2.0 */
/* pkcs11: URI handling around p11-kit's parser. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pkcs11/p11.h"
#include "pkcs11/uri.h"

static void parses_object_uri(void **state)
{
    (void)state;
    P11KitUri *uri;
    kb_err err;
    assert_int_equal(
        kb_uri_parse("pkcs11:token=dev;object=laptop;id=%01%02;type=private", 0, &uri, &err), 0);
    assert_true(kb_uri_has_object(uri));
    CK_ATTRIBUTE *id = p11_kit_uri_get_attribute(uri, CKA_ID);
    assert_non_null(id);
    assert_int_equal(id->ulValueLen, 2);
    assert_memory_equal(id->pValue, "\x01\x02", 2);
    p11_kit_uri_free(uri);
    assert_int_equal(kb_uri_parse("pkcs11:token=dev", 0, &uri, &err), 0);
    assert_false(kb_uri_has_object(uri));
    p11_kit_uri_free(uri);
}

static void rejects_bad_uris(void **state)
{
    (void)state;
    P11KitUri *uri = (P11KitUri *)1;
    kb_err err;
    assert_int_equal(kb_uri_parse("pkcs12:token=x", 0, &uri, &err), -1);
    assert_null(uri);
    assert_non_null(strstr(err.msg, "'pkcs12:token=x'"));
    assert_non_null(strstr(err.msg, "does not start with pkcs11:"));
    assert_int_equal(kb_uri_parse("pkcs11:token=%zz", 0, &uri, &err), -1);
    assert_non_null(strstr(err.msg, "not a valid pkcs11: URI"));
    /* A misspelt attribute would otherwise match every object. */
    assert_int_equal(kb_uri_parse("pkcs11:tokn=x", 0, &uri, &err), -1);
    assert_non_null(strstr(err.msg, "does not know"));
    assert_int_equal(kb_uri_parse("pkcs11:token=x;type=privat", 0, &uri, &err), -1);
}

static void pin_value_only_from_files(void **state)
{
    (void)state;
    P11KitUri *uri;
    kb_err err;
    assert_int_equal(kb_uri_parse("pkcs11:token=x?pin-value=s3cret", 0, &uri, &err), -1);
    assert_null(strstr(err.msg, "s3cret"));
    assert_non_null(strstr(err.msg, "pin-value=redacted"));
    assert_non_null(strstr(err.msg, "--pin-file"));
    assert_int_equal(
        kb_uri_parse("pkcs11:token=x?pin-value=s3cret", KB_URI_ALLOW_PIN_VALUE, &uri, &err), 0);
    assert_string_equal(p11_kit_uri_get_pin_value(uri), "s3cret");
    p11_kit_uri_free(uri);
    assert_int_equal(kb_uri_parse("pkcs11:token=x?pin-source=/run/pin", 0, &uri, &err), 0);
    assert_string_equal(p11_kit_uri_get_pin_source(uri), "/run/pin");
    p11_kit_uri_free(uri);
}

static void redacts_pin_value(void **state)
{
    (void)state;
    /* Every form p11-kit accepts a pin-value in, and a URI it cannot parse. */
    const char *with_pin[] = {
        "pkcs11:token=x?pin-value=1234",   "pkcs11:token=x?pin-value=1234&module-name=a",
        "pkcs11:pin-value=1234;token=dev", "pkcs11:token=x? pin-value=1234",
        "pkcs11:token=x?pin-value =1234",  "pkcs11:token=x?pin-value=12%334",
        "pkcs12:token=x?pin-value=1234",   "pkcs11:token=%zz?pin-value=1234",
    };
    for (size_t i = 0; i < sizeof with_pin / sizeof with_pin[0]; i++) {
        char *r = kb_uri_redact(with_pin[i]);
        assert_non_null(r);
        if (strstr(r, "1234") != NULL || strstr(r, "pin-value") == NULL)
            fail_msg("'%s' redacted to '%s'", with_pin[i], r);
        free(r);
    }
    /* Without a pin-value the text stays as the user wrote it. */
    const char *plain[] = {"pkcs11:token=x", "pkcs11:object=my%20key;type=private",
                           "pkcs11:token=x?pin-source=/run/pin"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        char *r = kb_uri_redact(plain[i]);
        assert_string_equal(r, plain[i]);
        free(r);
    }
}

static void rejects_unknown_query_attributes(void **state)
{
    (void)state;
    P11KitUri *uri;
    kb_err err;
    /* p11-kit would keep these as vendor queries and ignore them. */
    assert_int_equal(kb_uri_parse("pkcs11:token=x?pin-sourse=/run/pin", 0, &uri, &err), -1);
    assert_non_null(strstr(err.msg, "does not know"));
    assert_int_equal(kb_uri_parse("pkcs11:token=x?module-nam=softhsm2", 0, &uri, &err), -1);
    assert_int_equal(
        kb_uri_parse("pkcs11:token=x?pin-source=/p&module-name=softhsm2", 0, &uri, &err), 0);
    p11_kit_uri_free(uri);
}

static kb_module module(void)
{
    kb_module m = {.name = "softhsm2", .path = "/usr/lib/softhsm/libsofthsm2.so"};
    memcpy(m.info.manufacturerID, "SoftHSM                         ", 32);
    memcpy(m.info.libraryDescription, "Implementation of PKCS11        ", 32);
    return m;
}

static void matches_module_name_and_path(void **state)
{
    (void)state;
    kb_module m = module();
    const char *yes[] = {"pkcs11:", "pkcs11:?module-name=softhsm2",
                         "pkcs11:?module-path=/usr/lib/softhsm/libsofthsm2.so",
                         "pkcs11:?module-path=libsofthsm2.so",
                         "pkcs11:library-manufacturer=SoftHSM"};
    const char *no[] = {"pkcs11:?module-name=opensc", "pkcs11:?module-path=/usr/lib/other.so",
                        "pkcs11:library-manufacturer=OpenSC"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        P11KitUri *uri;
        assert_int_equal(kb_uri_parse(yes[i], 0, &uri, NULL), 0);
        assert_true(kb_uri_match_module(uri, &m));
        p11_kit_uri_free(uri);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        P11KitUri *uri;
        assert_int_equal(kb_uri_parse(no[i], 0, &uri, NULL), 0);
        assert_false(kb_uri_match_module(uri, &m));
        p11_kit_uri_free(uri);
    }
}

static kb_token token(kb_module *m)
{
    kb_token t = {.module = m, .slot = 7};
    memset(&t.info, ' ', sizeof t.info);
    memcpy(t.info.label, "laptop", 6);
    memcpy(t.info.manufacturerID, "SoftHSM project", 15);
    memcpy(t.info.model, "SoftHSM v2", 10);
    memcpy(t.info.serialNumber, "0123456789abcdef", 16);
    return t;
}

static void formats_uris_that_match_back(void **state)
{
    (void)state;
    kb_module m = module();
    kb_token t = token(&m);
    char *s = kb_uri_for(&t, NULL, NULL, NULL, 0);
    assert_string_equal(s, "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;"
                           "serial=0123456789abcdef;token=laptop");
    P11KitUri *uri;
    assert_int_equal(kb_uri_parse(s, 0, &uri, NULL), 0);
    assert_true(kb_uri_match_token(uri, &t));
    kb_token other = token(&m);
    memcpy(other.info.serialNumber, "fedcba9876543210", 16);
    assert_false(kb_uri_match_token(uri, &other));
    p11_kit_uri_free(uri);
    free(s);

    s = kb_uri_for(&t, "private", "my key", (const unsigned char *)"\xab\x01", 2);
    assert_non_null(strstr(s, ";id=%AB%01;object=my%20key;type=private"));
    free(s);
}

static void slot_id_selects_slot(void **state)
{
    (void)state;
    kb_module m = module();
    kb_token t = token(&m);
    P11KitUri *uri;
    assert_int_equal(kb_uri_parse("pkcs11:slot-id=7", 0, &uri, NULL), 0);
    assert_true(kb_uri_match_token(uri, &t));
    t.slot = 8;
    assert_false(kb_uri_match_token(uri, &t));
    p11_kit_uri_free(uri);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_object_uri),
        cmocka_unit_test(rejects_bad_uris),
        cmocka_unit_test(pin_value_only_from_files),
        cmocka_unit_test(redacts_pin_value),
        cmocka_unit_test(rejects_unknown_query_attributes),
        cmocka_unit_test(matches_module_name_and_path),
        cmocka_unit_test(formats_uris_that_match_back),
        cmocka_unit_test(slot_id_selects_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
