/* SPDX-License-Identifier: Apache-2.0 */
/* The attester admission evaluations lend to kb_trust: a fresh proof per evaluation,
 * reuse for less than the caller's interval and only for the same key, nothing reused
 * across a clock that went back or anchors that changed. kb_attest_prove is faked here
 * (this file's definition is linked instead of src/attest/attest.c's), so no TPM. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/facts.h"
#include "src/attest/attest.h"
#include "src/attest/attester.h"

static int proofs;      /* how many times the fake TPM was asked */
static bool fake_fails; /* the next proofs fail */

int kb_attest_prove(kb_p11 *p, const kb_key *k, const struct kb_pin_opts *pin,
                    const struct kb_attest_anchors *anchors, long long now,
                    struct kb_attest_facts *facts, kb_err *err)
{
    (void)p, (void)k, (void)pin, (void)anchors;
    proofs++;
    facts->checked = true;
    facts->at = now;
    if (fake_fails) {
        snprintf(facts->reason, sizeof facts->reason, "fixedTPM, fixedParent clear");
        return kb_err_set(err, "%s", facts->reason);
    }
    facts->attested = facts->fixed_tpm = facts->fixed_parent = facts->sensitive_data_origin = true;
    snprintf(facts->tpm_model, sizeof facts->tpm_model, "proof %d", proofs);
    return 0;
}

static kb_key key(char *uri, unsigned char spki_byte)
{
    kb_key k;
    memset(&k, 0, sizeof k);
    k.uri = uri;
    k.has_spki = true;
    memset(k.spki_sha256, spki_byte, sizeof k.spki_sha256);
    return k;
}

static kb_policy *policy_with(const char *ca_file)
{
    kb_policy *pol = calloc(1, sizeof *pol);
    assert_non_null(pol);
    pol->require_attestation = true;
    pol->tpm_ca = calloc(1, sizeof *pol->tpm_ca);
    pol->tpm_ca[0] = strdup(ca_file);
    pol->n_tpm_ca = 1;
    return pol;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fresh fake TPM and an attester with the given reuse bound for a policy naming one
 * anchor file (missing: the fake ignores anchors). */
static kb_attester *start(kb_policy **pol, long long reuse, bool fails)
{
    proofs = 0;
    fake_fails = fails;
    *pol = policy_with("/nonexistent/ek.pem");
    kb_attester *a = kb_attester_new(*pol, NULL, NULL, reuse);
    assert_non_null(a);
    return a;
}

static void stop(kb_attester *a, kb_policy *pol)
{
    kb_attester_free(a);
    kb_policy_free(pol);
}

static void no_reuse_proves_every_time(void **state)
{
    (void)state;
    kb_policy *pol;
    kb_attester *a = start(&pol, 0, false);
    kb_key k = key("pkcs11:token=dev;object=a", 1);
    struct kb_attest_facts f;
    for (int i = 0; i < 3; i++) {
        kb_attester_run(a, &k, 1000, &f);
        assert_true(f.checked && f.attested);
    }
    assert_int_equal(proofs, 3);
    stop(a, pol);
}

static void reuse_within_the_interval_only(void **state)
{
    (void)state;
    kb_policy *pol;
    kb_attester *a = start(&pol, 600, false);
    kb_key k = key("pkcs11:token=dev;object=a", 1);
    struct kb_attest_facts f;
    kb_attester_run(a, &k, 1000, &f);
    assert_int_equal(proofs, 1);
    kb_attester_run(a, &k, 1599, &f); /* 599 s later: the same proof */
    assert_int_equal(proofs, 1);
    assert_string_equal(f.tpm_model, "proof 1");
    kb_attester_run(a, &k, 1600, &f); /* the interval is up: a fresh one */
    assert_int_equal(proofs, 2);
    assert_string_equal(f.tpm_model, "proof 2");
    kb_attester_run(a, &k, 1500, &f); /* the clock went back: never reused */
    assert_int_equal(proofs, 3);

    /* Another key, or the same URI with another public key (renew --rekey): its own. */
    kb_key other = key("pkcs11:token=dev;object=b", 1);
    kb_key rekeyed = key("pkcs11:token=dev;object=a", 2);
    kb_attester_run(a, &other, 1501, &f);
    assert_int_equal(proofs, 4);
    kb_attester_run(a, &rekeyed, 1502, &f);
    assert_int_equal(proofs, 5);
    kb_attester_run(a, &other, 1503, &f);
    kb_attester_run(a, &rekeyed, 1503, &f);
    assert_int_equal(proofs, 5);
    stop(a, pol);
}

/* A failure is a fact with its reason, never an admission; it is reused like a success
 * (a failing Certify is a strike against the TPM's lockout: not asked again at once). */
static void failures_are_facts(void **state)
{
    (void)state;
    kb_policy *pol;
    kb_attester *a = start(&pol, 600, true);
    kb_key k = key("pkcs11:token=dev;object=a", 1);
    struct kb_attest_facts f;
    kb_attester_run(a, &k, 1000, &f);
    assert_true(f.checked);
    assert_false(f.attested);
    assert_string_equal(f.reason, "fixedTPM, fixedParent clear");
    fake_fails = false;
    kb_attester_run(a, &k, 1010, &f);
    assert_false(f.attested);
    assert_int_equal(proofs, 1);
    stop(a, pol);
}

/* A reload that changes the anchors (another list, or a file's bytes) drops every result
 * proved under the old ones; the same anchors keep them. */
static void changed_anchors_drop_results(void **state)
{
    (void)state;
    proofs = 0;
    fake_fails = false;
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/kb-attester-%ld.pem", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    write_file(path, "one\n");
    kb_policy *pol = policy_with(path);
    kb_attester *a = kb_attester_new(pol, NULL, NULL, 600);
    kb_key k = key("pkcs11:token=dev;object=a", 1);
    struct kb_attest_facts f;
    kb_attester_run(a, &k, 1000, &f);
    kb_attester_sync(a, pol, 600);
    kb_attester_run(a, &k, 1001, &f);
    assert_int_equal(proofs, 1);
    write_file(path, "two\n");
    kb_attester_sync(a, pol, 600);
    kb_attester_run(a, &k, 1002, &f);
    assert_int_equal(proofs, 2);
    kb_policy *other = policy_with("/nonexistent/other.pem");
    kb_attester_sync(a, other, 600);
    kb_attester_run(a, &k, 1003, &f);
    assert_int_equal(proofs, 3);
    /* A shorter interval after a reload bounds what is already kept. */
    kb_attester_sync(a, other, 10);
    kb_attester_run(a, &k, 1013, &f);
    assert_int_equal(proofs, 4);
    kb_attester_free(a);
    kb_policy_free(other);
    kb_policy_free(pol);
    unlink(path);
}

/* kb_attester_attach sets nothing for a policy without require-attestation. */
static void attach_only_when_required(void **state)
{
    (void)state;
    kb_policy *pol = policy_with("/nonexistent/ek.pem");
    pol->require_attestation = false;
    kb_trust *t = kb_trust_load(pol);
    assert_non_null(t);
    assert_false(kb_trust_wants_attestation(t));
    kb_attester *a = (kb_attester *)&a;
    kb_err err;
    assert_int_equal(kb_attester_attach(t, pol, NULL, NULL, 0, &a, &err), 0);
    assert_null(a);
    kb_trust_free(t);
    pol->require_attestation = true;
    t = kb_trust_load(pol);
    assert_true(kb_trust_wants_attestation(t));
    assert_int_equal(kb_attester_attach(t, pol, NULL, NULL, 0, &a, &err), 0);
    assert_non_null(a);
    kb_attester_free(a);
    kb_trust_free(t);
    kb_policy_free(pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_reuse_proves_every_time),
        cmocka_unit_test(reuse_within_the_interval_only),
        cmocka_unit_test(failures_are_facts),
        cmocka_unit_test(changed_anchors_drop_results),
        cmocka_unit_test(attach_only_when_required),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
