/* SPDX-License-Identifier: Apache-2.0 */
#include "src/attest/evidence.h"

#include <string.h>

int kb_evidence_encode(const struct kb_evidence *ev, unsigned char **der, size_t *der_len,
                       kb_err *err)
{
    return kb_err_set(err, "evidence: not implemented yet");
}
int kb_evidence_decode(const unsigned char *der, size_t der_len, struct kb_evidence *ev,
                       kb_err *err)
{
    memset(ev, 0, sizeof(*ev));
    return kb_err_set(err, "evidence: not implemented yet");
}
void kb_evidence_free(struct kb_evidence *ev)
{
}
int kb_evidence_bundle_span(const unsigned char *der, size_t der_len, size_t *start, size_t *end,
                            kb_err *err)
{
    return kb_err_set(err, "evidence: not implemented yet");
}
