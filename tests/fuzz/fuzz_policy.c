/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the policy parser and evaluator: any bytes as a policy file, and
 * when they parse, an evaluation of a fixed device and its JSON rendering. Seed corpus:
 * policy/examples. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/eval.h"
#include "policy/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (f == NULL)
        return 0;
    kb_policy *pol = NULL;
    kb_err err;
    if (kb_policy_parse(f, "/fuzz/policy.conf", &pol, &err) == 0) {
        struct kb_device_facts d;
        memset(&d, 0, sizeof d);
        snprintf(d.token.manufacturer, sizeof d.token.manufacturer, "SoftHSM project");
        snprintf(d.token.serial, sizeof d.token.serial, "0123456789abcdef");
        d.key.type = KB_KEY_RSA;
        d.key.bits = 3072;
        d.key.sensitive = KB_TRI_TRUE;
        d.key.extractable = KB_TRI_UNKNOWN;
        d.cert.present = true;
        d.cert.not_before = 1700000000;
        d.cert.not_after = 1800000000;
        d.cert.n_eku = 1;
        snprintf(d.cert.eku[0], sizeof d.cert.eku[0], "1.3.6.1.5.5.7.3.2");
        d.cert.subject = "CN=fuzz,O=Example";
        d.cert.issuer = "CN=Fuzz CA";
        d.endpoint.given = true;
        snprintf(d.endpoint.host, sizeof d.endpoint.host, "localhost");
        d.endpoint.port = 443;
        kb_verdict v;
        kb_policy_evaluate(pol, &d, 1750000000, &v);
        json_object_put(kb_verdict_json(&v));
        kb_policy_free(pol);
    }
    fclose(f);
    return 0;
}
