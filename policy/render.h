/* SPDX-License-Identifier: Apache-2.0 */
/* Showing a verdict: one line per check for people, a json-c object for tools.
 *
 * The JSON keys are part of keybound's interface (doc/keybound.1): decision
 * ("admit" or "deny"), mode, would_deny (audit), checks[] with id, status, observed,
 * expected and reason. */
#ifndef KB_RENDER_H
#define KB_RENDER_H

#include <json-c/json.h>
#include <stdio.h>

#include "policy/eval.h"

/* Skipped checks are listed only when verbose. */
void kb_verdict_print(FILE *out, const kb_verdict *v, bool verbose);

json_object *kb_verdict_json(const kb_verdict *v);

/* What the key's TPM proved (check's "attested" under "key", doc/keybound.1): attested,
 * reason (null when attested), fixed_tpm, fixed_parent, sensitive_data_origin,
 * tpm_manufacturer, tpm_model, tpm_version, ek_issuer, at (ISO 8601 UTC). NULL (JSON null)
 * when attestation was not asked for. */
json_object *kb_attest_json(const struct kb_attest_facts *a);

/* The same as one line for people: "yes (fixedTPM ...; TPM IBM SW TPM id:20191023)" or
 * "no: <reason>"; "" when not asked for. */
void kb_attest_text(const struct kb_attest_facts *a, char *out, size_t len);

/* "ADMITTED", "DENIED", ... and the reasons, as one line. */
void kb_verdict_summary(const kb_verdict *v, char *out, size_t len);

#endif
