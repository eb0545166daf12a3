/* SPDX-License-Identifier: Apache-2.0 */
/* Evaluating the policy: facts in, verdict out.
 *
 * Pure and total: every check of the policy gets one entry (pass, fail, warn, skip or
 * error) with what was observed, what was expected and a reason a help-desk person can
 * act on. Fail closed: an error is a denial. In audit mode the device is admitted and
 * the would-be denials are marked; with mode off nothing is evaluated. */
#ifndef KB_EVAL_H
#define KB_EVAL_H

#include "policy/policy.h"

enum kb_status { KB_PASS, KB_FAIL, KB_WARN, KB_SKIP, KB_ERROR };

struct kb_check {
    char id[40];
    enum kb_status status;
    char observed[300];
    char expected[300];
    char reason[400];
};

#define KB_MAX_CHECKS 32

typedef struct kb_verdict {
    enum kb_mode mode;
    bool admit;
    bool would_deny; /* audit mode: enforce would have denied */
    size_t n_failed; /* fail + error */
    size_t n_warned;
    struct kb_check checks[KB_MAX_CHECKS];
    size_t n;
} kb_verdict;

void kb_policy_evaluate(const kb_policy *pol, const struct kb_device_facts *facts, long long now,
                        kb_verdict *v);

const char *kb_status_name(enum kb_status s);

/* Matches a token against one allow pattern (fnmatch globs, NULL fields match). */
bool kb_token_pattern_match(const struct kb_token_pattern *pat, const struct kb_token_facts *t);

/* Whether a key satisfies one algorithm rule. */
bool kb_alg_rule_match(const struct kb_alg_rule *r, const struct kb_key_facts *k);

#endif
