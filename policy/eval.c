/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <fnmatch.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval.h"
#include "src/util/hostport.h"

const char *kb_status_name(enum kb_status s)
{
    static const char *const names[] = {"pass", "fail", "warn", "skip", "error"};
    return names[s];
}

/* Ends a text that snprintf cut with "...". */
static void mark_cut(char *text, size_t size)
{
    memcpy(text + size - 4, "...", 4);
}

static struct kb_check *add(kb_verdict *v, const char *id, enum kb_status status,
                            const char *observed, const char *expected, const char *fmt, ...)
    KB_PRINTF(6, 7);
static struct kb_check *add(kb_verdict *v, const char *id, enum kb_status status,
                            const char *observed, const char *expected, const char *fmt, ...)
{
    if (v->n == KB_MAX_CHECKS) {
        /* A check that cannot be recorded still counts: fail closed. */
        v->n_failed++;
        return NULL;
    }
    struct kb_check *c = &v->checks[v->n++];
    snprintf(c->id, sizeof c->id, "%s", id);
    c->status = status;
    /* These are for people; a text that is cut says so. The rules saw the whole fact. */
    if ((size_t)snprintf(c->observed, sizeof c->observed, "%s", observed) >= sizeof c->observed)
        mark_cut(c->observed, sizeof c->observed);
    if ((size_t)snprintf(c->expected, sizeof c->expected, "%s", expected) >= sizeof c->expected)
        mark_cut(c->expected, sizeof c->expected);
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)vsnprintf(c->reason, sizeof c->reason, fmt, ap) >= sizeof c->reason)
        mark_cut(c->reason, sizeof c->reason);
    va_end(ap);
    if (status == KB_FAIL || status == KB_ERROR)
        v->n_failed++;
    if (status == KB_WARN)
        v->n_warned++;
    return c;
}

static void skip(kb_verdict *v, const char *id, const char *why)
{
    add(v, id, KB_SKIP, "", "", "%s", why);
}

static bool glob(const char *pattern, const char *text)
{
    return pattern == NULL || fnmatch(pattern, text, 0) == 0;
}

/* A glob over a DN in RFC 4514 form, the whole of it. An escaped ',' or '+' inside a value
 * is not an RDN separator: it is hidden from the glob, so that CN=laptop-*,O=Example cannot
 * be met by a CN of "x,O=Example". Match such a character with '?'. 1: match, 0: no match,
 * -1: out of memory. */
static int dn_glob(const char *pattern, const char *dn)
{
    char *buf = malloc(strlen(dn) + 1);
    if (buf == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; dn[i]; i++) {
        if (dn[i] == '\\' && (dn[i + 1] == ',' || dn[i + 1] == '+')) {
            buf[o++] = '\x01';
            i++;
        } else {
            buf[o++] = dn[i];
        }
    }
    buf[o] = '\0';
    int rc = fnmatch(pattern, buf, 0) == 0;
    free(buf);
    return rc;
}

bool kb_token_pattern_match(const struct kb_token_pattern *pat, const struct kb_token_facts *t)
{
    return glob(pat->manufacturer, t->manufacturer) && glob(pat->model, t->model) &&
           glob(pat->serial, t->serial) && glob(pat->label, t->label);
}

bool kb_alg_rule_match(const struct kb_alg_rule *r, const struct kb_key_facts *k)
{
    if (r->type != k->type)
        return false;
    if (r->type == KB_KEY_RSA)
        return r->at_least ? k->bits >= r->min_bits : k->bits == r->min_bits;
    return strcmp(r->curve, k->curve) == 0;
}

static void alg_rule_name(const struct kb_alg_rule *r, char *out, size_t len)
{
    if (r->type == KB_KEY_RSA)
        snprintf(out, len, "rsa-%u%s", r->min_bits, r->at_least ? "+" : "");
    else if (r->type == KB_KEY_EDDSA)
        snprintf(out, len, "%s", strcmp(r->curve, "Ed448") == 0 ? "ed448" : "ed25519");
    else
        snprintf(out, len, "ec-p%s", r->curve + 2);
}

static void key_name(const struct kb_key_facts *k, char *out, size_t len)
{
    if (k->type == KB_KEY_RSA)
        snprintf(out, len, "rsa-%u", k->bits);
    else if (k->type == KB_KEY_EC && strncmp(k->curve, "P-", 2) == 0)
        snprintf(out, len, "ec-p%s", k->curve + 2);
    else if (k->type == KB_KEY_EDDSA)
        snprintf(out, len, "%s", strcmp(k->curve, "Ed448") == 0 ? "ed448" : "ed25519");
    else
        snprintf(out, len, "unknown");
}

static const char *tri_word(enum kb_tri t)
{
    return t == KB_TRI_TRUE ? "true" : t == KB_TRI_FALSE ? "false" : "unknown (not reported)";
}

/* One key attribute that must have the value want. */
static void key_attr(kb_verdict *v, bool required, const char *id, const char *attr,
                     enum kb_tri got, enum kb_tri want, const char *why_bad)
{
    if (!required) {
        skip(v, id, "Not required by the policy.");
        return;
    }
    char observed[64], expected[64];
    snprintf(observed, sizeof observed, "%s %s", attr, tri_word(got));
    snprintf(expected, sizeof expected, "%s %s", attr, tri_word(want));
    if (got == want)
        add(v, id, KB_PASS, observed, expected, "%s is %s, as required.", attr, tri_word(want));
    else if (got == KB_TRI_UNKNOWN)
        add(v, id, KB_FAIL, observed, expected,
            "The token does not report %s for this key, so it cannot be shown to be safe.", attr);
    else
        add(v, id, KB_FAIL, observed, expected, "%s", why_bad);
}

static void token_checks(const kb_policy *pol, const struct kb_token_facts *t, kb_verdict *v)
{
    char observed[200];
    snprintf(observed, sizeof observed, "manufacturer '%s', model '%s', serial '%s'",
             t->manufacturer, t->model, t->serial);
    if (pol->n_allow == 0) {
        skip(v, "token.allow", "The policy admits any kind of token.");
    } else {
        size_t i;
        for (i = 0; i < pol->n_allow; i++)
            if (kb_token_pattern_match(&pol->allow[i], t))
                break;
        char expected[64];
        snprintf(expected, sizeof expected, "one of %zu allowed kinds of token", pol->n_allow);
        if (i < pol->n_allow)
            add(v, "token.allow", KB_PASS, observed, expected,
                "The token matches allowed kind #%zu.", i + 1);
        else
            add(v, "token.allow", KB_FAIL, observed, expected,
                "This kind of token (%s %s) is not on the organisation's list of allowed tokens.",
                t->manufacturer, t->model);
    }
    if (pol->n_deny_serial == 0) {
        skip(v, "token.deny-serial", "The policy denies no serial numbers.");
    } else {
        size_t i;
        for (i = 0; i < pol->n_deny_serial; i++)
            if (fnmatch(pol->deny_serial[i], t->serial, 0) == 0)
                break;
        char obs[64];
        snprintf(obs, sizeof obs, "serial '%s'", t->serial);
        if (i < pol->n_deny_serial)
            add(v, "token.deny-serial", KB_FAIL, obs, "a serial not on the deny list",
                "This token's serial number is on the deny list (e.g. a lost or withdrawn "
                "token).");
        else
            add(v, "token.deny-serial", KB_PASS, obs, "a serial not on the deny list",
                "The serial number is not on the deny list.");
    }
    static const struct {
        const char *id, *what, *good, *bad;
        size_t req_off, fact_off;
    } flags[] = {
        {"token.hardware-slot", "hardware slot", "The token is in a hardware slot.",
         "The token is not in a hardware slot; it may be a software token.",
         offsetof(kb_policy, require_hw_slot), offsetof(struct kb_token_facts, hw_slot)},
        {"token.login", "login required", "The token asks for a PIN before the key is used.",
         "The token does not ask for a PIN, so anyone who holds it can use the key.",
         offsetof(kb_policy, require_login), offsetof(struct kb_token_facts, login_required)},
        {"token.protected-auth-path", "PIN pad", "The token has a PIN pad of its own.",
         "The token has no PIN pad of its own: the PIN is typed on the computer.",
         offsetof(kb_policy, require_protected_auth),
         offsetof(struct kb_token_facts, protected_auth)},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        bool required = *(const bool *)((const char *)pol + flags[i].req_off);
        bool has = *(const bool *)((const char *)t + flags[i].fact_off);
        if (!required) {
            skip(v, flags[i].id, "Not required by the policy.");
            continue;
        }
        char obs[64], exp[64];
        snprintf(obs, sizeof obs, "%s: %s", flags[i].what, has ? "yes" : "no");
        snprintf(exp, sizeof exp, "%s: yes", flags[i].what);
        if (has)
            add(v, flags[i].id, KB_PASS, obs, exp, "%s", flags[i].good);
        else
            add(v, flags[i].id, KB_FAIL, obs, exp, "%s", flags[i].bad);
    }
}

static void key_checks(const kb_policy *pol, const struct kb_key_facts *k, kb_verdict *v)
{
    key_attr(v, pol->require_sensitive, "key.sensitive", "CKA_SENSITIVE", k->sensitive, KB_TRI_TRUE,
             "The key is not marked sensitive: the token would reveal its value.");
    key_attr(v, pol->require_not_extractable, "key.not-extractable", "CKA_EXTRACTABLE",
             k->extractable, KB_TRI_FALSE, "The key can be exported from the token.");
    key_attr(v, pol->require_never_extractable, "key.never-extractable", "CKA_NEVER_EXTRACTABLE",
             k->never_extractable, KB_TRI_TRUE,
             "The key could once be exported, so a copy of it may exist outside the token.");
    key_attr(v, pol->require_always_sensitive, "key.always-sensitive", "CKA_ALWAYS_SENSITIVE",
             k->always_sensitive, KB_TRI_TRUE,
             "The key was once not sensitive, so a copy of it may exist outside the token.");
    key_attr(v, pol->require_local, "key.local", "CKA_LOCAL", k->local, KB_TRI_TRUE,
             "The key was not generated on the token but imported into it, so a copy of it may "
             "exist elsewhere.");
    if (pol->n_algs == 0) {
        skip(v, "key.algorithm", "The policy accepts any algorithm.");
        return;
    }
    char observed[32], expected[200] = "";
    key_name(k, observed, sizeof observed);
    bool ok = false;
    size_t used = 0;
    for (size_t i = 0; i < pol->n_algs; i++) {
        char name[32];
        alg_rule_name(&pol->algs[i], name, sizeof name);
        if (used < sizeof expected)
            used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s", i ? " " : "",
                                     name);
        ok = ok || kb_alg_rule_match(&pol->algs[i], k);
    }
    if (ok)
        add(v, "key.algorithm", KB_PASS, observed, expected, "The key's algorithm is accepted.");
    else
        add(v, "key.algorithm", KB_FAIL, observed, expected,
            "The key's algorithm or size (%s) is not one the organisation accepts.", observed);
}

/* "fixedTPM fixedParent sensitiveDataOrigin": the attributes the TPM signed as set. */
static void attest_bits(const struct kb_attest_facts *a, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s", a->fixed_tpm ? "fixedTPM " : "",
             a->fixed_parent ? "fixedParent " : "",
             a->sensitive_data_origin ? "sensitiveDataOrigin " : "");
    size_t n = strlen(out);
    if (n > 0)
        out[n - 1] = '\0';
    else
        snprintf(out, len, "none of fixedTPM, fixedParent, sensitiveDataOrigin");
}

/* The key rules above are what the token says; this is what the TPM signed. Only a full
 * verification passes: anything else is a denial naming the first check that failed. */
static void attest_check(const kb_policy *pol, const struct kb_attest_facts *a, kb_verdict *v)
{
    static const char expected[] = "made in a TPM trusted by tpm-ca, cannot leave it";
    if (!pol->require_attestation) {
        skip(v, "key.attested", "Not required by the policy.");
        return;
    }
    if (!a->checked) {
        /* A caller that does not attest must not turn into an admission. */
        add(v, "key.attested", KB_ERROR, "not attested", expected,
            "The policy requires attestation, but the key's TPM was not asked to prove it.");
        return;
    }
    if (!a->attested) {
        /* The reason is a phrase; one that ends a sentence of its own (GnuTLS's status
         * texts do) is not given a second full stop. */
        char why[sizeof a->reason];
        snprintf(why, sizeof why, "%s", a->reason[0] ? a->reason : "no reason given");
        size_t n = strlen(why);
        while (n > 0 && (why[n - 1] == ' ' || why[n - 1] == '.'))
            why[--n] = '\0';
        add(v, "key.attested", KB_FAIL, a->reason[0] ? why : "not attested", expected,
            "The TPM did not prove that the key was made inside it and cannot leave it: %s.", why);
        return;
    }
    /* Defence in depth: attested is only meant to be set with all three bits. */
    if (!a->fixed_tpm || !a->fixed_parent || !a->sensitive_data_origin) {
        char bits[80];
        attest_bits(a, bits, sizeof bits);
        add(v, "key.attested", KB_FAIL, bits, expected,
            "The TPM did not prove all of fixedTPM, fixedParent and sensitiveDataOrigin for the "
            "key (set: %s).",
            bits);
        return;
    }
    char observed[300];
    snprintf(observed, sizeof observed, "fixedTPM fixedParent sensitiveDataOrigin; TPM %s %s %s",
             a->tpm_manufacturer[0] ? a->tpm_manufacturer : "?", a->tpm_model, a->tpm_version);
    add(v, "key.attested", KB_PASS, observed, expected,
        "The TPM proved that the key was made inside it and cannot leave it (EK issued by %s).",
        a->ek_issuer[0] ? a->ek_issuer : "a trusted TPM vendor CA");
}

static void fmt_time(long long t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL)
        snprintf(out, len, "?");
    else
        strftime(out, len, "%Y-%m-%d %H:%M UTC", &tm);
}

/* "12d 3h", "5h 10m", "45s": for people, to the two largest units. */
static void fmt_duration(long long s, char *out, size_t len)
{
    if (s < 0)
        s = -s;
    long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
    if (d > 0)
        snprintf(out, len, "%lldd %lldh", d, h);
    else if (h > 0)
        snprintf(out, len, "%lldh %lldm", h, m);
    else
        snprintf(out, len, "%lldm %llds", m, s % 60);
}

static const char *eku_name(const char *oid)
{
    static const struct {
        const char *oid, *name;
    } names[] = {
        {"1.3.6.1.5.5.7.3.1", "serverAuth"},    {"1.3.6.1.5.5.7.3.2", "clientAuth"},
        {"1.3.6.1.5.5.7.3.3", "codeSigning"},   {"1.3.6.1.5.5.7.3.4", "emailProtection"},
        {"1.3.6.1.5.5.7.3.8", "timeStamping"},  {"1.3.6.1.5.5.7.3.9", "OCSPSigning"},
        {"2.5.29.37.0", "anyExtendedKeyUsage"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].oid, oid) == 0)
            return names[i].name;
    return oid;
}

static void join_ekus(const char (*list)[64], size_t n, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "", eku_name(list[i]));
    if (n == 0)
        snprintf(out, len, "none");
}

static void cert_checks(const kb_policy *pol, const struct kb_cert_facts *c, long long now,
                        kb_verdict *v)
{
    static const char *const ids[] = {
        "cert.validity",      "cert.trust",        "cert.ca",
        "cert.eku",           "cert.subject",      "cert.san-uri",
        "cert.min-remaining", "cert.renew-before", "cert.max-lifetime",
        "cert.crl",
    };
    if (!c->present) {
        add(v, "cert.present", KB_FAIL, "no certificate", "a certificate for the key",
            "No certificate for this key is on the token; enrol the device first.");
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
            skip(v, ids[i], "There is no certificate to check.");
        return;
    }
    const char *subject = c->subject ? c->subject : "(a subject that cannot be read in full)";
    add(v, "cert.present", KB_PASS, subject, "a certificate for the key",
        "The key has a certificate.");

    char nb[40], na[40], obs[600], dur[40];
    fmt_time(c->not_before, nb, sizeof nb);
    fmt_time(c->not_after, na, sizeof na);
    snprintf(obs, sizeof obs, "valid from %s to %s", nb, na);
    if (now < c->not_before)
        add(v, "cert.validity", KB_FAIL, obs, "valid now",
            "The certificate is not valid yet (from %s); check the computer's clock.", nb);
    else if (now > c->not_after)
        add(v, "cert.validity", KB_FAIL, obs, "valid now",
            "The certificate expired on %s; renew it.", na);
    else
        add(v, "cert.validity", KB_PASS, obs, "valid now", "The certificate is valid now.");

    if (pol->trust == NULL) {
        skip(v, "cert.trust", "The policy names no trust anchors.");
    } else {
        snprintf(obs, sizeof obs, "issuer %s",
                 c->issuer ? c->issuer : "(an issuer that cannot be read in full)");
        char exp[300];
        snprintf(exp, sizeof exp, "issued under the anchors in %s", pol->trust);
        if (c->chain == KB_CHAIN_OK)
            add(v, "cert.trust", KB_PASS, obs, exp,
                "The certificate chains to the organisation's CA.");
        else if (c->chain == KB_CHAIN_FAIL)
            add(v, "cert.trust", KB_FAIL, obs, exp,
                "The certificate was not issued by the organisation's CA (%s).", c->chain_detail);
        else
            add(v, "cert.trust", KB_ERROR, obs, exp, "The issuer could not be checked: %s.",
                c->chain_detail[0] ? c->chain_detail : "no result");
    }

    if (pol->allow_ca_device_cert)
        skip(v, "cert.ca", "The policy allows a CA certificate as the device certificate.");
    else if (c->ca == KB_TRI_FALSE)
        add(v, "cert.ca", KB_PASS, "CA:FALSE", "CA:FALSE", "The certificate is not a CA's.");
    else if (c->ca == KB_TRI_TRUE)
        add(v, "cert.ca", KB_FAIL, "CA:TRUE", "CA:FALSE",
            "The device certificate is a CA certificate (basicConstraints CA:TRUE): its key could "
            "issue certificates in the organisation's name. Ask for a device certificate, or "
            "set allow-ca-device-cert = yes in [certificate].");
    else
        add(v, "cert.ca", KB_ERROR, "unknown", "CA:FALSE",
            "The certificate's basicConstraints cannot be read, so it cannot be shown not to be "
            "a CA certificate.");

    if (pol->n_eku == 0) {
        skip(v, "cert.eku", "The policy requires no extended key usage.");
    } else if (c->eku_unfit) {
        add(v, "cert.eku", KB_ERROR, "more extended key usages than keybound reads",
            "the policy's extended key usages",
            "The certificate's extended key usages cannot be read in full (more than %d, one "
            "longer than 63 characters, or malformed), so they cannot be checked.",
            KB_CERT_LIST_MAX);
    } else {
        char have[300], want[300];
        join_ekus((const char(*)[64])c->eku, c->n_eku, have, sizeof have);
        char tmp[KB_CERT_LIST_MAX][64];
        size_t n = pol->n_eku < KB_CERT_LIST_MAX ? pol->n_eku : KB_CERT_LIST_MAX;
        for (size_t i = 0; i < n; i++)
            snprintf(tmp[i], sizeof tmp[i], "%s", pol->eku[i]);
        join_ekus((const char(*)[64])tmp, n, want, sizeof want);
        const char *missing = NULL;
        bool any = false;
        for (size_t j = 0; j < c->n_eku; j++)
            any = any || strcmp(c->eku[j], "2.5.29.37.0") == 0;
        for (size_t i = 0; i < pol->n_eku && !missing && !any; i++) {
            bool found = false;
            for (size_t j = 0; j < c->n_eku; j++)
                found = found || strcmp(c->eku[j], pol->eku[i]) == 0;
            if (!found)
                missing = pol->eku[i];
        }
        if (missing == NULL)
            add(v, "cert.eku", KB_PASS, have, want, "The certificate allows %s.", want);
        else
            add(v, "cert.eku", KB_FAIL, have, want,
                "The certificate is not meant for this use: it lacks %s.", eku_name(missing));
    }

    int match = pol->subject != NULL && c->subject != NULL ? dn_glob(pol->subject, c->subject) : -1;
    if (pol->subject == NULL)
        skip(v, "cert.subject", "The policy does not restrict the subject.");
    else if (c->subject == NULL)
        add(v, "cert.subject", KB_ERROR, subject, pol->subject,
            "The certificate's subject cannot be read in full, so it cannot be matched.");
    else if (match < 0)
        add(v, "cert.subject", KB_ERROR, c->subject, pol->subject,
            "The subject could not be matched: out of memory.");
    else if (match)
        add(v, "cert.subject", KB_PASS, c->subject, pol->subject,
            "The subject matches the policy.");
    else
        add(v, "cert.subject", KB_FAIL, c->subject, pol->subject,
            "The certificate's subject (%s) is not one the policy admits.", c->subject);

    if (pol->san_uri == NULL) {
        skip(v, "cert.san-uri", "The policy does not restrict the URI names.");
    } else if (c->san_uri_unfit) {
        add(v, "cert.san-uri", KB_ERROR, "more URI names than keybound reads", pol->san_uri,
            "The certificate's URI names cannot be read in full (more than %d, one longer than "
            "255 characters, or malformed), so they cannot be checked.",
            KB_CERT_LIST_MAX);
    } else {
        size_t i;
        for (i = 0; i < c->n_san_uri; i++)
            if (glob(pol->san_uri, c->san_uri[i]))
                break;
        snprintf(obs, sizeof obs, "%s", c->n_san_uri ? c->san_uri[0] : "no URI name");
        if (i < c->n_san_uri)
            add(v, "cert.san-uri", KB_PASS, c->san_uri[i], pol->san_uri,
                "A URI name matches the policy.");
        else
            add(v, "cert.san-uri", KB_FAIL, obs, pol->san_uri,
                "No URI name in the certificate matches %s.", pol->san_uri);
    }

    long long left = c->not_after - now;
    fmt_duration(left, dur, sizeof dur);
    snprintf(obs, sizeof obs, left >= 0 ? "%s left" : "expired %s ago", dur);
    char exp[64], limit[40];
    if (pol->min_remaining < 0) {
        skip(v, "cert.min-remaining", "The policy sets no minimum remaining validity.");
    } else {
        fmt_duration(pol->min_remaining, limit, sizeof limit);
        snprintf(exp, sizeof exp, "at least %s left", limit);
        if (left >= pol->min_remaining)
            add(v, "cert.min-remaining", KB_PASS, obs, exp, "Enough validity is left.");
        else
            add(v, "cert.min-remaining", KB_FAIL, obs, exp,
                "The certificate has less validity left than the organisation requires; renew "
                "it (keybound renew).");
    }
    if (pol->renew_before < 0) {
        skip(v, "cert.renew-before", "The policy sets no renewal reminder.");
    } else {
        fmt_duration(pol->renew_before, limit, sizeof limit);
        snprintf(exp, sizeof exp, "more than %s left", limit);
        if (left > pol->renew_before)
            add(v, "cert.renew-before", KB_PASS, obs, exp, "Renewal is not due yet.");
        else
            add(v, "cert.renew-before", KB_WARN, obs, exp,
                "The certificate should be renewed now (keybound renew).");
    }
    if (pol->max_lifetime < 0) {
        skip(v, "cert.max-lifetime", "The policy sets no maximum lifetime.");
    } else {
        fmt_duration(c->not_after - c->not_before, dur, sizeof dur);
        fmt_duration(pol->max_lifetime, limit, sizeof limit);
        snprintf(obs, sizeof obs, "lifetime %s", dur);
        snprintf(exp, sizeof exp, "lifetime at most %s", limit);
        if (c->not_after - c->not_before <= pol->max_lifetime)
            add(v, "cert.max-lifetime", KB_PASS, obs, exp, "The lifetime is within the limit.");
        else
            add(v, "cert.max-lifetime", KB_FAIL, obs, exp,
                "The certificate was issued for longer than the organisation allows.");
    }

    if (pol->crl == NULL)
        skip(v, "cert.crl", "The policy names no CRL.");
    else if (c->crl_error || c->revoked == KB_TRI_UNKNOWN)
        add(v, "cert.crl", KB_ERROR, "unknown", "not revoked",
            "Revocation could not be checked: %s.", c->crl_detail[0] ? c->crl_detail : "no result");
    else if (c->revoked == KB_TRI_TRUE)
        add(v, "cert.crl", KB_FAIL, "revoked", "not revoked",
            "The certificate has been revoked by the CA.");
    else
        add(v, "cert.crl", KB_PASS, "not revoked", "not revoked",
            "The certificate is not on the CRL.");
}

static void endpoint_checks(const kb_policy *pol, const struct kb_endpoint_facts *e, kb_verdict *v)
{
    if (!e->given) {
        skip(v, "endpoint.listed", "No endpoint was given.");
        return;
    }
    char obs[KB_HOSTPORT_STRLEN];
    kb_hostport_str(e->host, e->port, obs, sizeof obs);
    if (kb_policy_endpoint(pol, e->host, e->port) != NULL)
        add(v, "endpoint.listed", KB_PASS, obs, "an endpoint the policy lists",
            "The policy lists this endpoint.");
    else if (pol->allow_unlisted_endpoints)
        add(v, "endpoint.listed", KB_PASS, obs, "any endpoint (allow-unlisted-endpoints)",
            "The policy allows endpoints it does not list.");
    else
        add(v, "endpoint.listed", KB_FAIL, obs, "an endpoint the policy lists",
            "The policy does not list %s: the device may not present its identity there.", obs);
}

void kb_policy_evaluate(const kb_policy *pol, const struct kb_device_facts *facts, long long now,
                        kb_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->mode = pol->mode;
    if (pol->mode == KB_MODE_OFF) {
        v->admit = true;
        return;
    }
    token_checks(pol, &facts->token, v);
    key_checks(pol, &facts->key, v);
    attest_check(pol, &facts->attest, v);
    cert_checks(pol, &facts->cert, now, v);
    endpoint_checks(pol, &facts->endpoint, v);
    v->admit = pol->mode == KB_MODE_AUDIT || v->n_failed == 0;
    v->would_deny = pol->mode == KB_MODE_AUDIT && v->n_failed > 0;
}
