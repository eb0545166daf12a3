/* SPDX-License-Identifier: Apache-2.0 */
/* A token's text fields as tokens really pad them: blanks (the PKCS#11 rule), NULs
 * (tpm2-pkcs11's model) and both. What people and the policy see is trimmed; the URI
 * keybound prints keeps the raw bytes, since p11-kit matches them byte for byte. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pkcs11/p11.h"
#include "pkcs11/uri.h"
#include "policy/eval.h"
#include "policy/policy.h"

/* A field of n bytes holding exactly the n bytes given (NULs included). */
static void trimmed(const char *raw, size_t n, const char *want)
{
    char out[65];
    assert_true(n < sizeof out);
    kb_trim_field(out, (const unsigned char *)raw, n);
    assert_string_equal(out, want);
}

static void trims_blank_padding(void **state)
{
    (void)state;
    trimmed("IBM                             ", 32, "IBM");
    trimmed("SoftHSM v2      ", 16, "SoftHSM v2");
    trimmed("                ", 16, "");
    /* Blanks inside the text are the text. */
    trimmed("SW   TPM        ", 16, "SW   TPM");
    /* A field with no padding at all is all text, and never read beyond. */
    trimmed("0123456789abcdef", 16, "0123456789abcdef");
}

static void trims_nul_padding(void **state)
{
    (void)state;
    /* tpm2-pkcs11 1.9.0 copies the TPM's vendor string, NULs and all, into the model. */
    trimmed("SW   TPM\0\0\0\0\0\0\0\0", 16, "SW   TPM");
    trimmed("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, "");
    trimmed("AMD\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, "AMD");
}

static void trims_mixed_padding(void **state)
{
    (void)state;
    trimmed("SW   TPM \0 \0 \0  ", 16, "SW   TPM");
    trimmed("AMD\0                            ", 32, "AMD");
    /* What follows the first NUL is not text (a TPM's vendor strings are four-byte words,
     * some with bytes after a NUL), and blanks before it are padding too. */
    trimmed("NPCT75x\0\"!!4rls\0", 16, "NPCT75x");
    trimmed("AMD \0\0\0\0NTC     ", 16, "AMD");
}

/* The token as tpm2-pkcs11 1.9.0 on a swtpm reports it. */
static kb_token tpm_token(kb_module *m)
{
    kb_token t = {.module = m, .slot = 1};
    memset(&t.info, ' ', sizeof t.info);
    memcpy(t.info.label, "dev", 3);
    memcpy(t.info.manufacturerID, "IBM", 3);
    memcpy(t.info.model, "SW   TPM\0\0\0\0\0\0\0\0", 16);
    memcpy(t.info.serialNumber, "0000000000000000", 16);
    kb_trim_field(t.facts.label, t.info.label, sizeof t.info.label);
    kb_trim_field(t.facts.manufacturer, t.info.manufacturerID, sizeof t.info.manufacturerID);
    kb_trim_field(t.facts.model, t.info.model, sizeof t.info.model);
    kb_trim_field(t.facts.serial, t.info.serialNumber, sizeof t.info.serialNumber);
    return t;
}

static void printed_uri_keeps_the_raw_bytes(void **state)
{
    (void)state;
    kb_module m = {.name = "tpm2_pkcs11", .path = "/usr/lib/libtpm2_pkcs11.so"};
    kb_token t = tpm_token(&m);
    char *s = kb_uri_for(&t, NULL, NULL, NULL, 0);
    assert_non_null(strstr(s, "model=SW%20%20%20TPM%00%00%00%00%00%00%00%00;"));
    assert_non_null(strstr(s, "manufacturer=IBM;"));
    P11KitUri *uri;
    assert_int_equal(kb_uri_parse(s, 0, &uri, NULL), 0);
    assert_true(kb_uri_match_token(uri, &t));
    p11_kit_uri_free(uri);
    free(s);
    /* Why: p11-kit compares the URI's value with the padded field, so the trimmed model
     * names no token. */
    assert_int_equal(kb_uri_parse("pkcs11:model=SW%20%20%20TPM", 0, &uri, NULL), 0);
    assert_false(kb_uri_match_token(uri, &t));
    p11_kit_uri_free(uri);
}

static bool admits(const char *token_section, const struct kb_token_facts *t)
{
    char text[512];
    snprintf(text, sizeof text, "[token]\n%s\n", token_section);
    FILE *f = fmemopen(text, strlen(text), "r");
    assert_non_null(f);
    kb_policy *pol;
    kb_err err;
    int rc = kb_policy_parse(f, "test.conf", &pol, &err);
    fclose(f);
    if (rc != 0)
        fail_msg("%s", err.msg);
    bool any = false;
    for (size_t i = 0; i < pol->n_allow; i++)
        any = any || kb_token_pattern_match(&pol->allow[i], t);
    kb_policy_free(pol);
    return any;
}

static void policy_matches_the_trimmed_fields(void **state)
{
    (void)state;
    kb_module m = {.name = "tpm2_pkcs11", .path = "/usr/lib/libtpm2_pkcs11.so"};
    kb_token t = tpm_token(&m);
    assert_true(admits("allow = manufacturer=IBM model=\"SW   TPM\"", &t.facts));
    assert_true(admits("allow = model=\"SW*TPM\"", &t.facts));
    assert_false(admits("allow = model=\"SW   TPM *\"", &t.facts));
    /* An AMD fTPM: the raw vendor id, NUL and blanks after it. */
    memcpy(t.info.manufacturerID, "AMD\0                            ", 32);
    kb_trim_field(t.facts.manufacturer, t.info.manufacturerID, sizeof t.info.manufacturerID);
    assert_true(admits("allow = manufacturer=AMD", &t.facts));
    assert_false(admits("allow = manufacturer=\"AMD \"", &t.facts));
}

/* The example policy for TPM laptops admits the vendors laptops ship and not a software
 * TPM. */
static void tpm_example_admits_laptop_vendors(void **state)
{
    (void)state;
    const char *srcdir = getenv("TESTS_SRCDIR");
    if (srcdir == NULL)
        skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/../policy/examples/corporate-tpm.conf", srcdir);
    /* Parsed, not loaded: the checkout's file modes are not what this test is about. */
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    kb_policy *pol;
    kb_err err;
    int rc = kb_policy_parse(in, path, &pol, &err);
    fclose(in);
    if (rc != 0)
        fail_msg("%s", err.msg);
    static const char *const vendors[][2] = {
        {"AMD", "AMD"},          {"Intel", "Intel"},      {"INTC", "Intel"},
        {"Infineon", "SLB9670"}, {"IFX", "SLB9672"},      {"Nuvoton", "NPCT75x"},
        {"NTC", "NPCT75x"},      {"STMicro", "ST33KTPM"}, {"STM", "ST33HTPH"},
    };
    for (size_t i = 0; i < sizeof vendors / sizeof vendors[0]; i++) {
        struct kb_token_facts f = {.initialized = true};
        strcpy(f.manufacturer, vendors[i][0]);
        strcpy(f.model, vendors[i][1]);
        strcpy(f.serial, "0000000000000000");
        bool any = false;
        for (size_t j = 0; j < pol->n_allow; j++)
            any = any || kb_token_pattern_match(&pol->allow[j], &f);
        if (!any)
            fail_msg("%s %s is not admitted by %s", vendors[i][0], vendors[i][1], path);
    }
    struct kb_token_facts sw = {.manufacturer = "IBM", .model = "SW   TPM"};
    for (size_t j = 0; j < pol->n_allow; j++)
        assert_false(kb_token_pattern_match(&pol->allow[j], &sw));
    kb_policy_free(pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trims_blank_padding),
        cmocka_unit_test(trims_nul_padding),
        cmocka_unit_test(trims_mixed_padding),
        cmocka_unit_test(printed_uri_keeps_the_raw_bytes),
        cmocka_unit_test(policy_matches_the_trimmed_fields),
        cmocka_unit_test(tpm_example_admits_laptop_vendors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
