/* SPDX-License-Identifier: Apache-2.0 */
/* renew's settings from a [renew] file and from its command line: one table
 * (kb_enroll_options), so a value gives the same setting, or the same error, either way; the
 * command line is applied over the file; the PIN is never a key. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/enroll/settings.h"

#define CONF "/etc/keybound/renew.conf"
#define FP                                                                                         \
    "sha256:"                                                                                      \
    "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

static struct kb_enroll_settings s;

static int setup(void **state)
{
    (void)state;
    kb_enroll_settings_init(&s);
    s.spec.renew = true;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kb_enroll_settings_free(&s);
    return 0;
}

static int parse(const char *text, kb_err *err)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    int rc = kb_renew_conf_parse(f, CONF, &s, err);
    fclose(f);
    return rc;
}

static size_t index_of(const char *name)
{
    for (size_t i = 0; i < KB_ENROLL_N_OPTIONS; i++)
        if (strcmp(kb_enroll_options[i].name, name) == 0)
            return i;
    fail_msg("no option %s", name);
    return 0;
}

/* As `keybound renew --NAME VALUE` applies it (a bare --NAME for yes or no). */
static int cli(const char *name, const char *value, kb_err *err)
{
    char what[64];
    size_t i = index_of(name);
    snprintf(what, sizeof what, "--%s", name);
    return kb_enroll_set(&s, i, what, kb_enroll_options[i].arg ? value : "yes", err);
}

static void refused_at(const char *text, unsigned line, const char *what)
{
    kb_err err;
    char want[64];
    assert_int_equal(parse(text, &err), -1);
    snprintf(want, sizeof want, CONF ":%u: ", line);
    if (strncmp(err.msg, want, strlen(want)) != 0 || strstr(err.msg, what) == NULL)
        fail_msg("'%s' is not '%s... %s'", err.msg, want, what);
    kb_enroll_settings_free(&s);
    kb_enroll_settings_init(&s);
}

static void every_key(void **state)
{
    (void)state;
    kb_err err;
    int rc = parse("; the unit's file\n"
                   "[renew]\n"
                   "est = https://ca.example.com/.well-known/est\n"
                   "ca-fingerprint = " FP "\n"
                   "save-cacerts = /var/lib/keybound/cacerts.pem\n"
                   "max-wait = 120\n"
                   "proxy = http://proxy.example.com:3128\n"
                   "policy = /etc/keybound/policy.conf\n"
                   "key = pkcs11:token=dev;object=laptop\n"
                   "if-expires-within = 30d\n"
                   "rekey = yes\n"
                   "prune = true\n"
                   "module = /usr/lib/softhsm/libsofthsm2.so\n"
                   "pin-file = /etc/keybound/pin\n"
                   "pin-env = KB_PIN\n"
                   "json = no\n",
                   &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(s.spec.url, "https://ca.example.com/.well-known/est");
    assert_string_equal(s.spec.fingerprint, FP);
    assert_null(s.spec.ca);
    assert_string_equal(s.spec.save_cacerts, "/var/lib/keybound/cacerts.pem");
    assert_int_equal(s.spec.max_wait_s, 120);
    assert_string_equal(s.spec.proxy, "http://proxy.example.com:3128");
    assert_string_equal(s.policy, "/etc/keybound/policy.conf");
    assert_string_equal(s.spec.key_uri, "pkcs11:token=dev;object=laptop");
    assert_int_equal(s.spec.if_expires_within, 30 * 86400);
    assert_true(s.spec.rekey);
    assert_true(s.spec.prune);
    assert_string_equal(s.module, "/usr/lib/softhsm/libsofthsm2.so");
    assert_null(s.modules);
    assert_string_equal(s.pin.file, "/etc/keybound/pin");
    assert_string_equal(s.pin.env, "KB_PIN");
    assert_false(s.json);
    assert_true(s.spec.renew);
    assert_int_equal(kb_renew_settings_check(&s, CONF, &err), 0);
}

static void defaults_stay(void **state)
{
    (void)state;
    kb_err err;
    assert_int_equal(parse("[renew]\nkey = pkcs11:token=dev\n", &err), 0);
    assert_int_equal(s.spec.max_wait_s, 600);
    assert_int_equal(s.spec.if_expires_within, -1);
    assert_false(s.spec.rekey);
    assert_null(s.policy);
    assert_int_equal(kb_renew_settings_check(&s, CONF, &err), -1);
    assert_string_equal(err.msg, CONF ": no est in [renew]: write est = URL there, or give "
                                      "--est URL");
}

static void the_command_line_wins(void **state)
{
    (void)state;
    kb_err err;
    assert_int_equal(parse("[renew]\n"
                           "est = https://ca.example.com\n"
                           "ca = /etc/keybound/est-ca.pem\n"
                           "key = pkcs11:token=dev;object=a\n"
                           "max-wait = 10\n"
                           "module = /usr/lib/softhsm/libsofthsm2.so\n",
                           &err),
                     0);
    assert_int_equal(cli("key", "pkcs11:token=dev;object=b", &err), 0);
    assert_int_equal(cli("max-wait", "20", &err), 0);
    assert_int_equal(cli("modules", "softhsm2", &err), 0);
    assert_int_equal(cli("rekey", NULL, &err), 0);
    /* The other way to trust the server replaces the file's, rather than clashing. */
    assert_int_equal(cli("ca-fingerprint", FP, &err), 0);
    assert_string_equal(s.spec.key_uri, "pkcs11:token=dev;object=b");
    assert_int_equal(s.spec.max_wait_s, 20);
    assert_null(s.module);
    assert_string_equal(s.modules, "softhsm2");
    assert_true(s.spec.rekey);
    assert_null(s.spec.ca);
    assert_string_equal(s.spec.fingerprint, FP);
    assert_string_equal(s.spec.url, "https://ca.example.com");
    /* ... but both on one command line is a mistake, as it is in one file. */
    assert_int_equal(cli("ca", "/x.pem", &err), -1);
    assert_string_equal(err.msg, "--ca and --ca-fingerprint do not go together: give one of them");
}

static void same_value_same_error(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *says;
    } bad[] = {
        {"est", "http://ca.example.com", "must start with https://"},
        {"est", "https://user:pw@ca.example.com", "holds credentials"},
        {"ca-fingerprint", "sha256:00", "is not sha256: followed by 64 hex digits"},
        {"max-wait", "86401", "takes seconds from 0 to 86400, not '86401'"},
        {"max-wait", "-1", "takes seconds from 0 to 86400"},
        {"proxy", "socks5://127.0.0.1:1080", ""},
        {"key", "file:/x", ""},
        {"if-expires-within", "30", "is not a duration such as 30d or 12h"},
        {"rekey", "maybe", "must be yes, no, true or false, not 'maybe'"},
        {"json", "1", "must be yes, no, true or false"},
        {"pin-file", "", "the value is empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[300];
        kb_err err;
        snprintf(text, sizeof text, "[renew]\n%s = %s\n", bad[i].key, bad[i].value);
        snprintf(want, sizeof want, "%s", bad[i].says);
        refused_at(text, 2, want);
        if (kb_enroll_options[index_of(bad[i].key)].arg == NULL)
            continue; /* a bare --rekey has no value to get wrong */
        assert_int_equal(cli(bad[i].key, bad[i].value, &err), -1);
        if (strstr(err.msg, want) == NULL || strncmp(err.msg, "--", 2) != 0)
            fail_msg("--%s %s: '%s'", bad[i].key, bad[i].value, err.msg);
        kb_enroll_settings_free(&s);
        kb_enroll_settings_init(&s);
    }
}

static void mistakes_name_their_line(void **state)
{
    (void)state;
    refused_at("[renew]\nest = https://a\n\nest-url = https://b\n", 4,
               "unknown key 'est-url' in [renew]; keys are the long options of keybound renew: "
               "est, ca, ca-fingerprint, save-cacerts, max-wait, proxy, policy, key, "
               "if-expires-within, rekey, prune, module, modules, pin-file, pin-env, json");
    refused_at("[renew]\nmax-wait = 1\nmax-wait = 2\n", 3, "'max-wait' is set twice in [renew]");
    refused_at("[renew]\nca = /a.pem\nca-fingerprint = " FP "\n", 3,
               "ca-fingerprint and ca do not go together");
    refused_at("[renew]\nmodules = softhsm2\nmodule = /x.so\n", 3,
               "module and modules do not go together");
    refused_at("est = https://a\n[renew]\n", 1, "'est' stands before the [renew] section");
    refused_at("[renew]\n[tunnel x]\n", 2, "unknown section [tunnel x]");
    refused_at("[renew]\n[renew]\n", 2, "[renew] is given twice");
    refused_at("[renew]\n  est = https://a\n", 2, "this line is indented");
    refused_at("[renew]\nest\n", 2, "syntax error: expected [renew] or key = value");
    refused_at("[renew]\nforce = yes\n", 2, "'force' is for the command line only");
    refused_at("[renew]\ninsecure-pin-file = yes\n", 2, "is for the command line only");
    refused_at("[renew]\nsecret-file = /x\n", 2, "unknown key 'secret-file'");
    kb_err err;
    assert_int_equal(parse("; nothing\n", &err), -1);
    assert_string_equal(err.msg, CONF ": no [renew] section; see keybound.conf(5)");
}

/* The PIN has no key, whatever it is called, and the refusal does not echo it. */
static void no_pin_in_the_file(void **state)
{
    (void)state;
    static const char *const texts[] = {"[renew]\npin = 123456\n", "[renew]\npin-value = 123456\n",
                                        "[renew]\nkey = pkcs11:token=dev?pin-value=123456\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        kb_err err;
        assert_int_equal(parse(texts[i], &err), -1);
        assert_non_null(strstr(err.msg, "a renew file never holds the PIN"));
        assert_non_null(strstr(err.msg, "pin-file = FILE"));
        assert_null(strstr(err.msg, "123456"));
        kb_enroll_settings_free(&s);
        kb_enroll_settings_init(&s);
    }
}

/* Each pair that says one thing two ways names the other (the table's indexes are right). */
static void pairs_name_each_other(void **state)
{
    (void)state;
    size_t pairs = 0;
    for (size_t i = 0; i < KB_ENROLL_N_OPTIONS; i++) {
        int x = kb_enroll_options[i].excludes;
        if (x < 0)
            continue;
        assert_true((size_t)x < KB_ENROLL_N_OPTIONS);
        assert_int_equal(kb_enroll_options[x].excludes, (int)i);
        pairs++;
    }
    assert_int_equal(pairs, 4);
    assert_string_equal(kb_enroll_options[index_of("ca")].name, "ca");
    assert_int_equal(kb_enroll_options[index_of("module")].excludes, (int)index_of("modules"));
    assert_int_equal(kb_enroll_options[index_of("ca")].excludes, (int)index_of("ca-fingerprint"));
}

static char *slurp(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/../%s", getenv("TESTS_SRCDIR"), rel);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* keybound.conf(5) documents every key of the file, and the example file is one renew reads. */
static void the_manual_and_the_example(void **state)
{
    (void)state;
    if (getenv("TESTS_SRCDIR") == NULL)
        skip();
    const char *man = slurp("doc/keybound.conf.5");
    const char *section = strstr(man, ".SH \"THE [renew] FILE\"");
    assert_non_null(section);
    for (size_t i = 0; i < KB_ENROLL_N_OPTIONS; i++) {
        char want[80], name[64];
        size_t k = 0;
        for (const char *c = kb_enroll_options[i].name; *c && k + 2 < sizeof name; c++) {
            if (*c == '-')
                name[k++] = '\\';
            name[k++] = *c;
        }
        name[k] = '\0';
        snprintf(want, sizeof want, "\"%s = ", name);
        if (strstr(section, want) == NULL)
            fail_msg("keybound.conf(5) [renew] does not say %s", want);
    }
    kb_err err;
    if (parse(slurp("contrib/renew.conf"), &err) != 0)
        fail_msg("%s", err.msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(defaults_stay, setup, teardown),
        cmocka_unit_test_setup_teardown(the_command_line_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(same_value_same_error, setup, teardown),
        cmocka_unit_test_setup_teardown(mistakes_name_their_line, setup, teardown),
        cmocka_unit_test_setup_teardown(no_pin_in_the_file, setup, teardown),
        cmocka_unit_test(pairs_name_each_other),
        cmocka_unit_test_setup_teardown(the_manual_and_the_example, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
