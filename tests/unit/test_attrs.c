/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding token attributes: curves, points, sizes, booleans, names. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pkcs11/attrs.h"

static void curve_oids(void **state)
{
    (void)state;
    char name[16];
    unsigned bits = 0;
    static const unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x03, 0x01, 0x07};
    static const unsigned char p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
    static const unsigned char p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
    static const unsigned char ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
    assert_true(kb_ec_params_curve(p256, sizeof p256, name, sizeof name, &bits));
    assert_string_equal(name, "P-256");
    assert_int_equal(bits, 256);
    assert_true(kb_ec_params_curve(p384, sizeof p384, name, sizeof name, &bits));
    assert_string_equal(name, "P-384");
    assert_true(kb_ec_params_curve(p521, sizeof p521, name, sizeof name, &bits));
    assert_int_equal(bits, 521);
    assert_true(kb_ec_params_curve(ed25519, sizeof ed25519, name, sizeof name, &bits));
    assert_string_equal(name, "Ed25519");
}

static void curve_printable_string(void **state)
{
    (void)state;
    char name[16];
    unsigned bits = 0;
    static const unsigned char ed[] = "\x13\x0c"
                                      "edwards25519";
    assert_true(kb_ec_params_curve(ed, sizeof ed - 1, name, sizeof name, &bits));
    assert_string_equal(name, "Ed25519");
    static const unsigned char other[] = "\x13\x0a"
                                         "edwards999";
    assert_false(kb_ec_params_curve(other, sizeof other - 1, name, sizeof name, &bits));
}

static void curve_rejects_malformed(void **state)
{
    (void)state;
    char name[16];
    unsigned bits = 0;
    /* Unknown curve (secp256k1), truncated length, trailing garbage, empty. */
    static const unsigned char k1[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
    static const unsigned char shortlen[] = {0x06, 0x08, 0x2a, 0x86, 0x48};
    static const unsigned char trailing[] = {0x06, 0x03, 0x2b, 0x65, 0x70, 0x00};
    static const unsigned char longform[] = {0x06, 0x81, 0x03, 0x2b, 0x65, 0x70};
    assert_false(kb_ec_params_curve(k1, sizeof k1, name, sizeof name, &bits));
    assert_false(kb_ec_params_curve(shortlen, sizeof shortlen, name, sizeof name, &bits));
    assert_false(kb_ec_params_curve(trailing, sizeof trailing, name, sizeof name, &bits));
    assert_false(kb_ec_params_curve(longform, sizeof longform, name, sizeof name, &bits));
    assert_false(kb_ec_params_curve(k1, 0, name, sizeof name, &bits));
}

static void ec_point_wrapped_and_bare(void **state)
{
    (void)state;
    unsigned char wrapped[67] = {0x04, 65, 0x04};
    unsigned char bare[65] = {0x04};
    const unsigned char *out;
    size_t len;
    assert_true(kb_ec_point_raw(wrapped, sizeof wrapped, &out, &len));
    assert_ptr_equal(out, wrapped + 2);
    assert_int_equal(len, 65);
    /* A bare point starts with 0x04 too; its second byte is not a length that fits. */
    memset(bare + 1, 0x41, 64);
    assert_true(kb_ec_point_raw(bare, sizeof bare, &out, &len));
    assert_ptr_equal(out, bare);
    assert_int_equal(len, 65);
    /* An Ed25519 key in an OCTET STRING. */
    unsigned char ed[34] = {0x04, 32};
    assert_true(kb_ec_point_raw(ed, sizeof ed, &out, &len));
    assert_int_equal(len, 32);
    /* P-521 needs the long length form: 133 bytes of point. */
    unsigned char p521[136] = {0x04, 0x81, 133, 0x04};
    assert_true(kb_ec_point_raw(p521, sizeof p521, &out, &len));
    assert_int_equal(len, 133);
    assert_false(kb_ec_point_raw(p521, 0, &out, &len));
}

static void bignum_bits(void **state)
{
    (void)state;
    unsigned char n[257];
    memset(n, 0xff, sizeof n);
    n[0] = 0;
    assert_int_equal(kb_bignum_bits(n, sizeof n), 2048); /* leading zero byte */
    assert_int_equal(kb_bignum_bits(n + 1, 256), 2048);
    n[1] = 0x7f;
    assert_int_equal(kb_bignum_bits(n, sizeof n), 2047);
    n[1] = 0x01;
    assert_int_equal(kb_bignum_bits(n, sizeof n), 2041);
    static const unsigned char zero[3] = {0};
    assert_int_equal(kb_bignum_bits(zero, sizeof zero), 0);
    assert_int_equal(kb_bignum_bits(zero, 0), 0);
}

static void tri_values(void **state)
{
    (void)state;
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    assert_int_equal(kb_attr_tri(&t, 1), KB_TRI_TRUE);
    assert_int_equal(kb_attr_tri(&f, 1), KB_TRI_FALSE);
    assert_int_equal(kb_attr_tri(&t, 0), KB_TRI_UNKNOWN);
    assert_int_equal(kb_attr_tri(&t, CK_UNAVAILABLE_INFORMATION), KB_TRI_UNKNOWN);
    assert_int_equal(kb_attr_tri(NULL, 1), KB_TRI_UNKNOWN);
}

static void type_names(void **state)
{
    (void)state;
    char out[32];
    struct kb_key_facts k = {.type = KB_KEY_RSA, .bits = 3072};
    kb_key_type_name(&k, out, sizeof out);
    assert_string_equal(out, "rsa-3072");
    k = (struct kb_key_facts){.type = KB_KEY_EC, .curve = "P-384"};
    kb_key_type_name(&k, out, sizeof out);
    assert_string_equal(out, "ec-p384");
    k = (struct kb_key_facts){.type = KB_KEY_EC, .curve = ""};
    kb_key_type_name(&k, out, sizeof out);
    assert_string_equal(out, "ec-unknown");
    k = (struct kb_key_facts){.type = KB_KEY_EDDSA, .curve = "Ed25519"};
    kb_key_type_name(&k, out, sizeof out);
    assert_string_equal(out, "ed25519");
    k = (struct kb_key_facts){.type = KB_KEY_UNKNOWN};
    kb_key_type_name(&k, out, sizeof out);
    assert_string_equal(out, "unknown");
}

static void hex(void **state)
{
    (void)state;
    char out[9];
    kb_hex((const unsigned char *)"\x00\x0a\xff\x10", 4, out);
    assert_string_equal(out, "000aff10");
    kb_hex(NULL, 0, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(curve_oids),
        cmocka_unit_test(curve_printable_string),
        cmocka_unit_test(curve_rejects_malformed),
        cmocka_unit_test(ec_point_wrapped_and_bare),
        cmocka_unit_test(bignum_bits),
        cmocka_unit_test(tri_values),
        cmocka_unit_test(type_names),
        cmocka_unit_test(hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
