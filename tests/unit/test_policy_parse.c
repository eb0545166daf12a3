/* SPDX-License-Identifier: Apache-2.0 */
/* The admission policy file: parsing, errors with file:line, defaults, paths, loading. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/eval.h"
#include "policy/policy.h"
#include "src/util/hostport.h"

#define NAME "/etc/kb/policy.conf"

/* A valid pin-sha256: base64 of 32 bytes, last data character with its 2 low bits zero. */
#define PIN_A "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define PIN_B "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Parses text as NAME; returns the policy, or NULL with err filled. */
static kb_policy *parse(const char *text, kb_err *err)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    kb_policy *p = (kb_policy *)&p; /* must be reset on failure */
    int rc = kb_policy_parse(f, NAME, &p, err);
    fclose(f);
    if (rc == 0) {
        assert_non_null(p);
    } else {
        assert_int_equal(rc, -1);
        assert_null(p);
    }
    return p;
}

static kb_policy *parse_ok(const char *text)
{
    kb_err err = {{0}};
    kb_policy *p = parse(text, &err);
    if (p == NULL)
        fail_msg("policy refused: %s\n--- policy ---\n%s", err.msg, text);
    return p;
}

/* Asserts that text is refused with one line starting "NAME:line: " (or "NAME: " when line is
 * 0: an error about the whole file) and containing what. */
static void refused_at(const char *text, unsigned line, const char *what)
{
    kb_err err = {{0}};
    kb_policy *p = parse(text, &err);
    if (p != NULL) {
        kb_policy_free(p);
        fail_msg("policy admitted, expected an error containing '%s'\n--- policy ---\n%s", what,
                 text);
    }
    char prefix[64];
    if (line)
        snprintf(prefix, sizeof prefix, "%s:%u: ", NAME, line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", NAME);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0 ||
        strstr(err.msg + strlen(prefix), what) == NULL || strchr(err.msg, '\n') != NULL)
        fail_msg("message: '%s'\nexpected: '%s...%s...'\n--- policy ---\n%s", err.msg, prefix, what,
                 text);
}

static void minimal_policy_defaults(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[admission]\n");
    assert_string_equal(p->path, NAME);
    assert_int_equal(p->mode, KB_MODE_ENFORCE);
    assert_false(p->allow_unlisted_endpoints);
    assert_int_equal(p->n_allow, 0);
    assert_int_equal(p->n_deny_serial, 0);
    assert_false(p->require_hw_slot);
    assert_false(p->require_login);
    assert_false(p->require_protected_auth);
    assert_true(p->require_sensitive);
    assert_true(p->require_not_extractable);
    assert_false(p->require_never_extractable);
    assert_false(p->require_always_sensitive);
    assert_false(p->require_local);
    assert_int_equal(p->n_algs, 0);
    assert_null(p->trust);
    assert_int_equal(p->n_eku, 0);
    assert_null(p->subject);
    assert_null(p->san_uri);
    assert_true(p->min_remaining == -1);
    assert_true(p->renew_before == -1);
    assert_true(p->max_lifetime == -1);
    assert_null(p->crl);
    assert_int_equal(p->n_endpoints, 0);
    kb_policy_free(p);

    /* Comments, blank lines and inline comments are not values. */
    p = parse_ok("# a comment\n; another\n\n[admission]\nmode = audit ; while rolling out\n");
    assert_int_equal(p->mode, KB_MODE_AUDIT);
    kb_policy_free(p);
    p = parse_ok("[admission]\nmode = off\n");
    assert_int_equal(p->mode, KB_MODE_OFF);
    kb_policy_free(p);
}

/* Facts of a key that the token would reveal. */
static struct kb_device_facts weak_key_device(void)
{
    struct kb_device_facts f;
    memset(&f, 0, sizeof f);
    f.key.type = KB_KEY_EC;
    f.key.bits = 256;
    snprintf(f.key.curve, sizeof f.key.curve, "P-256");
    f.key.sensitive = KB_TRI_FALSE;
    f.key.extractable = KB_TRI_TRUE;
    f.key.never_extractable = KB_TRI_FALSE;
    f.key.always_sensitive = KB_TRI_FALSE;
    f.key.local = KB_TRI_FALSE;
    return f;
}

static enum kb_status status_of(const kb_verdict *v, const char *id)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->checks[i].id, id) == 0)
            return v->checks[i].status;
    fail_msg("no check %s in the verdict", id);
    return KB_ERROR;
}

/* doc/design.md invariant 1: a policy that says nothing about the key still refuses one that
 * is not sensitive or is extractable; only an explicit "no" lifts each rule. */
static void omitted_key_rules_still_protect_the_key(void **state)
{
    (void)state;
    static const char *const silent[] = {
        "[admission]\nmode = enforce\n",
        "[token]\nrequire-login = yes\n[certificate]\nmin-remaining = 1d\n",
        "[key]\nalgorithms = ec-p256\n",
        "[key]\nrequire-local = yes\n",
        "[key]\n",
    };
    struct kb_device_facts f = weak_key_device();
    for (size_t i = 0; i < sizeof silent / sizeof silent[0]; i++) {
        kb_policy *p = parse_ok(silent[i]);
        assert_true(p->require_sensitive);
        assert_true(p->require_not_extractable);
        kb_verdict v;
        kb_policy_evaluate(p, &f, 1700000000, &v);
        assert_false(v.admit);
        assert_int_equal(status_of(&v, "key.sensitive"), KB_FAIL);
        assert_int_equal(status_of(&v, "key.not-extractable"), KB_FAIL);
        kb_policy_free(p);
    }

    kb_policy *p = parse_ok("[key]\nrequire-sensitive = no\n");
    assert_false(p->require_sensitive);
    assert_true(p->require_not_extractable);
    kb_policy_free(p);
    p = parse_ok("[key]\nrequire-not-extractable = false\n");
    assert_true(p->require_sensitive);
    assert_false(p->require_not_extractable);
    kb_policy_free(p);

    p = parse_ok("[key]\nrequire-sensitive = no\nrequire-not-extractable = no\n");
    kb_verdict v;
    kb_policy_evaluate(p, &f, 1700000000, &v);
    assert_int_equal(status_of(&v, "key.sensitive"), KB_SKIP);
    assert_int_equal(status_of(&v, "key.not-extractable"), KB_SKIP);
    kb_policy_free(p);

    p = parse_ok("[key]\nrequire-sensitive = yes\nrequire-not-extractable = true\n");
    assert_true(p->require_sensitive);
    assert_true(p->require_not_extractable);
    kb_policy_free(p);
}

static void every_key_is_read(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[admission]\n"
                            "mode = audit\n"
                            "allow-unlisted-endpoints = yes\n"
                            "[token]\n"
                            "allow = manufacturer=\"SoftHSM project\" model=* serial=0* "
                            "label=\"my token\"\n"
                            "deny-serial = 1234\n"
                            "require-hardware-slot = yes\n"
                            "require-login = true\n"
                            "require-protected-auth-path = yes\n"
                            "[key]\n"
                            "require-sensitive = yes\n"
                            "require-not-extractable = yes\n"
                            "require-never-extractable = yes\n"
                            "require-always-sensitive = yes\n"
                            "require-local = yes\n"
                            "algorithms = ec-p256 ec-p384, ec-p521 ed25519 ed448 rsa-2048 "
                            "rsa-3072+\n"
                            "[certificate]\n"
                            "trust = /etc/pki/ca.pem\n"
                            "require-eku = clientAuth serverAuth codeSigning emailProtection "
                            "timeStamping OCSPSigning 1.2.3.4\n"
                            "subject = CN=laptop-*, O=Example\n"
                            "san-uri = urn:example:device:*\n"
                            "min-remaining = 1d\n"
                            "renew-before = 2w\n"
                            "max-lifetime = 397d\n"
                            "crl = /var/lib/kb/ca.crl\n"
                            "[endpoint \"vpn.example.com:443\"]\n"
                            "ca = /etc/pki/server-ca.pem\n"
                            "pin-sha256 = " PIN_A "\n"
                            "min-tls = 1.3\n"
                            "priority = NORMAL:-VERS-ALL:+VERS-TLS1.3\n"
                            "server-name = gw.example.com\n");
    assert_int_equal(p->mode, KB_MODE_AUDIT);
    assert_true(p->allow_unlisted_endpoints);
    assert_int_equal(p->n_allow, 1);
    assert_string_equal(p->allow[0].manufacturer, "SoftHSM project");
    assert_string_equal(p->allow[0].model, "*");
    assert_string_equal(p->allow[0].serial, "0*");
    assert_string_equal(p->allow[0].label, "my token");
    assert_int_equal(p->n_deny_serial, 1);
    assert_string_equal(p->deny_serial[0], "1234");
    assert_true(p->require_hw_slot);
    assert_true(p->require_login);
    assert_true(p->require_protected_auth);
    assert_true(p->require_sensitive);
    assert_true(p->require_not_extractable);
    assert_true(p->require_never_extractable);
    assert_true(p->require_always_sensitive);
    assert_true(p->require_local);

    assert_int_equal(p->n_algs, 7);
    assert_int_equal(p->algs[0].type, KB_KEY_EC);
    assert_string_equal(p->algs[0].curve, "P-256");
    assert_string_equal(p->algs[1].curve, "P-384");
    assert_string_equal(p->algs[2].curve, "P-521");
    assert_int_equal(p->algs[3].type, KB_KEY_EDDSA);
    assert_string_equal(p->algs[3].curve, "Ed25519");
    assert_int_equal(p->algs[4].type, KB_KEY_EDDSA);
    assert_string_equal(p->algs[4].curve, "Ed448");
    assert_int_equal(p->algs[5].type, KB_KEY_RSA);
    assert_int_equal(p->algs[5].min_bits, 2048);
    assert_false(p->algs[5].at_least);
    assert_int_equal(p->algs[6].type, KB_KEY_RSA);
    assert_int_equal(p->algs[6].min_bits, 3072);
    assert_true(p->algs[6].at_least);

    assert_string_equal(p->trust, "/etc/pki/ca.pem");
    static const char *const ekus[] = {
        "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.3", "1.3.6.1.5.5.7.3.4",
        "1.3.6.1.5.5.7.3.8", "1.3.6.1.5.5.7.3.9", "1.2.3.4",
    };
    assert_int_equal(p->n_eku, sizeof ekus / sizeof ekus[0]);
    for (size_t i = 0; i < p->n_eku; i++)
        assert_string_equal(p->eku[i], ekus[i]);
    assert_string_equal(p->subject, "CN=laptop-*, O=Example");
    assert_string_equal(p->san_uri, "urn:example:device:*");
    assert_true(p->min_remaining == 86400);
    assert_true(p->renew_before == 14 * 86400);
    assert_true(p->max_lifetime == 397LL * 86400);
    assert_string_equal(p->crl, "/var/lib/kb/ca.crl");

    assert_int_equal(p->n_endpoints, 1);
    const struct kb_endpoint_rule *e = &p->endpoints[0];
    assert_string_equal(e->host, "vpn.example.com");
    assert_int_equal(e->port, 443);
    assert_string_equal(e->ca, "/etc/pki/server-ca.pem");
    assert_int_equal(e->n_pins, 1);
    assert_string_equal(e->pins[0], PIN_A);
    assert_int_equal(e->min_tls, 13);
    assert_string_equal(e->priority, "NORMAL:-VERS-ALL:+VERS-TLS1.3");
    assert_string_equal(e->server_name, "gw.example.com");
    kb_policy_free(p);

    p = parse_ok("[endpoint \"db\"]\nmin-tls = 1.2\n");
    assert_int_equal(p->endpoints[0].min_tls, 12);
    assert_null(p->endpoints[0].ca);
    assert_int_equal(p->endpoints[0].n_pins, 0);
    kb_policy_free(p);
    p = parse_ok("[endpoint \"db\"]\n");
    assert_int_equal(p->endpoints[0].min_tls, 0);
    kb_policy_free(p);
}

static void relative_paths_follow_the_policy(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[certificate]\n"
                            "trust = ca.pem\n"
                            "crl = crl/ca.crl\n"
                            "[endpoint \"a.example\"]\n"
                            "ca = ../pki/server.pem\n"
                            "[endpoint \"b.example\"]\n"
                            "ca = /abs/server.pem\n");
    assert_string_equal(p->trust, "/etc/kb/ca.pem");
    assert_string_equal(p->crl, "/etc/kb/crl/ca.crl");
    assert_string_equal(p->endpoints[0].ca, "/etc/kb/../pki/server.pem");
    assert_string_equal(p->endpoints[1].ca, "/abs/server.pem");
    kb_policy_free(p);

    /* A relative policy name gives paths relative to the same place. */
    const char *text = "[certificate]\ntrust = ca.pem\n";
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    kb_err err;
    assert_int_equal(kb_policy_parse(f, "conf/policy.conf", &p, &err), 0);
    fclose(f);
    assert_string_equal(p->trust, "conf/ca.pem");
    kb_policy_free(p);

    /* Subject and URI globs are not file names. */
    p = parse_ok("[certificate]\nsubject = CN=x\nsan-uri = urn:x\n");
    assert_string_equal(p->subject, "CN=x");
    assert_string_equal(p->san_uri, "urn:x");
    kb_policy_free(p);
}

static void repeatable_keys_accumulate(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[token]\n"
                            "allow = manufacturer=\"SoftHSM project\" model=*\n"
                            "deny-serial = 1111 2222, 3333\n"
                            "allow = manufacturer=Yubico*\n"
                            "deny-serial = 4444\n"
                            "[endpoint \"vpn.example.com\"]\n"
                            "pin-sha256 = " PIN_A "\n"
                            "pin-sha256 = " PIN_B "\n");
    assert_int_equal(p->n_allow, 2);
    assert_string_equal(p->allow[0].manufacturer, "SoftHSM project");
    assert_string_equal(p->allow[0].model, "*");
    assert_null(p->allow[0].serial);
    assert_null(p->allow[0].label);
    assert_string_equal(p->allow[1].manufacturer, "Yubico*");
    assert_null(p->allow[1].model);
    assert_int_equal(p->n_deny_serial, 4);
    assert_string_equal(p->deny_serial[0], "1111");
    assert_string_equal(p->deny_serial[1], "2222");
    assert_string_equal(p->deny_serial[2], "3333");
    assert_string_equal(p->deny_serial[3], "4444");
    assert_int_equal(p->endpoints[0].n_pins, 2);
    assert_string_equal(p->endpoints[0].pins[0], PIN_A);
    assert_string_equal(p->endpoints[0].pins[1], PIN_B);
    kb_policy_free(p);
}

static void allow_patterns(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[token]\nallow = manufacturer=\"SoftHSM project\" model=*\n");
    assert_string_equal(p->allow[0].manufacturer, "SoftHSM project");
    assert_string_equal(p->allow[0].model, "*");
    kb_policy_free(p);

    /* Quotes around the whole word, and a quoted glob holding a blank and a comma. */
    p = parse_ok("[token]\nallow = \"label=Bob's card, 2\" model=\"SoftHSM v?\"\n");
    assert_string_equal(p->allow[0].label, "Bob's card, 2");
    assert_string_equal(p->allow[0].model, "SoftHSM v?");
    kb_policy_free(p);

    refused_at("[token]\nallow = vendor=Yubico\n", 2, "'vendor' is not manufacturer=");
    refused_at("[token]\nallow = Yubico\n", 2, "'Yubico' is not manufacturer=");
    refused_at("[token]\nallow = model=a model=b\n", 2, "each at most once");
    refused_at("[token]\nallow = manufacturer=\"SoftHSM project\n", 2, "a quote is not closed");
}

static void long_values_are_never_cut_short(void **state)
{
    (void)state;
    /* A deny list longer than any internal buffer: every serial on it must be kept, or the
     * line refused; dropping the last ones silently would admit a lost token. */
    char text[4096];
    size_t used = (size_t)snprintf(text, sizeof text, "[token]\ndeny-serial =");
    unsigned n = 0;
    while (used < 1200) {
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 " \"lost token %03u, reported by the help desk\"", n);
        n++;
    }
    snprintf(text + used, sizeof text - used, "\n");
    assert_true(n <= 32);
    kb_err err = {{0}};
    kb_policy *p = parse(text, &err);
    if (p != NULL) {
        assert_int_equal(p->n_deny_serial, n);
        char last[64];
        snprintf(last, sizeof last, "lost token %03u, reported by the help desk", n - 1);
        assert_string_equal(p->deny_serial[n - 1], last);
        kb_policy_free(p);
    } else if (strncmp(err.msg, NAME ":2: ", strlen(NAME ":2: ")) != 0) {
        fail_msg("%s", err.msg);
    }

    /* The same for an allow pattern: cutting off its last word would widen it. */
    used = (size_t)snprintf(text, sizeof text, "[token]\nallow = manufacturer=");
    memset(text + used, '*', 1100);
    used += 1100;
    snprintf(text + used, sizeof text - used, " serial=0001\n");
    p = parse(text, &err);
    if (p != NULL) {
        assert_int_equal(strlen(p->allow[0].manufacturer), 1100);
        assert_non_null(p->allow[0].serial);
        assert_string_equal(p->allow[0].serial, "0001");
        kb_policy_free(p);
    } else if (strncmp(err.msg, NAME ":2: ", strlen(NAME ":2: ")) != 0) {
        fail_msg("%s", err.msg);
    }
}

static void algorithm_names(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[key]\nalgorithms = rsa-3072+\n");
    assert_int_equal(p->n_algs, 1);
    assert_int_equal(p->algs[0].type, KB_KEY_RSA);
    assert_int_equal(p->algs[0].min_bits, 3072);
    assert_true(p->algs[0].at_least);
    kb_policy_free(p);
    p = parse_ok("[key]\nalgorithms = rsa-1024 rsa-16384+\n");
    assert_int_equal(p->algs[0].min_bits, 1024);
    assert_false(p->algs[0].at_least);
    assert_int_equal(p->algs[1].min_bits, 16384);
    kb_policy_free(p);

    static const char *const bad[] = {
        "rsa-1023", "rsa-16385", "rsa-3072++", "rsa-3072-", "rsa-", "rsa-+",    "rsa-abc",
        "rsa3072",  "RSA-3072",  "ec-p255",    "ec-P256",   "p256", "ed25519+", "dsa-2048",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], what[64];
        snprintf(text, sizeof text, "[key]\nalgorithms = ec-p256 %s\n", bad[i]);
        snprintf(what, sizeof what, "algorithms: '%s' is unknown", bad[i]);
        refused_at(text, 2, what);
    }
    refused_at("[key]\nalgorithms =\n", 2, "algorithms needs a list");
}

static void eku_names_and_oids(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[certificate]\nrequire-eku = 1.3.6.1.4.1.311.20.2.2, clientAuth\n");
    assert_int_equal(p->n_eku, 2);
    assert_string_equal(p->eku[0], "1.3.6.1.4.1.311.20.2.2");
    assert_string_equal(p->eku[1], "1.3.6.1.5.5.7.3.2");
    kb_policy_free(p);

    static const char *const bad[] = {"clientauth", "ClientAuth", "1",   "1.",
                                      ".1",         "1..2",       "a.b", "1.2.x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], what[64];
        snprintf(text, sizeof text, "[certificate]\nrequire-eku = clientAuth %s\n", bad[i]);
        snprintf(what, sizeof what, "require-eku: '%s' is neither", bad[i]);
        refused_at(text, 2, what);
    }
    refused_at("[certificate]\nrequire-eku =\n", 2, "require-eku needs");
}

static void pin_sha256_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* 43 characters */
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=",
        /* one character too many */
        PIN_A "=",
        /* no padding */
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUA",
        /* last data character carries bits beyond the 32 bytes */
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=",
        /* base64url alphabet */
        "47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        /* SHA-1 sized */
        "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
        /* hex */
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200], what[100];
        snprintf(text, sizeof text, "[endpoint \"a\"]\npin-sha256 = " PIN_A "\npin-sha256 = %s\n",
                 bad[i]);
        snprintf(what, sizeof what, "pin-sha256 '%s' is not", bad[i]);
        refused_at(text, 3, what);
    }
}

static void errors_name_file_and_line(void **state)
{
    (void)state;
    /* unknown section, with the line counted past comments and blank lines */
    refused_at("# policy\n\n[admission]\nmode = audit\n[tokens]\nrequire-login = yes\n", 5,
               "unknown section [tokens] (did you mean [token]?)");
    refused_at("[admission]\n[endpoint]\n", 2, "unknown section [endpoint]");
    /* unknown key, and a key of another section */
    refused_at("[key]\nrequire-sensitve = yes\n", 2,
               "unknown key 'require-sensitve' in [key] (did you mean 'require-sensitive'?)");
    refused_at("[key]\ntrust = ca.pem\n", 2,
               "unknown key 'trust' in [key] ('trust' belongs in [certificate])");
    refused_at("[key]\nfrobnicate = 1\n", 2,
               "unknown key 'frobnicate' in [key]; see keybound-policy(5)");
    refused_at("[token]\nrequire-sensitive = yes\n", 2,
               "unknown key 'require-sensitive' in [token]");
    refused_at("[endpoint \"a\"]\nmode = audit\n", 2, "unknown key 'mode' in [endpoint]");
    /* bad values */
    refused_at("[key]\nrequire-local = maybe\n", 2, "require-local must be yes or no, not 'maybe'");
    refused_at("[admission]\nallow-unlisted-endpoints = 1\n", 2, "must be yes or no, not '1'");
    refused_at("[token]\nrequire-login =\n", 2, "must be yes or no, not ''");
    refused_at("[admission]\nmode = permissive\n", 2,
               "mode must be enforce, audit or off, not 'permissive'");
    refused_at("[certificate]\nmin-remaining = 30\n", 2, "min-remaining: '30' is not a duration");
    refused_at("[certificate]\nrenew-before = 30x\n", 2, "renew-before: '30x' is not a duration");
    refused_at("[certificate]\nmax-lifetime =\n", 2, "max-lifetime: '' is not a duration");
    refused_at("[certificate]\nmin-remaining = 1d 2h\n", 2, "'1d 2h' is not a duration");
    refused_at("[endpoint \"a\"]\nmin-tls = 1.1\n", 2, "min-tls must be 1.2 or 1.3, not '1.1'");
    refused_at("[endpoint \"a\"]\nmin-tls = TLS1.3\n", 2, "min-tls must be 1.2 or 1.3");
    refused_at("[endpoint \"a\"]\nmin-tls = 1.30\n", 2, "min-tls must be 1.2 or 1.3");
    refused_at("[certificate]\ntrust =\n", 2, "the value is empty");
    refused_at("[endpoint \"a\"]\nca =\n", 2, "the value is empty");
    /* duplicate singular keys, also across two [key] sections */
    refused_at("[key]\nrequire-local = yes\nrequire-local = yes\n", 3,
               "'require-local' is set twice in [key]");
    refused_at("[key]\nrequire-local = yes\n[token]\nrequire-login = yes\n[key]\n"
               "require-local = no\n",
               6, "'require-local' is set twice in [key]");
    refused_at("[admission]\nmode = audit\nmode = enforce\n", 3, "'mode' is set twice");
    refused_at("[endpoint \"a\"]\nca = x.pem\nca = y.pem\n", 3, "'ca' is set twice in [endpoint]");
    /* a key before any section */
    refused_at("mode = audit\n[admission]\n", 1, "'mode' stands before any section");
    /* not key = value */
    refused_at("[key]\nrequire-local\n", 2, "syntax error");
    refused_at("[key\nrequire-local = yes\n", 1, "syntax error");
    /* only the first error is reported */
    refused_at("[key]\nrequire-local = maybe\nrequire-sensitive = perhaps\n[nope]\n", 2,
               "require-local must be yes or no");
}

static void singular_keys_are_per_endpoint(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[endpoint \"a.example\"]\nca = a.pem\nmin-tls = 1.3\n"
                            "[endpoint \"b.example\"]\nca = b.pem\nmin-tls = 1.2\n");
    assert_int_equal(p->n_endpoints, 2);
    assert_string_equal(p->endpoints[0].ca, "/etc/kb/a.pem");
    assert_int_equal(p->endpoints[0].min_tls, 13);
    assert_string_equal(p->endpoints[1].ca, "/etc/kb/b.pem");
    assert_int_equal(p->endpoints[1].min_tls, 12);
    kb_policy_free(p);
}

static void duplicate_endpoint_sections(void **state)
{
    (void)state;
    refused_at("[endpoint \"a.example\"]\nca = a.pem\n[endpoint \"A.Example\"]\n", 3,
               "appears twice");
    refused_at("[endpoint \"a.example:443\"]\n[endpoint \"b.example\"]\n"
               "[endpoint \"a.example:443\"]\n",
               3, "appears twice");
    refused_at("[endpoint \"[::1]:443\"]\n[endpoint \"[::1]:443\"]\n", 2, "appears twice");
    /* the same host on another port, or on any port, is another section */
    kb_policy *p = parse_ok("[endpoint \"a.example\"]\n[endpoint \"a.example:443\"]\n"
                            "[endpoint \"a.example:8443\"]\n");
    assert_int_equal(p->n_endpoints, 3);
    kb_policy_free(p);
}

static void endpoint_section_names(void **state)
{
    (void)state;
    static const struct {
        const char *section, *host;
        unsigned port;
    } good[] = {
        {"endpoint \"api.example.com\"", "api.example.com", 0},
        {"endpoint \"API.Example.COM:8443\"", "api.example.com", 8443},
        {"endpoint \"10.0.0.1:1\"", "10.0.0.1", 1},
        {"endpoint \"db:65535\"", "db", 65535},
        {"endpoint \"[::1]:443\"", "::1", 443},
        {"endpoint \"[2001:DB8::1]\"", "2001:db8::1", 0},
        {"endpoint   \"spaced\"", "spaced", 0},
        {"endpoint\"tight:22\"", "tight", 22},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "[admission]\n[%s]\nca = ca.pem\n", good[i].section);
        kb_policy *p = parse_ok(text);
        assert_int_equal(p->n_endpoints, 1);
        assert_string_equal(p->endpoints[0].host, good[i].host);
        assert_int_equal(p->endpoints[0].port, good[i].port);
        assert_string_equal(p->endpoints[0].ca, "/etc/kb/ca.pem");
        kb_policy_free(p);
    }
    static const char *const bad[] = {
        "endpoint api.example.com",
        "endpoint \"api.example.com:0\"",
        "endpoint \"api:65536\"",
        "endpoint \"api:https\"",
        "endpoint \"api:\"",
        "endpoint \"api:443:1\"",
        "endpoint \"::1\"",
        "endpoint \"[::1\"",
        "endpoint \"[::1]443\"",
        "endpoint \"[]:443\"",
        "endpoint \"\"",
        "endpoint \"a b\"",
        "endpoint \"a/b\"",
        "endpoint \":443\"",
        "endpoint \"api",
        "endpoint \"api:-1\"",
        "endpoint \"a]b\"",
        "endpoint \"[[::1]:443\"",
        "endpoint \"[::1]]\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200], what[200];
        snprintf(text, sizeof text, "[admission]\n[%s]\nca = ca.pem\n", bad[i]);
        snprintf(what, sizeof what, "section [%s]: write [endpoint \"HOST\"]", bad[i]);
        refused_at(text, 2, what);
    }
}

static void over_long_line(void **state)
{
    (void)state;
    size_t len = 6000;
    char *text = malloc(len + 64);
    assert_non_null(text);
    size_t used = (size_t)snprintf(text, len + 64, "[endpoint \"a\"]\npriority = ");
    memset(text + used, 'A', len - used);
    snprintf(text + len, 64, "\nmin-tls = 1.3\n");
    refused_at(text, 2, "line is longer than");
    free(text);

    /* A long line within the limit is kept whole: a GnuTLS priority string can be long. */
    text = malloc(4000 + 64);
    assert_non_null(text);
    used = (size_t)snprintf(text, 4064, "[endpoint \"a\"]\npriority = ");
    memset(text + used, 'B', 3000);
    snprintf(text + used + 3000, 64, "\nmin-tls = 1.3\n");
    kb_policy *p = parse_ok(text);
    assert_int_equal(strlen(p->endpoints[0].priority), 3000);
    assert_int_equal(p->endpoints[0].min_tls, 13);
    kb_policy_free(p);
    free(text);
}

static void rules_that_go_together(void **state)
{
    (void)state;
    /* Errors about the file as a whole name the file without a line. */
    refused_at("[certificate]\ncrl = ca.crl\n", 0, "crl needs trust");
    refused_at("[certificate]\nmin-remaining = 30d\nrenew-before = 7d\n", 0,
               "renew-before is shorter than min-remaining");
    refused_at("[certificate]\nmin-remaining = 30d\nrenew-before = 29d23h59m59s\n", 0,
               "renew-before is shorter than min-remaining");
    kb_policy *p = parse_ok("[certificate]\ntrust = ca.pem\ncrl = ca.crl\n");
    assert_string_equal(p->crl, "/etc/kb/ca.crl");
    kb_policy_free(p);
    p = parse_ok("[certificate]\nmin-remaining = 30d\nrenew-before = 30d\n");
    assert_true(p->renew_before == p->min_remaining);
    kb_policy_free(p);
    p = parse_ok("[certificate]\nrenew-before = 30d\nmin-remaining = 7d\n");
    kb_policy_free(p);
    /* Either alone is fine. */
    p = parse_ok("[certificate]\nrenew-before = 1h\n");
    kb_policy_free(p);
}

static void utf8_bom_before_first_section(void **state)
{
    (void)state;
    /* A policy saved by an editor that writes a byte order mark. */
    kb_policy *p = parse_ok("\xEF\xBB\xBF[admission]\nmode = audit\n");
    assert_int_equal(p->mode, KB_MODE_AUDIT);
    kb_policy_free(p);
}

static void indented_section_headers(void **state)
{
    (void)state;
    /* inih takes the first as a section header and the second as the continuation of "ca";
     * neither may put c.example's keys on b.example. */
    refused_at("[endpoint \"a.example\"]\nca = a.pem\n[endpoint \"b.example\"]\n"
               "  [endpoint \"c.example\"]\nca = c.pem\n",
               4, "indented and starts with '['");
    refused_at("[endpoint \"b.example\"]\nca = b.pem\n\t[endpoint \"c.example\"]\n", 3,
               "indented and starts with '['");
    refused_at("[token]\ndeny-serial = 1111\n  [key]\nrequire-sensitive = no\n", 3,
               "indented and starts with '['");
    /* Windows line ends are fine */
    kb_policy *p =
        parse_ok("[endpoint \"a.example\"]\r\nca = a.pem\r\n[key]\r\nrequire-local = yes\r\n");
    assert_string_equal(p->endpoints[0].host, "a.example");
    assert_string_equal(p->endpoints[0].ca, "/etc/kb/a.pem");
    assert_true(p->require_local);
    kb_policy_free(p);
}

/* Issue 9: libinih (built with INI_ALLOW_MULTILINE) took an indented line as one more value
 * of the key above: a second, wider allow rule. */
static void indented_continuation_lines(void **state)
{
    (void)state;
    refused_at("[token]\nallow = manufacturer=\"Yubico*\"\n    model=\"SoftHSM*\"\n", 3,
               "this line is indented");
    refused_at("[token]\ndeny-serial = 1111\n  2222 3333\n", 3, "this line is indented");
    refused_at("[token]\ndeny-serial = 1111\n\t2222\n", 3, "this line is indented");
    /* an indented key right after a header is refused the same way */
    refused_at("[key]\n  require-local = yes\n", 2, "this line is indented");
    refused_at("[certificate]\ntrust = a.pem\n\n\n \vsubject = x\n", 5, "this line is indented");
    /* indented comments and blank lines are not values */
    kb_policy *p = parse_ok("[token]\n  # a comment\ndeny-serial = 1111\n\t; another\n   \n\t\n"
                            "require-login = yes\n");
    assert_int_equal(p->n_deny_serial, 1);
    assert_true(p->require_login);
    kb_policy_free(p);
}

static void allow_ca_device_cert(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[certificate]\n");
    assert_false(p->allow_ca_device_cert);
    kb_policy_free(p);
    p = parse_ok("[certificate]\nallow-ca-device-cert = yes\n");
    assert_true(p->allow_ca_device_cert);
    kb_policy_free(p);
    p = kb_policy_baseline();
    assert_false(p->allow_ca_device_cert);
    kb_policy_free(p);
    refused_at("[certificate]\nallow-ca-device-cert = maybe\n", 2,
               "allow-ca-device-cert must be yes or no");
    refused_at("[token]\nallow-ca-device-cert = yes\n", 2, "unknown key 'allow-ca-device-cert'");
    refused_at("[certificate]\nallow-ca-device-cert = yes\nallow-ca-device-cert = no\n", 3,
               "set twice");
}

/* Issue 9, item 6: host names with control characters (and other bytes no host has). */
static void endpoint_host_names(void **state)
{
    (void)state;
    refused_at("[endpoint \"ev\x01il.example\"]\n", 1, "section [endpoint \"ev\\x01il.example\"]");
    refused_at("[endpoint \"evil\x1b[2J.example\"]\n", 1, "with a DNS name or IP address");
    refused_at("[endpoint \"a b\"]\n", 1, "[endpoint \"HOST\"]");
    refused_at("[endpoint \"a..b\"]\n", 1, "[endpoint \"HOST\"]");
    refused_at("[endpoint \"caf\xc3\xa9.example\"]\n", 1, "[endpoint \"HOST\"]");
    refused_at("[endpoint \"[not-v6]:443\"]\n", 1, "[endpoint \"HOST\"]");
    refused_at("[endpoint \"a\"]\nserver-name = ev\x01il\n", 2, "not a valid server name");
    refused_at("[endpoint \"a\"]\nserver-name = a/b\n", 2, "server-name 'a/b' is not a valid");
    kb_policy *p =
        parse_ok("[endpoint \"Db_1.Internal-2.example.\"]\n[endpoint \"[fe80::1%eth0]\"]\n"
                 "[endpoint \"10.0.0.1:5432\"]\nserver-name = db.example\n");
    assert_string_equal(p->endpoints[0].host, "db_1.internal-2.example.");
    assert_string_equal(p->endpoints[1].host, "fe80::1%eth0");
    assert_int_equal(p->endpoints[2].port, 5432);
    assert_string_equal(p->endpoints[2].server_name, "db.example");
    kb_policy_free(p);
    /* the name is kept as it is sent and checked */
    p = parse_ok("[endpoint \"a\"]\nserver-name = [::1]\n");
    assert_string_equal(p->endpoints[0].server_name, "::1");
    kb_policy_free(p);
    refused_at("[endpoint \"a\"]\nserver-name = [a.example]\n", 2,
               "server-name '[a.example]' is not a valid server name");
}

static void hostport_parsing(void **state)
{
    (void)state;
    static const struct {
        const char *text, *host;
        unsigned port;
    } good[] = {
        {"vpn.example.com:443", "vpn.example.com", 443},
        {"VPN.Example.COM:8443", "vpn.example.com", 8443},
        {"127.0.0.1:1", "127.0.0.1", 1},
        {"[::1]:443", "::1", 443},
        {"[fe80::1%eth0]:443", "fe80::1%eth0", 443},
        {"localhost:65535", "localhost", 65535},
        {"under_score.example:22", "under_score.example", 22},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char host[256];
        unsigned port = 0;
        kb_err err = {{0}};
        if (kb_hostport_parse(good[i].text, host, sizeof host, &port, &err) != 0)
            fail_msg("'%s' refused: %s", good[i].text, err.msg);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    static const char *const bad[] = {
        "evil\n.example.com:443",
        "evil\r.example.com:443",
        "ev\x01il:443",
        "ev\x7fil:443",
        "evil\t.example:443",
        "a b:443",
        "a/b:443",
        "a..b:443",
        ".a:443",
        "-a.example:443",
        "caf\xc3\xa9:443",
        "a\"b:443",
        "[::1\n]:443",
        "[nothex]:443",
        "[1.2.3.4]:443",
        "[::1%e\nx]:443",
        "a%b:443",
        ":443",
        "a:0",
        "a:65536",
        "a:44x",
        "a",
        "::1:443",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[256];
        unsigned port = 0;
        kb_err err = {{0}};
        if (kb_hostport_parse(bad[i], host, sizeof host, &port, &err) == 0)
            fail_msg("'%s' admitted as host '%s'", bad[i], host);
        /* one line, and no raw control character in it */
        for (const char *c = err.msg; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
                fail_msg("message for case %zu holds byte 0x%02x: %s", i, *c, err.msg);
    }
    kb_err err = {{0}};
    char host[256];
    unsigned port;
    assert_int_equal(kb_hostport_parse("evil\n.example.com:443", host, sizeof host, &port, &err),
                     -1);
    assert_non_null(strstr(err.msg, "'evil\\n.example.com:443': the host name is not valid"));
    /* a label of 64 characters, a name of 254 */
    char longer[300];
    memset(longer, 'a', 64);
    snprintf(longer + 64, sizeof longer - 64, ".example:443");
    assert_int_equal(kb_hostport_parse(longer, host, sizeof host, &port, &err), -1);
    memmove(longer, longer + 1, strlen(longer)); /* a label of 63 */
    assert_int_equal(kb_hostport_parse(longer, host, sizeof host, &port, &err), 0);
}

static void server_names(void **state)
{
    (void)state;
    static const struct {
        const char *name, *norm;
    } good[] = {
        {"[::1]", "::1"},
        {"::1", "::1"},
        {"[2001:DB8::1]", "2001:DB8::1"},
        {"127.0.0.1", "127.0.0.1"},
        {"db.example.com", "db.example.com"},
        {"localhost", "localhost"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char out[256] = "untouched";
        kb_err err = {{0}};
        if (kb_server_name_norm("--server-name", good[i].name, out, sizeof out, &err) != 0)
            fail_msg("'%s' refused: %s", good[i].name, err.msg);
        assert_string_equal(out, good[i].norm);
    }
    static const char *const bad[] = {
        "[example.com]",  "[127.0.0.1]",  "[::1", "::1]", "[::1]x",       "[::1]:443",
        "[[::1]]",        "[]",           "[",    "",     "localhost\nx", "a b",
        "[fe80::1%eth0]", "fe80::1%eth0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[256] = "untouched";
        kb_err err = {{0}};
        if (kb_server_name_norm("--server-name", bad[i], out, sizeof out, &err) == 0)
            fail_msg("'%s' admitted as '%s'", bad[i], out);
        assert_string_equal(out, "untouched");
        assert_non_null(strstr(err.msg, "--server-name '"));
        for (const char *c = err.msg; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
                fail_msg("message for case %zu holds byte 0x%02x: %s", i, *c, err.msg);
    }
    char out[256];
    kb_err err;
    assert_int_equal(kb_server_name_norm("--server-name", "[::1]x", out, sizeof out, &err), -1);
    assert_string_equal(err.msg, "--server-name '[::1]x' is not a valid server name (a DNS name "
                                 "such as vpn.example.com, or an IP address)");
    assert_int_equal(kb_server_name_norm("--server-name", "localhost\nx", out, sizeof out, &err),
                     -1);
    assert_non_null(strstr(err.msg, "--server-name 'localhost\\nx' is not a valid server name"));
    assert_int_equal(kb_server_name_norm("server-name", "[fe80::1%eth0]", out, sizeof out, &err),
                     -1);
    assert_non_null(strstr(err.msg, "server-name '[fe80::1%eth0]': a server name has no zone"));
    /* what does not fit is an error, not a shorter name */
    assert_int_equal(kb_server_name_norm("server-name", "[::1]", out, 4, &err), 0);
    assert_string_equal(out, "::1");
    assert_int_equal(kb_server_name_norm("server-name", "[::1]", out, 3, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 2 bytes"));
}

static void hostport_strings(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        unsigned port;
        const char *text;
    } cases[] = {
        {"::1", 443, "[::1]:443"},
        {"fe80::1%eth0", 8443, "[fe80::1%eth0]:8443"},
        {"127.0.0.1", 443, "127.0.0.1:443"},
        {"vpn.example.com", 65535, "vpn.example.com:65535"},
        {"::1", 0, "[::1]"},
        {"vpn.example.com", 0, "vpn.example.com"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[KB_HOSTPORT_STRLEN];
        assert_ptr_equal(kb_hostport_str(cases[i].host, cases[i].port, buf, sizeof buf), buf);
        assert_string_equal(buf, cases[i].text);
    }
    /* KB_HOSTPORT_STRLEN holds a host of KB_HOST_MAX bytes, brackets and the longest port */
    char host[KB_HOST_MAX + 1], buf[KB_HOSTPORT_STRLEN];
    memset(host, ':', KB_HOST_MAX);
    host[KB_HOST_MAX] = '\0';
    assert_int_equal(strlen(kb_hostport_str(host, 65535, buf, sizeof buf)), KB_HOST_MAX + 8);
    assert_string_equal(kb_hostport_str("::1", 443, buf, 6), "[::1]");
}

static void durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long seconds;
    } cases[] = {
        {"45s", 45},
        {"90m", 90 * 60},
        {"12h", 12 * 3600},
        {"30d", 30 * 86400},
        {"2w", 14 * 86400},
        {"1d12h", 86400 + 12 * 3600},
        {"1w2d3h4m5s", 9 * 86400 + 3 * 3600 + 4 * 60 + 5},
        {"0s", 0},
        /* malformed */
        {"", -1},
        {"30", -1},
        {"30x", -1},
        {"30D", -1},
        {"d", -1},
        {"1d 2h", -1},
        {" 1d", -1},
        {"1d ", -1},
        {"-1d", -1},
        {"+1d", -1},
        {"1.5d", -1},
        {"1d2", -1},
        {"1y", -1},
        /* too large to be meant, or to fit */
        {"99999999999999999999s", -1},
        {"9223372036854775807s", -1},
        {"9223372036854775807w", -1},
        {"3000000000w", -1},
        {"36500d36500d", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long got = kb_duration_parse(cases[i].text);
        if (got != cases[i].seconds)
            fail_msg("kb_duration_parse(\"%s\") = %lld, expected %lld", cases[i].text, got,
                     cases[i].seconds);
    }
}

static void endpoint_lookup(void **state)
{
    (void)state;
    /* The port-less section comes first, so a lookup that took the first match would
     * return it. */
    kb_policy *p = parse_ok("[endpoint \"API.example.com\"]\nserver-name = any-port\n"
                            "[endpoint \"api.example.com:443\"]\nserver-name = port-443\n"
                            "[endpoint \"db.example.com:5432\"]\nserver-name = db\n"
                            "[endpoint \"[::1]:443\"]\nserver-name = loopback6\n");
    const struct kb_endpoint_rule *e = kb_policy_endpoint(p, "api.example.com", 443);
    assert_non_null(e);
    assert_string_equal(e->server_name, "port-443");
    e = kb_policy_endpoint(p, "api.example.com", 8443);
    assert_non_null(e);
    assert_string_equal(e->server_name, "any-port");
    e = kb_policy_endpoint(p, "Api.Example.COM", 443);
    assert_non_null(e);
    assert_string_equal(e->server_name, "port-443");
    e = kb_policy_endpoint(p, "DB.example.com", 5432);
    assert_non_null(e);
    assert_string_equal(e->server_name, "db");
    assert_null(kb_policy_endpoint(p, "db.example.com", 5433));
    assert_null(kb_policy_endpoint(p, "example.com", 443));
    assert_null(kb_policy_endpoint(p, "api.example.com.evil", 443));
    e = kb_policy_endpoint(p, "::1", 443);
    assert_non_null(e);
    assert_string_equal(e->server_name, "loopback6");
    assert_null(kb_policy_endpoint(p, "::1", 80));
    kb_policy_free(p);

    /* The same with the exact port first. */
    p = parse_ok("[endpoint \"api.example.com:443\"]\nserver-name = port-443\n"
                 "[endpoint \"api.example.com\"]\nserver-name = any-port\n");
    assert_string_equal(kb_policy_endpoint(p, "api.example.com", 443)->server_name, "port-443");
    assert_string_equal(kb_policy_endpoint(p, "api.example.com", 80)->server_name, "any-port");
    kb_policy_free(p);

    p = parse_ok("[admission]\n");
    assert_null(kb_policy_endpoint(p, "api.example.com", 443));
    kb_policy_free(p);
}

static void mode_names(void **state)
{
    (void)state;
    assert_string_equal(kb_mode_name(KB_MODE_ENFORCE), "enforce");
    assert_string_equal(kb_mode_name(KB_MODE_AUDIT), "audit");
    assert_string_equal(kb_mode_name(KB_MODE_OFF), "off");
}

/* Writes text to a new temporary policy file with the given mode; returns its path. */
static char *temp_policy(const char *text, mode_t mode)
{
    const char *tmp = getenv("TMPDIR");
    char *path = malloc(4096);
    assert_non_null(path);
    snprintf(path, 4096, "%s/kb-policy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
    return path;
}

static void load_refuses_writable_files(void **state)
{
    (void)state;
    const char *text = "[admission]\nmode = audit\n[certificate]\ntrust = ca.pem\n";
    static const struct {
        mode_t mode;
        const char *what; /* NULL: loads */
    } cases[] = {
        {0664, "writable by its group"},
        {0646, "writable by every user"},
        {0666, "writable by every user"},
        {0620, "writable by its group"},
        {0644, NULL},
        {0600, NULL},
        {0400, NULL},
    };
    /* The trust file the policy names, next to it: one that is missing is an error too. */
    char *anchor = temp_policy("", 0644), ca[4200];
    snprintf(ca, sizeof ca, "%.*s/ca.pem", (int)(strrchr(anchor, '/') - anchor), anchor);
    assert_int_equal(rename(anchor, ca), 0);
    free(anchor);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = temp_policy(text, cases[i].mode);
        kb_policy *p = (kb_policy *)&p;
        kb_err err = {{0}};
        int rc = kb_policy_load(path, &p, &err);
        if (cases[i].what != NULL) {
            assert_int_equal(rc, -1);
            assert_null(p);
            if (strstr(err.msg, path) == NULL || strstr(err.msg, cases[i].what) == NULL ||
                strstr(err.msg, "chmod go-w") == NULL)
                fail_msg("mode %o: '%s'", (unsigned)cases[i].mode, err.msg);
        } else {
            if (rc != 0)
                fail_msg("mode %o: %s", (unsigned)cases[i].mode, err.msg);
            assert_int_equal(p->mode, KB_MODE_AUDIT);
            assert_string_equal(p->path, path);
            /* trust is next to the file */
            char want[4200];
            snprintf(want, sizeof want, "%.*s/ca.pem", (int)(strrchr(path, '/') - path), path);
            assert_string_equal(p->trust, want);
            kb_policy_free(p);
        }
        assert_int_equal(unlink(path), 0);
        free(path);
    }
    assert_int_equal(unlink(ca), 0);
    char *path = temp_policy(text, 0644);
    kb_policy *p;
    kb_err err;
    assert_int_equal(kb_policy_load(path, &p, &err), -1);
    if (strstr(err.msg, path) == NULL || strstr(err.msg, ca) == NULL ||
        strstr(err.msg, "cannot be opened: No such file or directory") == NULL)
        fail_msg("a missing trust file: '%s'", err.msg);
    unlink(path);
    free(path);

    /* Errors in a loaded file name that file. */
    path = temp_policy("[key]\nrequire-local = perhaps\n", 0644);
    assert_int_equal(kb_policy_load(path, &p, &err), -1);
    char want[4200];
    snprintf(want, sizeof want, "%s:2: ", path);
    assert_non_null(strstr(err.msg, want));
    unlink(path);
    free(path);
}

static void load_errors(void **state)
{
    (void)state;
    kb_policy *p = (kb_policy *)&p;
    kb_err err;
    assert_int_equal(kb_policy_load("/nonexistent/kb/policy.conf", &p, &err), -1);
    assert_null(p);
    assert_non_null(strstr(err.msg, "/nonexistent/kb/policy.conf"));
    assert_non_null(strstr(err.msg, "cannot be opened"));

    assert_int_equal(kb_policy_load("/", &p, &err), -1);
    assert_null(p);
    assert_non_null(strstr(err.msg, "not a regular file"));
}

/* [key] require-attestation and tpm-ca: defaults, paths, repetition, the pairing rule and
 * the files checked at load. */
static void attestation_keys(void **state)
{
    (void)state;
    kb_policy *p = parse_ok("[key]\n");
    assert_false(p->require_attestation);
    assert_int_equal(p->n_tpm_ca, 0);
    kb_policy_free(p);

    p = parse_ok("[key]\nrequire-attestation = yes\ntpm-ca = ek-roots.pem\n"
                 "tpm-ca = /usr/share/tpm/intermediates.pem\ntpm-ca = sub/dir/vendor.pem\n");
    assert_true(p->require_attestation);
    assert_int_equal(p->n_tpm_ca, 3);
    assert_string_equal(p->tpm_ca[0], "/etc/kb/ek-roots.pem");
    assert_string_equal(p->tpm_ca[1], "/usr/share/tpm/intermediates.pem");
    assert_string_equal(p->tpm_ca[2], "/etc/kb/sub/dir/vendor.pem");
    kb_policy_free(p);

    /* tpm-ca alone is allowed: an admin may stage the anchors before requiring attestation. */
    p = parse_ok("[key]\ntpm-ca = ek.pem\nrequire-attestation = no\n");
    assert_false(p->require_attestation);
    assert_int_equal(p->n_tpm_ca, 1);
    kb_policy_free(p);

    refused_at("[key]\nrequire-attestation = yes\n", 0, "require-attestation needs tpm-ca");
    refused_at("[key]\nrequire-attestation = maybe\ntpm-ca = a.pem\n", 2,
               "require-attestation must be yes or no, not 'maybe'");
    refused_at("[key]\ntpm-ca = a.pem\nrequire-attestation = yes\nrequire-attestation = yes\n", 4,
               "'require-attestation' is set twice");
    refused_at("[key]\ntpm-ca =\nrequire-attestation = yes\n", 2, "tpm-ca");
    refused_at("[certificate]\ntpm-ca = a.pem\n", 2, "belongs in [key]");
    refused_at("[key]\nrequire-atestation = yes\n", 2, "did you mean 'require-attestation'");
}

/* A tpm-ca file is trusted as much as the policy: missing or writable by others, it is
 * refused when the policy is loaded. */
static void attestation_files_checked_at_load(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    char base[4096];
    snprintf(base, sizeof base, "%s/kb-policy-attest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char *d = mkdtemp(base);
    assert_non_null(d);
    chmod(d, 0700);
    char pol[4200], ca[4200];
    snprintf(pol, sizeof pol, "%s/policy.conf", d);
    snprintf(ca, sizeof ca, "%s/ek.pem", d);
    FILE *f = fopen(pol, "w");
    assert_non_null(f);
    fputs("[key]\nrequire-attestation = yes\ntpm-ca = ek.pem\n", f);
    fclose(f);
    chmod(pol, 0600);
    kb_policy *p = NULL;
    kb_err err;
    assert_int_equal(kb_policy_load(pol, &p, &err), -1);
    assert_null(p);
    assert_non_null(strstr(err.msg, "tpm-ca file"));
    assert_non_null(strstr(err.msg, ca));
    f = fopen(ca, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    chmod(ca, 0644);
    assert_int_equal(kb_policy_load(pol, &p, &err), 0);
    assert_true(p->require_attestation);
    assert_string_equal(p->tpm_ca[0], ca);
    kb_policy_free(p);
    chmod(ca, 0666);
    assert_int_equal(kb_policy_load(pol, &p, &err), -1);
    assert_non_null(strstr(err.msg, "tpm-ca file"));
    unlink(ca);
    unlink(pol);
    rmdir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minimal_policy_defaults),
        cmocka_unit_test(omitted_key_rules_still_protect_the_key),
        cmocka_unit_test(every_key_is_read),
        cmocka_unit_test(relative_paths_follow_the_policy),
        cmocka_unit_test(repeatable_keys_accumulate),
        cmocka_unit_test(allow_patterns),
        cmocka_unit_test(long_values_are_never_cut_short),
        cmocka_unit_test(algorithm_names),
        cmocka_unit_test(eku_names_and_oids),
        cmocka_unit_test(pin_sha256_values),
        cmocka_unit_test(errors_name_file_and_line),
        cmocka_unit_test(singular_keys_are_per_endpoint),
        cmocka_unit_test(duplicate_endpoint_sections),
        cmocka_unit_test(endpoint_section_names),
        cmocka_unit_test(over_long_line),
        cmocka_unit_test(rules_that_go_together),
        cmocka_unit_test(utf8_bom_before_first_section),
        cmocka_unit_test(indented_section_headers),
        cmocka_unit_test(durations),
        cmocka_unit_test(endpoint_lookup),
        cmocka_unit_test(mode_names),
        cmocka_unit_test(load_refuses_writable_files),
        cmocka_unit_test(load_errors),
        cmocka_unit_test(attestation_keys),
        cmocka_unit_test(attestation_files_checked_at_load),
        cmocka_unit_test(indented_continuation_lines),
        cmocka_unit_test(allow_ca_device_cert),
        cmocka_unit_test(endpoint_host_names),
        cmocka_unit_test(hostport_parsing),
        cmocka_unit_test(server_names),
        cmocka_unit_test(hostport_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
