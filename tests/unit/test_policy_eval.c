/* SPDX-License-Identifier: Apache-2.0 */
/* Evaluating the admission policy: every rule passing, failing and at its edge; modes;
 * failing closed; the verdict as JSON. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "policy/eval.h"
#include "policy/policy.h"
#include "policy/render.h"

#define NAME "/etc/kb/policy.conf"
#define NOW 1700000000LL /* 2023-11-14 22:13 UTC */
#define SEC 1LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

#define CLIENT_AUTH "1.3.6.1.5.5.7.3.2"
#define SERVER_AUTH "1.3.6.1.5.5.7.3.1"
#define ANY_EKU "2.5.29.37.0"

/* Every check id a verdict can hold. */
static const char *const all_ids[] = {
    "token.allow",
    "token.deny-serial",
    "token.hardware-slot",
    "token.login",
    "token.protected-auth-path",
    "key.sensitive",
    "key.not-extractable",
    "key.never-extractable",
    "key.always-sensitive",
    "key.local",
    "key.algorithm",
    "key.attested",
    "cert.present",
    "cert.validity",
    "cert.trust",
    "cert.ca",
    "cert.eku",
    "cert.subject",
    "cert.san-uri",
    "cert.min-remaining",
    "cert.renew-before",
    "cert.max-lifetime",
    "cert.crl",
    "endpoint.listed",
};

/* A device that every rule admits: SoftHSM token, EC P-256 key with every protection, a
 * certificate valid now for client authentication that chains to the anchors. */
static struct kb_device_facts good_device(void)
{
    struct kb_device_facts f;
    memset(&f, 0, sizeof f);
    snprintf(f.token.label, sizeof f.token.label, "laptop-42");
    snprintf(f.token.manufacturer, sizeof f.token.manufacturer, "SoftHSM project");
    snprintf(f.token.model, sizeof f.token.model, "SoftHSM v2");
    snprintf(f.token.serial, sizeof f.token.serial, "0123456789abcdef");
    f.token.login_required = true;
    f.token.rng = true;
    f.token.initialized = true;

    f.key.type = KB_KEY_EC;
    f.key.bits = 256;
    snprintf(f.key.curve, sizeof f.key.curve, "P-256");
    snprintf(f.key.label, sizeof f.key.label, "device");
    f.key.id[0] = 0x42;
    f.key.id_len = 1;
    f.key.sensitive = KB_TRI_TRUE;
    f.key.extractable = KB_TRI_FALSE;
    f.key.never_extractable = KB_TRI_TRUE;
    f.key.always_sensitive = KB_TRI_TRUE;
    f.key.local = KB_TRI_TRUE;
    f.key.private_obj = KB_TRI_TRUE;
    f.key.always_authenticate = KB_TRI_FALSE;
    f.key.sign = KB_TRI_TRUE;

    f.cert.present = true;
    f.cert.subject = "CN=laptop-42,O=Example";
    f.cert.issuer = "CN=Example Device CA,O=Example";
    f.cert.not_before = NOW - 10 * DAY;
    f.cert.not_after = NOW + 80 * DAY;
    snprintf(f.cert.sha256, sizeof f.cert.sha256, "%064d", 0);
    snprintf(f.cert.eku[0], sizeof f.cert.eku[0], CLIENT_AUTH);
    f.cert.n_eku = 1;
    snprintf(f.cert.san_uri[0], sizeof f.cert.san_uri[0], "urn:example:device:42");
    f.cert.n_san_uri = 1;
    f.cert.chain = KB_CHAIN_OK;
    f.cert.revoked = KB_TRI_FALSE;
    return f;
}

/* Every rule on; hardware slot and PIN pad stay off as SoftHSM has neither. */
static const char strict_text[] = "[admission]\n"
                                  "mode = enforce\n"
                                  "[token]\n"
                                  "allow = manufacturer=\"SoftHSM project\" model=*\n"
                                  "deny-serial = deadbeef*\n"
                                  "require-login = yes\n"
                                  "[key]\n"
                                  "require-never-extractable = yes\n"
                                  "require-always-sensitive = yes\n"
                                  "require-local = yes\n"
                                  "algorithms = ec-p256 ec-p384 rsa-3072+ ed25519\n"
                                  "[certificate]\n"
                                  "trust = ca.pem\n"
                                  "require-eku = clientAuth\n"
                                  "subject = CN=laptop-*,O=Example\n"
                                  "san-uri = urn:example:device:*\n"
                                  "min-remaining = 30d\n"
                                  "renew-before = 45d\n"
                                  "max-lifetime = 90d\n"
                                  "crl = ca.crl\n"
                                  "[endpoint \"api.example.com:443\"]\n"
                                  "ca = server-ca.pem\n";

static kb_policy *policy(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    kb_policy *p = NULL;
    kb_err err = {{0}};
    int rc = kb_policy_parse(f, NAME, &p, &err);
    fclose(f);
    if (rc != 0)
        fail_msg("policy refused: %s\n--- policy ---\n%s", err.msg, text);
    return p;
}

static const struct kb_check *find(const kb_verdict *v, const char *id)
{
    const struct kb_check *found = NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->checks[i].id, id) == 0) {
            if (found != NULL)
                fail_msg("check %s appears twice", id);
            found = &v->checks[i];
        }
    }
    if (found == NULL)
        fail_msg("no check %s in the verdict", id);
    return found;
}

#define assert_check(v, id, want) assert_check_at(v, id, want, __FILE__, __LINE__)
static void assert_check_at(const kb_verdict *v, const char *id, enum kb_status want,
                            const char *file, int line)
{
    const struct kb_check *c = find(v, id);
    if (c->status != want)
        fail_msg("%s:%d: %s is %s, expected %s (observed: %s; expected: %s; reason: %s)", file,
                 line, id, kb_status_name(c->status), kb_status_name(want), c->observed,
                 c->expected, c->reason);
    /* Whatever the status, it is explained. */
    assert_true(c->reason[0] != '\0');
}

/* Evaluates facts under the policy text at time now. */
static kb_verdict evaluate(const char *text, const struct kb_device_facts *f, long long now)
{
    kb_policy *p = policy(text);
    kb_verdict v;
    kb_policy_evaluate(p, f, now, &v);
    kb_policy_free(p);
    return v;
}

/* The verdict's bookkeeping agrees with its checks. */
static void assert_consistent(const kb_verdict *v)
{
    size_t failed = 0, warned = 0;
    for (size_t i = 0; i < v->n; i++) {
        failed += v->checks[i].status == KB_FAIL || v->checks[i].status == KB_ERROR;
        warned += v->checks[i].status == KB_WARN;
    }
    assert_int_equal(v->n_failed, failed);
    assert_int_equal(v->n_warned, warned);
    if (v->mode == KB_MODE_ENFORCE)
        assert_true(v->admit == (failed == 0));
}

static void good_device_is_admitted(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    f.endpoint.given = true;
    snprintf(f.endpoint.host, sizeof f.endpoint.host, "api.example.com");
    f.endpoint.port = 443;
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_consistent(&v);
    assert_true(v.admit);
    assert_false(v.would_deny);
    assert_int_equal(v.mode, KB_MODE_ENFORCE);
    for (size_t i = 0; i < sizeof all_ids / sizeof all_ids[0]; i++) {
        const char *id = all_ids[i];
        bool off = strcmp(id, "token.hardware-slot") == 0 ||
                   strcmp(id, "token.protected-auth-path") == 0 || strcmp(id, "key.attested") == 0;
        assert_check(&v, id, off ? KB_SKIP : KB_PASS);
    }
    assert_int_equal(v.n, sizeof all_ids / sizeof all_ids[0]);
}

static void check_ids_are_unique(void **state)
{
    (void)state;
    struct kb_device_facts variants[3];
    variants[0] = good_device();
    variants[1] = good_device();
    variants[1].cert.present = false;
    variants[2] = good_device();
    variants[2].endpoint.given = true;
    snprintf(variants[2].endpoint.host, sizeof variants[2].endpoint.host, "other.example");
    variants[2].endpoint.port = 443;
    const char *texts[] = {strict_text, "[admission]\n"};
    for (size_t t = 0; t < 2; t++) {
        for (size_t d = 0; d < 3; d++) {
            kb_verdict v = evaluate(texts[t], &variants[d], NOW);
            assert_true(v.n <= KB_MAX_CHECKS);
            for (size_t i = 0; i < v.n; i++)
                for (size_t j = i + 1; j < v.n; j++)
                    if (strcmp(v.checks[i].id, v.checks[j].id) == 0)
                        fail_msg("check id %s appears twice", v.checks[i].id);
            /* every rule is reported, whether it applies or not */
            for (size_t i = 0; i < sizeof all_ids / sizeof all_ids[0]; i++)
                (void)find(&v, all_ids[i]);
            assert_int_equal(v.n, sizeof all_ids / sizeof all_ids[0]);
        }
    }
}

static void token_allow(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "token.allow", KB_PASS);

    snprintf(f.token.manufacturer, sizeof f.token.manufacturer, "Yubico");
    snprintf(f.token.model, sizeof f.token.model, "YubiKey YK5");
    v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "token.allow", KB_FAIL);
    assert_false(v.admit);
    assert_non_null(strstr(find(&v, "token.allow")->observed, "Yubico"));

    /* the manufacturer glob must match the whole name, not a prefix */
    snprintf(f.token.manufacturer, sizeof f.token.manufacturer, "SoftHSM project (fork)");
    v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "token.allow", KB_FAIL);

    /* one of several patterns is enough */
    v = evaluate("[token]\nallow = manufacturer=Nitrokey\nallow = manufacturer=SoftHSM*\n", &f,
                 NOW);
    assert_check(&v, "token.allow", KB_PASS);

    /* no allow list: any token */
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "token.allow", KB_SKIP);
}

static bool pattern_matches(const char *manufacturer, const char *model, const char *serial,
                            const char *label)
{
    struct kb_token_pattern pat = {(char *)manufacturer, (char *)model, (char *)serial,
                                   (char *)label};
    struct kb_device_facts f = good_device();
    return kb_token_pattern_match(&pat, &f.token);
}

static void token_glob_corner_cases(void **state)
{
    (void)state;
    /* NULL fields match anything */
    assert_true(pattern_matches(NULL, NULL, NULL, NULL));
    /* exact, and never a prefix only */
    assert_true(pattern_matches("SoftHSM project", NULL, NULL, NULL));
    assert_false(pattern_matches("SoftHSM", NULL, NULL, NULL));
    assert_false(pattern_matches("SoftHSM projec", NULL, NULL, NULL));
    assert_false(pattern_matches("oftHSM project", NULL, NULL, NULL));
    assert_false(pattern_matches("softhsm project", NULL, NULL, NULL));
    assert_false(pattern_matches("", NULL, NULL, NULL));
    /* '*' matches the empty string too, anywhere */
    assert_true(pattern_matches("SoftHSM project*", NULL, NULL, NULL));
    assert_true(pattern_matches("*SoftHSM project", NULL, NULL, NULL));
    assert_true(pattern_matches("SoftHSM* project", NULL, NULL, NULL));
    assert_true(pattern_matches("*", "*", "*", "*"));
    /* '?' is exactly one character */
    assert_true(pattern_matches(NULL, "SoftHSM v?", NULL, NULL));
    assert_false(pattern_matches(NULL, "SoftHSM v2?", NULL, NULL));
    assert_false(pattern_matches(NULL, "SoftHSM ?", NULL, NULL));
    assert_true(pattern_matches(NULL, "SoftHSM?v2", NULL, NULL));
    /* character classes, negated classes */
    assert_true(pattern_matches(NULL, NULL, "[0-9]123456789abcde[a-f]", NULL));
    assert_true(pattern_matches(NULL, NULL, "[0-9]*", NULL));
    assert_false(pattern_matches(NULL, NULL, "[1-9]*", NULL));
    assert_false(pattern_matches(NULL, NULL, "[!0-9]*", NULL));
    assert_true(pattern_matches(NULL, NULL, "[!a-z]*[a-f]", NULL));
    assert_true(pattern_matches(NULL, "SoftHSM v[12]", NULL, NULL));
    assert_false(pattern_matches(NULL, "SoftHSM v[13]", NULL, NULL));
    /* every field must match */
    assert_false(pattern_matches("SoftHSM project", "SoftHSM v2", "0123*", "laptop-43"));
    assert_true(pattern_matches("SoftHSM project", "SoftHSM v2", "0123*", "laptop-4?"));

    /* A quoted pattern with a blank, through the parser. */
    struct kb_device_facts f = good_device();
    const char *text = "[token]\nallow = manufacturer=\"SoftHSM project\" model=*\n";
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "token.allow", KB_PASS);
    snprintf(f.token.manufacturer, sizeof f.token.manufacturer, "SoftHSM");
    v = evaluate(text, &f, NOW);
    assert_check(&v, "token.allow", KB_FAIL);
    snprintf(f.token.manufacturer, sizeof f.token.manufacturer, "SoftHSM project");
    f.token.model[0] = '\0';
    v = evaluate(text, &f, NOW);
    assert_check(&v, "token.allow", KB_PASS);
}

static void token_deny_serial(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "token.deny-serial", KB_PASS);

    snprintf(f.token.serial, sizeof f.token.serial, "deadbeef00000001");
    v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "token.deny-serial", KB_FAIL);
    assert_false(v.admit);
    /* the glob is anchored at both ends */
    snprintf(f.token.serial, sizeof f.token.serial, "00deadbeef");
    v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "token.deny-serial", KB_PASS);
    /* exact serials, several per line */
    v = evaluate("[token]\ndeny-serial = 1111 00deadbeef 2222\n", &f, NOW);
    assert_check(&v, "token.deny-serial", KB_FAIL);
    v = evaluate("[token]\ndeny-serial = 1111 00deadbee 2222\n", &f, NOW);
    assert_check(&v, "token.deny-serial", KB_PASS);
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "token.deny-serial", KB_SKIP);
}

static void token_flags(void **state)
{
    (void)state;
    static const struct {
        const char *key, *id;
        size_t off;
    } flags[] = {
        {"require-hardware-slot", "token.hardware-slot", offsetof(struct kb_token_facts, hw_slot)},
        {"require-login", "token.login", offsetof(struct kb_token_facts, login_required)},
        {"require-protected-auth-path", "token.protected-auth-path",
         offsetof(struct kb_token_facts, protected_auth)},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char on[128], off[128];
        snprintf(on, sizeof on, "[token]\n%s = yes\n", flags[i].key);
        snprintf(off, sizeof off, "[token]\n%s = no\n", flags[i].key);
        struct kb_device_facts f = good_device();
        bool *has = (bool *)((char *)&f.token + flags[i].off);
        *has = true;
        kb_verdict v = evaluate(on, &f, NOW);
        assert_check(&v, flags[i].id, KB_PASS);
        assert_true(v.admit);
        *has = false;
        v = evaluate(on, &f, NOW);
        assert_check(&v, flags[i].id, KB_FAIL);
        assert_false(v.admit);
        v = evaluate(off, &f, NOW);
        assert_check(&v, flags[i].id, KB_SKIP);
        assert_true(v.admit);
    }
}

static void key_attributes(void **state)
{
    (void)state;
    static const struct {
        const char *key, *id;
        size_t off;
        enum kb_tri good, bad;
    } attrs[] = {
        {"require-sensitive", "key.sensitive", offsetof(struct kb_key_facts, sensitive),
         KB_TRI_TRUE, KB_TRI_FALSE},
        {"require-not-extractable", "key.not-extractable",
         offsetof(struct kb_key_facts, extractable), KB_TRI_FALSE, KB_TRI_TRUE},
        {"require-never-extractable", "key.never-extractable",
         offsetof(struct kb_key_facts, never_extractable), KB_TRI_TRUE, KB_TRI_FALSE},
        {"require-always-sensitive", "key.always-sensitive",
         offsetof(struct kb_key_facts, always_sensitive), KB_TRI_TRUE, KB_TRI_FALSE},
        {"require-local", "key.local", offsetof(struct kb_key_facts, local), KB_TRI_TRUE,
         KB_TRI_FALSE},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        char on[128], off[128];
        snprintf(on, sizeof on, "[key]\n%s = yes\n", attrs[i].key);
        snprintf(off, sizeof off, "[key]\n%s = no\n", attrs[i].key);
        struct kb_device_facts f = good_device();
        enum kb_tri *got = (enum kb_tri *)((char *)&f.key + attrs[i].off);
        *got = attrs[i].good;
        kb_verdict v = evaluate(on, &f, NOW);
        assert_check(&v, attrs[i].id, KB_PASS);
        assert_true(v.admit);
        *got = attrs[i].bad;
        v = evaluate(on, &f, NOW);
        assert_check(&v, attrs[i].id, KB_FAIL);
        assert_false(v.admit);
        /* what the token did not say is not taken as safe */
        *got = KB_TRI_UNKNOWN;
        v = evaluate(on, &f, NOW);
        assert_check(&v, attrs[i].id, KB_FAIL);
        assert_false(v.admit);
        assert_non_null(strstr(find(&v, attrs[i].id)->observed, "unknown"));
        v = evaluate(off, &f, NOW);
        assert_check(&v, attrs[i].id, KB_SKIP);
        assert_true(v.admit);
    }
}

static void key_algorithm(void **state)
{
    (void)state;
    static const struct {
        const char *algorithms;
        enum kb_key_type type;
        unsigned bits;
        const char *curve;
        bool admit;
    } cases[] = {
        {"rsa-3072+", KB_KEY_RSA, 3072, "", true},
        {"rsa-3072+", KB_KEY_RSA, 4096, "", true},
        {"rsa-3072+", KB_KEY_RSA, 3071, "", false},
        {"rsa-3072+", KB_KEY_RSA, 2048, "", false},
        {"rsa-3072+", KB_KEY_RSA, 0, "", false},
        {"rsa-3072", KB_KEY_RSA, 3072, "", true},
        {"rsa-3072", KB_KEY_RSA, 4096, "", false},
        {"rsa-3072", KB_KEY_RSA, 2048, "", false},
        {"rsa-2048 rsa-4096", KB_KEY_RSA, 3072, "", false},
        {"rsa-2048 rsa-4096", KB_KEY_RSA, 4096, "", true},
        {"ec-p256", KB_KEY_EC, 256, "P-256", true},
        {"ec-p256", KB_KEY_EC, 384, "P-384", false},
        {"ec-p384 ec-p521", KB_KEY_EC, 521, "P-521", true},
        {"ec-p256", KB_KEY_EC, 256, "", false},
        {"ec-p256", KB_KEY_EDDSA, 256, "Ed25519", false},
        {"ed25519", KB_KEY_EDDSA, 256, "Ed25519", true},
        {"ed25519", KB_KEY_EDDSA, 456, "Ed448", false},
        {"ed448", KB_KEY_EDDSA, 456, "Ed448", true},
        /* an RSA rule is about RSA keys only, whatever their size field says */
        {"rsa-1024+", KB_KEY_EC, 256, "P-256", false},
        {"ec-p256 rsa-3072+", KB_KEY_UNKNOWN, 0, "", false},
        {"rsa-2048+", KB_KEY_UNKNOWN, 4096, "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[key]\nalgorithms = %s\n", cases[i].algorithms);
        struct kb_device_facts f = good_device();
        f.key.type = cases[i].type;
        f.key.bits = cases[i].bits;
        snprintf(f.key.curve, sizeof f.key.curve, "%s", cases[i].curve);
        kb_verdict v = evaluate(text, &f, NOW);
        const struct kb_check *c = find(&v, "key.algorithm");
        if (c->status != (cases[i].admit ? KB_PASS : KB_FAIL) || v.admit != cases[i].admit)
            fail_msg("algorithms = %s, key type %d bits %u curve '%s': %s (%s)",
                     cases[i].algorithms, (int)cases[i].type, cases[i].bits, cases[i].curve,
                     kb_status_name(c->status), c->reason);
    }

    struct kb_device_facts f = good_device();
    f.key.type = KB_KEY_RSA;
    f.key.bits = 2048;
    f.key.curve[0] = '\0';
    kb_verdict v = evaluate("[key]\nalgorithms = ec-p256 rsa-3072+\n", &f, NOW);
    const struct kb_check *c = find(&v, "key.algorithm");
    assert_string_equal(c->observed, "rsa-2048");
    assert_string_equal(c->expected, "ec-p256 rsa-3072+");

    v = evaluate("[key]\nalgorithms = ed448 ed25519 ec-p521 rsa-4096\n", &f, NOW);
    assert_string_equal(find(&v, "key.algorithm")->expected, "ed448 ed25519 ec-p521 rsa-4096");

    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "key.algorithm", KB_SKIP);
}

static void alg_rule_match(void **state)
{
    (void)state;
    struct kb_alg_rule at_least = {KB_KEY_RSA, "", 3072, true};
    struct kb_alg_rule exact = {KB_KEY_RSA, "", 3072, false};
    struct kb_key_facts k;
    memset(&k, 0, sizeof k);
    k.type = KB_KEY_RSA;
    k.bits = 3072;
    assert_true(kb_alg_rule_match(&at_least, &k));
    assert_true(kb_alg_rule_match(&exact, &k));
    k.bits = 4096;
    assert_true(kb_alg_rule_match(&at_least, &k));
    assert_false(kb_alg_rule_match(&exact, &k));
    k.bits = 2048;
    assert_false(kb_alg_rule_match(&at_least, &k));
    assert_false(kb_alg_rule_match(&exact, &k));
}

static void cert_absent(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    f.cert.present = false;
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_false(v.admit);
    assert_check(&v, "cert.present", KB_FAIL);
    static const char *const skipped[] = {
        "cert.validity",      "cert.trust",        "cert.ca",
        "cert.eku",           "cert.subject",      "cert.san-uri",
        "cert.min-remaining", "cert.renew-before", "cert.max-lifetime",
        "cert.crl",
    };
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        assert_check(&v, skipped[i], KB_SKIP);
    /* the only failure is the missing certificate */
    assert_int_equal(v.n_failed, 1);
    assert_consistent(&v);

    /* no certificate is a denial even for a policy that asks nothing of it */
    v = evaluate("[admission]\n", &f, NOW);
    assert_false(v.admit);
    assert_check(&v, "cert.present", KB_FAIL);
}

/* Issue 9: a DN cut to 511 bytes matched a glob that the whole DN does not. */
static void cert_subject_is_matched_whole(void **state)
{
    (void)state;
    char dn[600];
    snprintf(dn, sizeof dn, "CN=laptop-1,OU=%0486d,O=Example,C=XX", 0);
    memset(dn + strlen("CN=laptop-1,OU="), 'a', 486);
    assert_int_equal(strlen(dn), 516);
    struct kb_device_facts f = good_device();
    f.cert.subject = dn;
    kb_verdict v = evaluate("[certificate]\nsubject = CN=laptop-*,O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_FAIL);
    assert_false(v.admit);
    /* the observed text is for people: cut, and it says so */
    const struct kb_check *c = find(&v, "cert.subject");
    assert_int_equal(strlen(c->observed), sizeof c->observed - 1);
    assert_string_equal(c->observed + sizeof c->observed - 4, "...");
    v = evaluate("[certificate]\nsubject = CN=laptop-*,O=Example,C=XX\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_PASS);
    assert_true(v.admit);
    /* a DN of 4000 bytes is matched too */
    static char big[4100];
    memset(big, 'b', sizeof big - 1);
    memcpy(big, "CN=", 3);
    memcpy(big + sizeof big - 1 - 10, ",O=Example", 10);
    f.cert.subject = big;
    v = evaluate("[certificate]\nsubject = CN=b*,O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_PASS);
    v = evaluate("[certificate]\nsubject = CN=b*,O=Other\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_FAIL);
}

/* A fact that could not be read in full is an error for the rule that needs it. */
static void unfit_facts_are_errors(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    f.cert.subject = NULL;
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "cert.subject", KB_ERROR);
    assert_false(v.admit);
    assert_consistent(&v);
    /* without a subject rule nothing reads it */
    v = evaluate("[certificate]\nrequire-eku = clientAuth\n", &f, NOW);
    assert_true(v.admit);

    f = good_device();
    f.cert.eku_unfit = true;
    v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "cert.eku", KB_ERROR);
    assert_non_null(strstr(find(&v, "cert.eku")->reason, "cannot be read in full"));
    assert_false(v.admit);
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.eku", KB_SKIP);

    f = good_device();
    f.cert.san_uri_unfit = true;
    v = evaluate(strict_text, &f, NOW);
    assert_check(&v, "cert.san-uri", KB_ERROR);
    assert_false(v.admit);

    f = good_device();
    f.cert.issuer = NULL;
    v = evaluate(strict_text, &f, NOW);
    assert_non_null(strstr(find(&v, "cert.trust")->observed, "cannot be read in full"));
}

/* Issue 9: a device certificate with CA:TRUE was admitted. */
static void cert_ca_device(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.ca", KB_PASS);
    f.cert.ca = KB_TRI_TRUE;
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.ca", KB_FAIL);
    assert_non_null(strstr(find(&v, "cert.ca")->reason, "allow-ca-device-cert"));
    assert_false(v.admit);
    assert_consistent(&v);
    v = evaluate(strict_text, &f, NOW);
    assert_false(v.admit);
    /* the baseline denies it too */
    kb_policy *b = kb_policy_baseline();
    kb_policy_evaluate(b, &f, NOW, &v);
    kb_policy_free(b);
    assert_check(&v, "cert.ca", KB_FAIL);
    v = evaluate("[certificate]\nallow-ca-device-cert = yes\n", &f, NOW);
    assert_check(&v, "cert.ca", KB_SKIP);
    assert_true(v.admit);
    v = evaluate("[certificate]\nallow-ca-device-cert = no\n", &f, NOW);
    assert_check(&v, "cert.ca", KB_FAIL);
    /* an unreadable basicConstraints cannot be shown not to be a CA's */
    f.cert.ca = KB_TRI_UNKNOWN;
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.ca", KB_ERROR);
    assert_false(v.admit);
}

static void cert_validity_window(void **state)
{
    (void)state;
    /* no duration rules here: only the window decides */
    const char *text = "[admission]\n";
    struct kb_device_facts f = good_device();
    f.cert.not_before = NOW - 5 * DAY;
    f.cert.not_after = NOW + 5 * DAY;
    static const struct {
        long long now;
        enum kb_status want;
    } cases[] = {
        {NOW, KB_PASS},
        {NOW - 5 * DAY, KB_PASS},       /* now == not_before */
        {NOW + 5 * DAY, KB_PASS},       /* now == not_after */
        {NOW - 5 * DAY - SEC, KB_FAIL}, /* one second before */
        {NOW + 5 * DAY + SEC, KB_FAIL}, /* one second after */
        {NOW + 5000 * DAY, KB_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kb_verdict v = evaluate(text, &f, cases[i].now);
        assert_check(&v, "cert.validity", cases[i].want);
        assert_true(v.admit == (cases[i].want == KB_PASS));
    }
    kb_verdict v = evaluate(text, &f, NOW - 5 * DAY - SEC);
    assert_non_null(strstr(find(&v, "cert.validity")->reason, "not valid yet"));
    v = evaluate(text, &f, NOW + 5 * DAY + SEC);
    assert_non_null(strstr(find(&v, "cert.validity")->reason, "expired"));
}

static void cert_trust(void **state)
{
    (void)state;
    const char *text = "[certificate]\ntrust = ca.pem\n";
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.trust", KB_PASS);
    assert_non_null(strstr(find(&v, "cert.trust")->expected, "/etc/kb/ca.pem"));
    assert_true(v.admit);

    f.cert.chain = KB_CHAIN_FAIL;
    snprintf(f.cert.chain_detail, sizeof f.cert.chain_detail, "signer not found");
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.trust", KB_FAIL);
    assert_non_null(strstr(find(&v, "cert.trust")->reason, "signer not found"));
    assert_false(v.admit);

    /* fail closed: could not check is not fine */
    f.cert.chain = KB_CHAIN_ERROR;
    snprintf(f.cert.chain_detail, sizeof f.cert.chain_detail, "ca.pem: permission denied");
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.trust", KB_ERROR);
    assert_non_null(strstr(find(&v, "cert.trust")->reason, "ca.pem: permission denied"));
    assert_false(v.admit);
    assert_consistent(&v);

    /* the policy names anchors but nobody checked against them */
    f.cert.chain = KB_CHAIN_UNCHECKED;
    f.cert.chain_detail[0] = '\0';
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.trust", KB_ERROR);
    assert_false(v.admit);

    /* no anchors in the policy: nothing to check */
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.trust", KB_SKIP);
    assert_true(v.admit);
}

static void cert_eku(void **state)
{
    (void)state;
    const char *text = "[certificate]\nrequire-eku = clientAuth\n";
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.eku", KB_PASS);

    snprintf(f.cert.eku[0], sizeof f.cert.eku[0], SERVER_AUTH);
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.eku", KB_FAIL);
    assert_non_null(strstr(find(&v, "cert.eku")->reason, "clientAuth"));
    assert_string_equal(find(&v, "cert.eku")->observed, "serverAuth");
    assert_false(v.admit);

    /* among others */
    snprintf(f.cert.eku[1], sizeof f.cert.eku[1], CLIENT_AUTH);
    f.cert.n_eku = 2;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.eku", KB_PASS);

    /* anyExtendedKeyUsage stands for every purpose */
    snprintf(f.cert.eku[0], sizeof f.cert.eku[0], ANY_EKU);
    f.cert.n_eku = 1;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.eku", KB_PASS);
    v = evaluate("[certificate]\nrequire-eku = clientAuth 1.2.3.4\n", &f, NOW);
    assert_check(&v, "cert.eku", KB_PASS);

    /* no EKU list in the certificate */
    f.cert.n_eku = 0;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.eku", KB_FAIL);
    assert_string_equal(find(&v, "cert.eku")->observed, "none");

    /* every required purpose, not one of them */
    f = good_device();
    v = evaluate("[certificate]\nrequire-eku = clientAuth 1.2.3.4\n", &f, NOW);
    assert_check(&v, "cert.eku", KB_FAIL);
    assert_non_null(strstr(find(&v, "cert.eku")->reason, "1.2.3.4"));
    snprintf(f.cert.eku[1], sizeof f.cert.eku[1], "1.2.3.4");
    f.cert.n_eku = 2;
    v = evaluate("[certificate]\nrequire-eku = clientAuth 1.2.3.4\n", &f, NOW);
    assert_check(&v, "cert.eku", KB_PASS);

    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.eku", KB_SKIP);
}

static void cert_subject_and_san(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate("[certificate]\nsubject = CN=laptop-*,O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_PASS);
    v = evaluate("[certificate]\nsubject = CN=laptop-42\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_FAIL); /* a prefix is not a match */
    v = evaluate("[certificate]\nsubject = CN=laptop-*\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_PASS); /* '*' runs to the end of the DN */
    v = evaluate("[certificate]\nsubject = CN=laptop-??,O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_PASS);
    v = evaluate("[certificate]\nsubject = CN=laptop-?,O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_FAIL);
    assert_false(v.admit);
    /* An escaped comma inside the CN is not an RDN separator: it cannot fake ",O=Example". */
    f.cert.subject = "CN=laptop-x\\,O=Example";
    v = evaluate("[certificate]\nsubject = CN=laptop-*,O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_FAIL);
    v = evaluate("[certificate]\nsubject = CN=laptop-x?O=Example\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_PASS); /* '?' matches the escaped character */
    f.cert.subject = "CN=laptop-42,O=Example";
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.subject", KB_SKIP);

    const char *san = "[certificate]\nsan-uri = urn:example:device:*\n";
    v = evaluate(san, &f, NOW);
    assert_check(&v, "cert.san-uri", KB_PASS);
    /* any one of the URI names */
    snprintf(f.cert.san_uri[0], sizeof f.cert.san_uri[0], "https://example.com/device/42");
    snprintf(f.cert.san_uri[1], sizeof f.cert.san_uri[1], "urn:example:device:42");
    f.cert.n_san_uri = 2;
    v = evaluate(san, &f, NOW);
    assert_check(&v, "cert.san-uri", KB_PASS);
    f.cert.n_san_uri = 1;
    v = evaluate(san, &f, NOW);
    assert_check(&v, "cert.san-uri", KB_FAIL);
    assert_false(v.admit);
    f.cert.n_san_uri = 0;
    v = evaluate(san, &f, NOW);
    assert_check(&v, "cert.san-uri", KB_FAIL);
    assert_string_equal(find(&v, "cert.san-uri")->observed, "no URI name");
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.san-uri", KB_SKIP);
}

static void cert_min_remaining(void **state)
{
    (void)state;
    const char *text = "[certificate]\nmin-remaining = 30d\n";
    struct kb_device_facts f = good_device();
    f.cert.not_after = NOW + 30 * DAY;
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.min-remaining", KB_PASS);
    assert_true(v.admit);
    f.cert.not_after = NOW + 30 * DAY - SEC;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.min-remaining", KB_FAIL);
    assert_false(v.admit);
    f.cert.not_after = NOW + 80 * DAY;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.min-remaining", KB_PASS);
    /* the same certificate, later */
    v = evaluate(text, &f, NOW + 50 * DAY + SEC);
    assert_check(&v, "cert.min-remaining", KB_FAIL);
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.min-remaining", KB_SKIP);
}

static void cert_renew_before(void **state)
{
    (void)state;
    const char *text = "[certificate]\nrenew-before = 30d\n";
    struct kb_device_facts f = good_device();
    f.cert.not_after = NOW + 30 * DAY;
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.renew-before", KB_WARN);
    /* a warning does not deny */
    assert_true(v.admit);
    assert_int_equal(v.n_warned, 1);
    assert_int_equal(v.n_failed, 0);
    f.cert.not_after = NOW + 30 * DAY + SEC;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.renew-before", KB_PASS);
    assert_int_equal(v.n_warned, 0);
    f.cert.not_after = NOW + 2 * DAY;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.renew-before", KB_WARN);
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.renew-before", KB_SKIP);
}

static void cert_max_lifetime(void **state)
{
    (void)state;
    const char *text = "[certificate]\nmax-lifetime = 90d\n";
    struct kb_device_facts f = good_device();
    f.cert.not_before = NOW - 10 * DAY;
    f.cert.not_after = f.cert.not_before + 90 * DAY;
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.max-lifetime", KB_PASS);
    f.cert.not_after = f.cert.not_before + 90 * DAY + SEC;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.max-lifetime", KB_FAIL);
    assert_false(v.admit);
    f.cert.not_after = f.cert.not_before + 1 * DAY + 1 * HOUR;
    v = evaluate(text, &f, NOW - 9 * DAY);
    assert_check(&v, "cert.max-lifetime", KB_PASS);
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.max-lifetime", KB_SKIP);
}

static void cert_crl(void **state)
{
    (void)state;
    const char *text = "[certificate]\ntrust = ca.pem\ncrl = ca.crl\n";
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.crl", KB_PASS);
    assert_true(v.admit);

    f.cert.revoked = KB_TRI_TRUE;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.crl", KB_FAIL);
    assert_false(v.admit);

    /* fail closed: a CRL that could not be read is a denial, with its reason */
    f.cert.revoked = KB_TRI_UNKNOWN;
    f.cert.crl_error = true;
    snprintf(f.cert.crl_detail, sizeof f.cert.crl_detail, "the CRL is out of date");
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.crl", KB_ERROR);
    assert_non_null(strstr(find(&v, "cert.crl")->reason, "the CRL is out of date"));
    assert_false(v.admit);
    /* an error wins even over a "not revoked" that came with it */
    f.cert.revoked = KB_TRI_FALSE;
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.crl", KB_ERROR);
    assert_false(v.admit);
    /* nobody looked */
    f.cert.crl_error = false;
    f.cert.revoked = KB_TRI_UNKNOWN;
    f.cert.crl_detail[0] = '\0';
    v = evaluate(text, &f, NOW);
    assert_check(&v, "cert.crl", KB_ERROR);
    assert_false(v.admit);

    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "cert.crl", KB_SKIP);
    assert_true(v.admit);
}

static void endpoint_listed(void **state)
{
    (void)state;
    const char *listed = "[endpoint \"api.example.com:443\"]\n[endpoint \"db.example.com\"]\n"
                         "[endpoint \"[::1]:8443\"]\n";
    const char *unlisted_ok = "[admission]\nallow-unlisted-endpoints = yes\n"
                              "[endpoint \"api.example.com:443\"]\n";
    struct kb_device_facts f = good_device();

    /* no endpoint given: nothing to check */
    kb_verdict v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_SKIP);
    assert_true(v.admit);

    f.endpoint.given = true;
    snprintf(f.endpoint.host, sizeof f.endpoint.host, "api.example.com");
    f.endpoint.port = 443;
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_PASS);
    assert_true(v.admit);
    snprintf(f.endpoint.host, sizeof f.endpoint.host, "API.Example.Com");
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_PASS);

    /* another port of a host listed with a port */
    f.endpoint.port = 8443;
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_FAIL);
    assert_false(v.admit);
    assert_string_equal(find(&v, "endpoint.listed")->observed, "API.Example.Com:8443");
    v = evaluate(unlisted_ok, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_PASS);
    assert_true(v.admit);

    /* any port of a host listed without one */
    snprintf(f.endpoint.host, sizeof f.endpoint.host, "db.example.com");
    f.endpoint.port = 5432;
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_PASS);

    snprintf(f.endpoint.host, sizeof f.endpoint.host, "evil.example.com");
    f.endpoint.port = 443;
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_FAIL);
    assert_false(v.admit);
    v = evaluate(unlisted_ok, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_PASS);
    assert_true(v.admit);
    /* a policy without endpoints lists none */
    v = evaluate("[admission]\n", &f, NOW);
    assert_check(&v, "endpoint.listed", KB_FAIL);

    /* IPv6 */
    snprintf(f.endpoint.host, sizeof f.endpoint.host, "::1");
    f.endpoint.port = 8443;
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_PASS);
    assert_string_equal(find(&v, "endpoint.listed")->observed, "[::1]:8443");
    f.endpoint.port = 443;
    v = evaluate(listed, &f, NOW);
    assert_check(&v, "endpoint.listed", KB_FAIL);
}

static void audit_mode(void **state)
{
    (void)state;
    const char *text = "[admission]\nmode = audit\n[key]\nrequire-local = yes\n";
    struct kb_device_facts f = good_device();
    f.key.extractable = KB_TRI_TRUE;
    f.key.local = KB_TRI_FALSE;
    kb_verdict v = evaluate(text, &f, NOW);
    assert_int_equal(v.mode, KB_MODE_AUDIT);
    assert_true(v.admit);
    assert_true(v.would_deny);
    assert_check(&v, "key.not-extractable", KB_FAIL);
    assert_check(&v, "key.local", KB_FAIL);
    assert_check(&v, "key.sensitive", KB_PASS);
    assert_int_equal(v.n_failed, 2);
    assert_consistent(&v);

    /* errors are would-be denials too */
    f = good_device();
    f.cert.chain = KB_CHAIN_ERROR;
    v = evaluate("[admission]\nmode = audit\n[certificate]\ntrust = ca.pem\n", &f, NOW);
    assert_true(v.admit);
    assert_true(v.would_deny);
    assert_check(&v, "cert.trust", KB_ERROR);

    /* a good device in audit mode: nothing would be denied */
    f = good_device();
    v = evaluate(text, &f, NOW);
    assert_true(v.admit);
    assert_false(v.would_deny);
    assert_int_equal(v.n_failed, 0);

    /* a warning is not a would-be denial */
    f.cert.not_after = NOW + DAY;
    v = evaluate("[admission]\nmode = audit\n[certificate]\nrenew-before = 7d\n", &f, NOW);
    assert_check(&v, "cert.renew-before", KB_WARN);
    assert_false(v.would_deny);

    /* the same bad facts in enforce mode */
    f = good_device();
    f.key.extractable = KB_TRI_TRUE;
    v = evaluate("[admission]\nmode = enforce\n", &f, NOW);
    assert_false(v.admit);
    assert_false(v.would_deny);
}

static void off_mode(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    f.key.extractable = KB_TRI_TRUE;
    f.cert.present = false;
    kb_verdict v;
    memset(&v, 0xa5, sizeof v); /* nothing from before survives */
    kb_policy *p = policy("[admission]\nmode = off\n[key]\nrequire-local = yes\n");
    kb_policy_evaluate(p, &f, NOW, &v);
    kb_policy_free(p);
    assert_int_equal(v.mode, KB_MODE_OFF);
    assert_true(v.admit);
    assert_false(v.would_deny);
    assert_int_equal(v.n, 0);
    assert_int_equal(v.n_failed, 0);
    assert_int_equal(v.n_warned, 0);
}

static void verdict_starts_clean(void **state)
{
    (void)state;
    struct kb_device_facts bad = good_device();
    bad.key.extractable = KB_TRI_TRUE;
    struct kb_device_facts good = good_device();
    kb_policy *p = policy(strict_text);
    kb_verdict v;
    kb_policy_evaluate(p, &bad, NOW, &v);
    assert_false(v.admit);
    kb_policy_evaluate(p, &good, NOW, &v);
    assert_true(v.admit);
    assert_int_equal(v.n_failed, 0);
    assert_int_equal(v.n, sizeof all_ids / sizeof all_ids[0]);
    kb_policy_free(p);
}

static void baseline(void **state)
{
    (void)state;
    kb_policy *p = kb_policy_baseline();
    assert_non_null(p);
    assert_null(p->path);
    assert_int_equal(p->mode, KB_MODE_ENFORCE);

    struct kb_device_facts f = good_device();
    f.endpoint.given = true;
    snprintf(f.endpoint.host, sizeof f.endpoint.host, "anything.example.com");
    f.endpoint.port = 443;
    kb_verdict v;
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_true(v.admit);
    assert_consistent(&v);
    assert_check(&v, "key.sensitive", KB_PASS);
    assert_check(&v, "key.not-extractable", KB_PASS);
    assert_check(&v, "key.never-extractable", KB_PASS);
    assert_check(&v, "cert.validity", KB_PASS);
    assert_check(&v, "cert.eku", KB_PASS);
    assert_check(&v, "endpoint.listed", KB_PASS);

    f = good_device();
    f.key.extractable = KB_TRI_TRUE;
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_false(v.admit);
    assert_check(&v, "key.not-extractable", KB_FAIL);

    f = good_device();
    f.key.sensitive = KB_TRI_FALSE;
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_false(v.admit);
    assert_check(&v, "key.sensitive", KB_FAIL);

    f = good_device();
    f.key.never_extractable = KB_TRI_FALSE;
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_false(v.admit);
    assert_check(&v, "key.never-extractable", KB_FAIL);

    f = good_device();
    snprintf(f.cert.eku[0], sizeof f.cert.eku[0], SERVER_AUTH);
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_false(v.admit);
    assert_check(&v, "cert.eku", KB_FAIL);

    f = good_device();
    f.cert.not_after = NOW - SEC;
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_false(v.admit);
    assert_check(&v, "cert.validity", KB_FAIL);

    f = good_device();
    f.cert.present = false;
    kb_policy_evaluate(p, &f, NOW, &v);
    assert_false(v.admit);
    kb_policy_free(p);
}

static void fail_closed_on_errors(void **state)
{
    (void)state;
    /* Every error denies, in enforce mode, whatever else passed. */
    struct kb_device_facts f = good_device();
    f.cert.chain = KB_CHAIN_ERROR;
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_false(v.admit);
    assert_check(&v, "cert.trust", KB_ERROR);
    assert_int_equal(v.n_failed, 1);

    f = good_device();
    f.cert.crl_error = true;
    f.cert.revoked = KB_TRI_UNKNOWN;
    v = evaluate(strict_text, &f, NOW);
    assert_false(v.admit);
    assert_check(&v, "cert.crl", KB_ERROR);
    assert_int_equal(v.n_failed, 1);

    f = good_device();
    f.key.sensitive = KB_TRI_UNKNOWN;
    f.key.extractable = KB_TRI_UNKNOWN;
    v = evaluate(strict_text, &f, NOW);
    assert_false(v.admit);
    assert_check(&v, "key.sensitive", KB_FAIL);
    assert_check(&v, "key.not-extractable", KB_FAIL);
}

static const char *json_str(json_object *o, const char *key)
{
    json_object *j;
    if (!json_object_object_get_ex(o, key, &j))
        fail_msg("no key %s in %s", key, json_object_to_json_string(o));
    assert_true(json_object_is_type(j, json_type_string));
    return json_object_get_string(j);
}

static void verdict_json(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    f.key.local = KB_TRI_FALSE;
    f.cert.not_after = NOW + 40 * DAY; /* renew-before 45d: a warning */
    kb_verdict v = evaluate(strict_text, &f, NOW);
    assert_false(v.admit);

    json_object *o = kb_verdict_json(&v);
    assert_non_null(o);
    assert_string_equal(json_str(o, "decision"), "deny");
    assert_string_equal(json_str(o, "mode"), "enforce");
    json_object *j;
    assert_true(json_object_object_get_ex(o, "would_deny", &j));
    assert_true(json_object_is_type(j, json_type_boolean));
    assert_false(json_object_get_boolean(j));
    assert_true(json_object_object_get_ex(o, "checks", &j));
    assert_true(json_object_is_type(j, json_type_array));
    assert_int_equal(json_object_array_length(j), v.n);
    assert_int_equal(json_object_object_length(o), 4);
    for (size_t i = 0; i < v.n; i++) {
        json_object *c = json_object_array_get_idx(j, i);
        assert_true(json_object_is_type(c, json_type_object));
        assert_int_equal(json_object_object_length(c), 5);
        assert_string_equal(json_str(c, "id"), v.checks[i].id);
        assert_string_equal(json_str(c, "status"), kb_status_name(v.checks[i].status));
        assert_string_equal(json_str(c, "observed"), v.checks[i].observed);
        assert_string_equal(json_str(c, "expected"), v.checks[i].expected);
        assert_string_equal(json_str(c, "reason"), v.checks[i].reason);
    }
    /* the statuses are the documented words */
    bool seen_fail = false, seen_warn = false, seen_pass = false, seen_skip = false;
    for (size_t i = 0; i < v.n; i++) {
        const char *s = json_str(json_object_array_get_idx(j, i), "status");
        seen_fail = seen_fail || strcmp(s, "fail") == 0;
        seen_warn = seen_warn || strcmp(s, "warn") == 0;
        seen_pass = seen_pass || strcmp(s, "pass") == 0;
        seen_skip = seen_skip || strcmp(s, "skip") == 0;
    }
    assert_true(seen_fail && seen_warn && seen_pass && seen_skip);
    json_object_put(o);

    /* audit */
    f = good_device();
    f.key.local = KB_TRI_FALSE;
    v = evaluate("[admission]\nmode = audit\n[key]\nrequire-local = yes\n", &f, NOW);
    o = kb_verdict_json(&v);
    assert_string_equal(json_str(o, "decision"), "admit");
    assert_string_equal(json_str(o, "mode"), "audit");
    assert_true(json_object_object_get_ex(o, "would_deny", &j));
    assert_true(json_object_get_boolean(j));
    json_object_put(o);

    /* admitted in enforce mode: nothing would be denied */
    f = good_device();
    v = evaluate(strict_text, &f, NOW);
    o = kb_verdict_json(&v);
    assert_string_equal(json_str(o, "decision"), "admit");
    assert_true(json_object_object_get_ex(o, "would_deny", &j));
    assert_false(json_object_get_boolean(j));
    json_object_put(o);

    /* off: no checks, an empty list */
    v = evaluate("[admission]\nmode = off\n", &f, NOW);
    o = kb_verdict_json(&v);
    assert_string_equal(json_str(o, "decision"), "admit");
    assert_string_equal(json_str(o, "mode"), "off");
    assert_true(json_object_object_get_ex(o, "checks", &j));
    assert_int_equal(json_object_array_length(j), 0);
    json_object_put(o);

    assert_string_equal(kb_status_name(KB_PASS), "pass");
    assert_string_equal(kb_status_name(KB_FAIL), "fail");
    assert_string_equal(kb_status_name(KB_WARN), "warn");
    assert_string_equal(kb_status_name(KB_SKIP), "skip");
    assert_string_equal(kb_status_name(KB_ERROR), "error");
}

static void verdict_summary(void **state)
{
    (void)state;
    char line[512];
    struct kb_device_facts f = good_device();
    kb_verdict v = evaluate(strict_text, &f, NOW);
    kb_verdict_summary(&v, line, sizeof line);
    assert_string_equal(line, "ADMITTED");

    f.key.local = KB_TRI_FALSE;
    f.cert.chain = KB_CHAIN_ERROR;
    v = evaluate(strict_text, &f, NOW);
    kb_verdict_summary(&v, line, sizeof line);
    assert_true(strncmp(line, "DENIED", 6) == 0);
    assert_non_null(strstr(line, "key.local"));
    assert_non_null(strstr(line, "cert.trust"));
    assert_null(strstr(line, "key.sensitive"));

    v = evaluate("[admission]\nmode = audit\n[key]\nrequire-local = yes\n", &f, NOW);
    kb_verdict_summary(&v, line, sizeof line);
    assert_true(strncmp(line, "ADMITTED", 8) == 0);
    assert_non_null(strstr(line, "audit"));
    assert_non_null(strstr(line, "key.local"));

    f = good_device();
    f.cert.not_after = NOW + DAY;
    v = evaluate("[certificate]\nrenew-before = 7d\n", &f, NOW);
    kb_verdict_summary(&v, line, sizeof line);
    assert_string_equal(line, "ADMITTED with warnings");

    v = evaluate("[admission]\nmode = off\n", &f, NOW);
    kb_verdict_summary(&v, line, sizeof line);
    assert_non_null(strstr(line, "ADMITTED"));
    assert_non_null(strstr(line, "off"));
}

/* A fake attester, as src/attest/attester.c's callback fills the fact: what the TPM of
 * the test's kind of key would prove. */
enum fake_key { FAKE_GENERATED, FAKE_IMPORTED, FAKE_FOREIGN_TPM, FAKE_WRONG_NONCE, FAKE_SOFTHSM };

static void fake_attester(enum fake_key kind, long long now, struct kb_attest_facts *a)
{
    memset(a, 0, sizeof *a);
    a->checked = true;
    a->at = now;
    snprintf(a->tpm_manufacturer, sizeof a->tpm_manufacturer, "id:00001014");
    snprintf(a->tpm_model, sizeof a->tpm_model, "swtpm");
    snprintf(a->tpm_version, sizeof a->tpm_version, "id:20191023");
    snprintf(a->ek_issuer, sizeof a->ek_issuer, "CN=swtpm-localca");
    switch (kind) {
    case FAKE_GENERATED:
        a->attested = a->fixed_tpm = a->fixed_parent = a->sensitive_data_origin = true;
        return;
    case FAKE_IMPORTED: /* the TPM's own attributes, whatever the sqlite row says */
        snprintf(a->reason, sizeof a->reason, "fixedTPM, fixedParent, sensitiveDataOrigin clear");
        return;
    case FAKE_FOREIGN_TPM:
        a->fixed_tpm = a->fixed_parent = a->sensitive_data_origin = true;
        snprintf(a->reason, sizeof a->reason, "the attested key is not the key of the request");
        return;
    case FAKE_WRONG_NONCE:
        a->fixed_tpm = a->fixed_parent = a->sensitive_data_origin = true;
        snprintf(a->reason, sizeof a->reason, "extraData is not this verifier's nonce");
        return;
    case FAKE_SOFTHSM:
        memset(a, 0, sizeof *a);
        a->checked = true;
        snprintf(a->reason, sizeof a->reason,
                 "token laptop-42 (SoftHSM project) cannot attest: not a tpm2-pkcs11 token");
        return;
    }
}

static const char attest_text[] = "[key]\n"
                                  "require-never-extractable = yes\n"
                                  "require-local = yes\n"
                                  "require-attestation = yes\n"
                                  "tpm-ca = ek-ca.pem\n";

static void attestation_rule(void **state)
{
    (void)state;
    struct kb_device_facts f = good_device();
    /* Required but never tried (a caller without an attester): an error, a denial. */
    kb_verdict v = evaluate(attest_text, &f, NOW);
    assert_consistent(&v);
    assert_false(v.admit);
    assert_check(&v, "key.attested", KB_ERROR);

    fake_attester(FAKE_GENERATED, NOW, &f.attest);
    v = evaluate(attest_text, &f, NOW);
    assert_consistent(&v);
    assert_true(v.admit);
    assert_check(&v, "key.attested", KB_PASS);
    const struct kb_check *c = find(&v, "key.attested");
    assert_non_null(strstr(c->observed, "fixedTPM fixedParent sensitiveDataOrigin"));
    assert_non_null(strstr(c->observed, "id:00001014 swtpm id:20191023"));
    assert_non_null(strstr(c->reason, "CN=swtpm-localca"));

    /* The imported key with its store row edited: every token fact says local and never
     * extractable, and only the TPM's word denies it, naming the attribute. */
    f = good_device();
    fake_attester(FAKE_IMPORTED, NOW, &f.attest);
    v = evaluate(attest_text, &f, NOW);
    assert_consistent(&v);
    assert_false(v.admit);
    assert_int_equal(v.n_failed, 1);
    assert_check(&v, "key.local", KB_PASS);
    assert_check(&v, "key.never-extractable", KB_PASS);
    assert_check(&v, "key.attested", KB_FAIL);
    c = find(&v, "key.attested");
    assert_non_null(strstr(c->reason, "fixedTPM, fixedParent, sensitiveDataOrigin clear"));
    assert_string_equal(c->observed, "fixedTPM, fixedParent, sensitiveDataOrigin clear");
    char summary[512];
    kb_verdict_summary(&v, summary, sizeof summary);
    assert_string_equal(summary, "DENIED: key.attested");
    /* ...and a policy that does not ask the TPM admits it: the point of the rule. */
    v = evaluate("[key]\nrequire-never-extractable = yes\nrequire-local = yes\n", &f, NOW);
    assert_true(v.admit);
    assert_check(&v, "key.attested", KB_SKIP);

    static const enum fake_key denied[] = {FAKE_FOREIGN_TPM, FAKE_WRONG_NONCE, FAKE_SOFTHSM};
    static const char *const why[] = {"not the key of the request", "nonce",
                                      "cannot attest: not a tpm2-pkcs11 token"};
    for (size_t i = 0; i < 3; i++) {
        f = good_device();
        fake_attester(denied[i], NOW, &f.attest);
        v = evaluate(attest_text, &f, NOW);
        assert_consistent(&v);
        assert_false(v.admit);
        assert_check(&v, "key.attested", KB_FAIL);
        assert_non_null(strstr(find(&v, "key.attested")->reason, why[i]));
    }

    /* attested without the three bits is not a pass: the rule does not trust one flag. */
    f = good_device();
    fake_attester(FAKE_GENERATED, NOW, &f.attest);
    f.attest.sensitive_data_origin = false;
    v = evaluate(attest_text, &f, NOW);
    assert_false(v.admit);
    assert_check(&v, "key.attested", KB_FAIL);
    assert_non_null(strstr(find(&v, "key.attested")->observed, "fixedTPM fixedParent"));
    /* A reason that is a sentence of its own gets one full stop. */
    f = good_device();
    fake_attester(FAKE_IMPORTED, NOW, &f.attest);
    snprintf(f.attest.reason, sizeof f.attest.reason, "The certificate issuer is unknown. ");
    v = evaluate(attest_text, &f, NOW);
    assert_non_null(
        strstr(find(&v, "key.attested")->reason, ": The certificate issuer is unknown."));
    assert_null(strstr(find(&v, "key.attested")->reason, "unknown. ."));
    assert_string_equal(find(&v, "key.attested")->observed, "The certificate issuer is unknown");
    /* No reason given: still a denial, and it says so. */
    f = good_device();
    f.attest.checked = true;
    v = evaluate(attest_text, &f, NOW);
    assert_check(&v, "key.attested", KB_FAIL);
    assert_non_null(strstr(find(&v, "key.attested")->reason, "no reason given"));

    /* Audit mode admits and marks it; off evaluates nothing. */
    f = good_device();
    fake_attester(FAKE_IMPORTED, NOW, &f.attest);
    v = evaluate("[admission]\nmode = audit\n[key]\nrequire-attestation = yes\ntpm-ca = a.pem\n",
                 &f, NOW);
    assert_true(v.admit);
    assert_true(v.would_deny);
    v = evaluate("[admission]\nmode = off\n[key]\nrequire-attestation = yes\ntpm-ca = a.pem\n", &f,
                 NOW);
    assert_true(v.admit);
    assert_int_equal(v.n, 0);
}

static void attestation_rendering(void **state)
{
    (void)state;
    struct kb_attest_facts a;
    memset(&a, 0, sizeof a);
    char text[700];
    /* Not asked for: JSON null, no text line. */
    assert_null(kb_attest_json(&a));
    kb_attest_text(&a, text, sizeof text);
    assert_string_equal(text, "");

    fake_attester(FAKE_GENERATED, NOW, &a);
    json_object *o = kb_attest_json(&a);
    assert_non_null(o);
    json_object *x;
    assert_true(json_object_object_get_ex(o, "attested", &x));
    assert_true(json_object_get_boolean(x));
    assert_true(json_object_object_get_ex(o, "reason", &x));
    assert_null(x);
    static const char *const bools[] = {"fixed_tpm", "fixed_parent", "sensitive_data_origin"};
    for (size_t i = 0; i < 3; i++) {
        assert_true(json_object_object_get_ex(o, bools[i], &x));
        assert_true(json_object_get_boolean(x));
    }
    assert_true(json_object_object_get_ex(o, "tpm_manufacturer", &x));
    assert_string_equal(json_object_get_string(x), "id:00001014");
    assert_true(json_object_object_get_ex(o, "tpm_model", &x));
    assert_string_equal(json_object_get_string(x), "swtpm");
    assert_true(json_object_object_get_ex(o, "tpm_version", &x));
    assert_string_equal(json_object_get_string(x), "id:20191023");
    assert_true(json_object_object_get_ex(o, "ek_issuer", &x));
    assert_string_equal(json_object_get_string(x), "CN=swtpm-localca");
    assert_true(json_object_object_get_ex(o, "at", &x));
    assert_string_equal(json_object_get_string(x), "2023-11-14T22:13:20Z");
    json_object_put(o);
    kb_attest_text(&a, text, sizeof text);
    assert_string_equal(text, "yes (fixedTPM fixedParent sensitiveDataOrigin; TPM id:00001014 "
                              "swtpm id:20191023)");

    fake_attester(FAKE_IMPORTED, NOW, &a);
    o = kb_attest_json(&a);
    assert_true(json_object_object_get_ex(o, "attested", &x));
    assert_false(json_object_get_boolean(x));
    assert_true(json_object_object_get_ex(o, "reason", &x));
    assert_string_equal(json_object_get_string(x),
                        "fixedTPM, fixedParent, sensitiveDataOrigin clear");
    assert_true(json_object_object_get_ex(o, "fixed_tpm", &x));
    assert_false(json_object_get_boolean(x));
    json_object_put(o);
    kb_attest_text(&a, text, sizeof text);
    assert_string_equal(text, "no: fixedTPM, fixedParent, sensitiveDataOrigin clear");

    /* attested with a bit missing renders as not attested, like the rule. */
    fake_attester(FAKE_GENERATED, NOW, &a);
    a.fixed_parent = false;
    o = kb_attest_json(&a);
    assert_true(json_object_object_get_ex(o, "attested", &x));
    assert_false(json_object_get_boolean(x));
    json_object_put(o);

    /* The verdict's text names the check and its reason. */
    struct kb_device_facts f = good_device();
    fake_attester(FAKE_IMPORTED, NOW, &f.attest);
    kb_verdict v = evaluate(attest_text, &f, NOW);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    kb_verdict_print(out, &v, false);
    fclose(out);
    assert_non_null(strstr(buf, "[FAIL]  key.attested"));
    assert_non_null(strstr(buf, "fixedTPM, fixedParent, sensitiveDataOrigin clear"));
    assert_non_null(strstr(buf, "Decision: DENIED: key.attested"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_device_is_admitted),
        cmocka_unit_test(check_ids_are_unique),
        cmocka_unit_test(token_allow),
        cmocka_unit_test(token_glob_corner_cases),
        cmocka_unit_test(token_deny_serial),
        cmocka_unit_test(token_flags),
        cmocka_unit_test(key_attributes),
        cmocka_unit_test(key_algorithm),
        cmocka_unit_test(alg_rule_match),
        cmocka_unit_test(cert_absent),
        cmocka_unit_test(cert_validity_window),
        cmocka_unit_test(cert_trust),
        cmocka_unit_test(cert_eku),
        cmocka_unit_test(cert_subject_and_san),
        cmocka_unit_test(cert_min_remaining),
        cmocka_unit_test(cert_renew_before),
        cmocka_unit_test(cert_max_lifetime),
        cmocka_unit_test(cert_crl),
        cmocka_unit_test(endpoint_listed),
        cmocka_unit_test(audit_mode),
        cmocka_unit_test(off_mode),
        cmocka_unit_test(verdict_starts_clean),
        cmocka_unit_test(baseline),
        cmocka_unit_test(fail_closed_on_errors),
        cmocka_unit_test(verdict_json),
        cmocka_unit_test(attestation_rule),
        cmocka_unit_test(attestation_rendering),
        cmocka_unit_test(verdict_summary),
        cmocka_unit_test(cert_subject_is_matched_whole),
        cmocka_unit_test(unfit_facts_are_errors),
        cmocka_unit_test(cert_ca_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
