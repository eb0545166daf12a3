/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for renew's settings: any bytes as a [renew] file (libinih, then each
 * option's own parser), and what parses holds together: one way to trust the server, one
 * way to choose the modules, a wait in range. Seed corpus: tests/fuzz/corpus/renew and
 * contrib/renew.conf. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/enroll/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (f == NULL)
        return 0;
    struct kb_enroll_settings s;
    kb_enroll_settings_init(&s);
    kb_err err;
    if (kb_renew_conf_parse(f, "/fuzz/renew.conf", &s, &err) == 0 &&
        ((s.spec.ca && s.spec.fingerprint) || (s.module && s.modules) ||
         s.spec.max_wait_s > 86400 || s.spec.if_expires_within < -1))
        abort();
    fclose(f);
    kb_enroll_settings_free(&s);
    return 0;
}
