/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for what attestation reads from a device or a file
 * (src/attest/evidence.h, tpmwire.h, verify.h): the first byte picks the parser, the rest
 * is its input. 0: the evidence's DER; what decodes encodes back to the same bytes, and
 * its bundle lies inside it. 1: a TPMT_PUBLIC (and its Name). 2: a TPMS_ATTEST. 3: a
 * TPMT_SIGNATURE. 4: the whole verifier against an empty trust list and a zero challenge
 * (it must refuse, with a reason). Seed corpus: tests/fuzz/corpus/attest, the public
 * bytes of one attestation on swtpm. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/facts.h"
#include "src/attest/evidence.h"
#include "src/attest/tpmwire.h"
#include "src/attest/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void evidence(const uint8_t *p, size_t n)
{
    struct kb_evidence ev;
    kb_err err;
    if (kb_evidence_decode(p, n, &ev, &err) != 0)
        return;
    unsigned char *der = NULL;
    size_t len = 0, s = 0, e = 0;
    if (kb_evidence_encode(&ev, &der, &len, &err) != 0 || len != n || memcmp(der, p, n) != 0)
        abort(); /* DER has one form: what was accepted is what is written */
    if (kb_evidence_bundle_span(p, n, &s, &e, &err) != 0 || s >= e || e > n)
        abort();
    free(der);
    kb_evidence_free(&ev);
}

static void verify(const uint8_t *p, size_t n)
{
    static struct kb_attest_anchors anchors;
    static struct kb_attest_challenge challenge;
    struct kb_attest_facts facts;
    if (!anchors.list && gnutls_x509_trust_list_init(&anchors.list, 0) < 0)
        abort();
    if (kb_attest_verify(p, n, &anchors, &challenge, NULL, 0, &facts) == 0 || !facts.checked ||
        facts.attested || facts.reason[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    /* A copy of exactly n bytes, so that a read past the input is caught by ASan. */
    uint8_t *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, p, n);
    kb_err err;
    struct kb_tpm_public pub;
    struct kb_tpm_attest at;
    struct kb_tpm_signature sig;
    unsigned char name[KB_TPM_NAME_MAX];
    size_t name_len;
    switch (data[0] % 5) {
    case 0:
        evidence(copy, n);
        break;
    case 1:
        if (kb_tpm_public_decode(copy, n, &pub, &err) == 0 &&
            (kb_tpm_name(copy, n, name, &name_len, &err) != 0 || name_len > sizeof(name)))
            abort(); /* a decoded area always has a name */
        break;
    case 2:
        if (kb_tpm_attest_decode(copy, n, &at, &err) == 0 &&
            (at.name_len > 66 || at.extra_len > 64 || at.signer_len > 66))
            abort();
        break;
    case 3:
        kb_tpm_signature_decode(copy, n, &sig, &err);
        break;
    default:
        verify(copy, n);
    }
    free(copy);
    return 0;
}
