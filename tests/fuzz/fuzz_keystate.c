/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the per-key state file (src/enroll/keystate.h): any bytes as a state
 * file; what parses must hold together (a pending request has its CSR, a key id in hex) and
 * must read back the same after being written out again. Seed corpus:
 * tests/fuzz/corpus/keystate. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/enroll/keystate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kb_keystate a, b;
    kb_err err;
    if (kb_keystate_parse((const char *)data, size, "/fuzz/key.json", &a, &err) != 0)
        return 0;
    if ((a.pending.active && (a.pending.csr == NULL || a.pending.csr_len == 0)) ||
        strlen(a.key_id) % 2 != 0)
        abort();
    char *text = kb_keystate_format(&a);
    if (text == NULL)
        abort();
    if (kb_keystate_parse(text, strlen(text), "/fuzz/again.json", &b, &err) != 0 ||
        strcmp(a.key_id, b.key_id) != 0 || strcmp(a.label, b.label) != 0 ||
        a.pending.active != b.pending.active || a.pending.csr_len != b.pending.csr_len ||
        (a.pending.active && memcmp(a.pending.csr, b.pending.csr, a.pending.csr_len) != 0))
        abort();
    free(text);
    kb_keystate_clear(&a);
    kb_keystate_clear(&b);
    return 0;
}
