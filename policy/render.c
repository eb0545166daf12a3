/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <string.h>
#include <time.h>

#include "render.h"

static const char *mark(enum kb_status s)
{
    static const char *const marks[] = {"[pass]", "[FAIL]", "[warn]", "[skip]", "[ERROR]"};
    return marks[s];
}

/* "key.local, key.never-extractable" for the checks with the given status. */
static void ids_with(const kb_verdict *v, enum kb_status a, enum kb_status b, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->n && used < len; i++)
        if (v->checks[i].status == a || v->checks[i].status == b)
            used +=
                (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "", v->checks[i].id);
    if (used >= len && len > 4) /* a list that is cut says so */
        memcpy(out + len - 4, "...", 4);
}

void kb_verdict_summary(const kb_verdict *v, char *out, size_t len)
{
    char failed[400];
    ids_with(v, KB_FAIL, KB_ERROR, failed, sizeof failed);
    if (v->mode == KB_MODE_OFF)
        snprintf(out, len, "ADMITTED (policy mode is off: nothing was checked)");
    else if (v->would_deny)
        snprintf(out, len, "ADMITTED in audit mode; enforce mode would deny: %s", failed);
    else if (v->admit)
        snprintf(out, len, "ADMITTED%s", v->n_warned ? " with warnings" : "");
    else
        snprintf(out, len, "DENIED: %s", failed);
}

void kb_verdict_print(FILE *out, const kb_verdict *v, bool verbose)
{
    size_t skipped = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct kb_check *c = &v->checks[i];
        if (c->status == KB_SKIP && !verbose) {
            skipped++;
            continue;
        }
        fprintf(out, "  %-7s %-26s %s\n", mark(c->status), c->id, c->reason);
        if (c->status == KB_FAIL || c->status == KB_ERROR || c->status == KB_WARN ||
            (verbose && c->status == KB_PASS))
            fprintf(out, "  %-7s %-26s observed: %s; expected: %s\n", "", "", c->observed,
                    c->expected);
    }
    if (skipped)
        fprintf(out, "  (%zu check%s not required by this policy; -v lists them)\n", skipped,
                skipped == 1 ? "" : "s");
    char summary[512];
    kb_verdict_summary(v, summary, sizeof summary);
    fprintf(out, "Decision: %s\n", summary);
}

json_object *kb_verdict_json(const kb_verdict *v)
{
    json_object *o = json_object_new_object(), *checks = json_object_new_array();
    json_object_object_add(o, "decision", json_object_new_string(v->admit ? "admit" : "deny"));
    json_object_object_add(o, "mode", json_object_new_string(kb_mode_name(v->mode)));
    json_object_object_add(o, "would_deny", json_object_new_boolean(v->would_deny));
    for (size_t i = 0; i < v->n; i++) {
        const struct kb_check *c = &v->checks[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "id", json_object_new_string(c->id));
        json_object_object_add(j, "status", json_object_new_string(kb_status_name(c->status)));
        json_object_object_add(j, "observed", json_object_new_string(c->observed));
        json_object_object_add(j, "expected", json_object_new_string(c->expected));
        json_object_object_add(j, "reason", json_object_new_string(c->reason));
        json_object_array_add(checks, j);
    }
    json_object_object_add(o, "checks", checks);
    return o;
}

json_object *kb_attest_json(const struct kb_attest_facts *a)
{
    if (!a->checked)
        return NULL;
    /* Only a full verification is "attested"; the bits are what the TPM signed even then. */
    bool ok = a->attested && a->fixed_tpm && a->fixed_parent && a->sensitive_data_origin;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "attested", json_object_new_boolean(ok));
    json_object_object_add(
        o, "reason", ok ? NULL : json_object_new_string(a->reason[0] ? a->reason : "not attested"));
    json_object_object_add(o, "fixed_tpm", json_object_new_boolean(a->fixed_tpm));
    json_object_object_add(o, "fixed_parent", json_object_new_boolean(a->fixed_parent));
    json_object_object_add(o, "sensitive_data_origin",
                           json_object_new_boolean(a->sensitive_data_origin));
    json_object_object_add(o, "tpm_manufacturer", json_object_new_string(a->tpm_manufacturer));
    json_object_object_add(o, "tpm_model", json_object_new_string(a->tpm_model));
    json_object_object_add(o, "tpm_version", json_object_new_string(a->tpm_version));
    json_object_object_add(o, "ek_issuer", json_object_new_string(a->ek_issuer));
    char when[32] = "";
    time_t t = (time_t)a->at;
    struct tm tm;
    if (a->at > 0 && gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, "at", when[0] ? json_object_new_string(when) : NULL);
    return o;
}

void kb_attest_text(const struct kb_attest_facts *a, char *out, size_t len)
{
    if (!a->checked)
        snprintf(out, len, "%s", "");
    else if (a->attested && a->fixed_tpm && a->fixed_parent && a->sensitive_data_origin)
        snprintf(out, len, "yes (fixedTPM fixedParent sensitiveDataOrigin; TPM %s %s %s)",
                 a->tpm_manufacturer, a->tpm_model, a->tpm_version);
    else
        snprintf(out, len, "no: %s", a->reason[0] ? a->reason : "not attested");
}
