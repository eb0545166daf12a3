/* SPDX-License-Identifier: Apache-2.0 */
/* Loading the policy's tpm-ca files: the one part of verification that reads files, kept
 * out of verify.c so that the verifier stays pure. Every certificate in them becomes a
 * trust anchor, intermediates included: vendors' EK chains often need an intermediate
 * the TPM does not hold, and keybound never fetches one (no AIA). A file that cannot be
 * used is kept as an error, so every verification under that policy fails with it rather
 * than trusting a smaller set than the admin wrote. */
#include "config.h"

#include "src/attest/verify.h"

#include <stdio.h>
#include <string.h>

#include "src/util/trustfile.h"

int kb_attest_anchors_load(const char *const *files, size_t n, struct kb_attest_anchors *a)
{
    memset(a, 0, sizeof(*a));
    if (n == 0) {
        snprintf(a->error, sizeof(a->error), "no tpm-ca file names a trusted TPM vendor CA");
        return -1;
    }
    if (gnutls_x509_trust_list_init(&a->list, 0) < 0) {
        a->list = NULL;
        snprintf(a->error, sizeof(a->error), "out of memory loading the tpm-ca files");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        kb_err err = {{0}};
        if (kb_trustfile_check(files[i], "tpm-ca file", 0, &err) < 0) {
            snprintf(a->error, sizeof(a->error), "%.250s", err.msg);
            return -1;
        }
        int added = gnutls_x509_trust_list_add_trust_file(a->list, files[i], NULL,
                                                          GNUTLS_X509_FMT_PEM, 0, 0);
        if (added <= 0) {
            snprintf(a->error, sizeof(a->error), "tpm-ca file %s holds no PEM certificate%s%s",
                     files[i], added < 0 ? ": " : "", added < 0 ? gnutls_strerror(added) : "");
            return -1;
        }
    }
    return 0;
}

void kb_attest_anchors_free(struct kb_attest_anchors *a)
{
    if (a->list)
        gnutls_x509_trust_list_deinit(a->list, 1);
    memset(a, 0, sizeof(*a));
}
