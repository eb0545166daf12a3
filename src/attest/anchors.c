/* SPDX-License-Identifier: Apache-2.0 */
#include "src/attest/verify.h"

#include <string.h>

int kb_attest_anchors_load(const char *const *files, size_t n, struct kb_attest_anchors *a)
{
    memset(a, 0, sizeof(*a));
    return -1;
}
void kb_attest_anchors_free(struct kb_attest_anchors *a)
{
}
