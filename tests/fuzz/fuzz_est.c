/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the EST reply parsers: the first byte picks one, the rest is the
 * reply body (or header value). Certificates found must be releasable; nothing may read
 * outside the input. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/store.h"
#include "src/enroll/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    kb_err err;
    switch (data[0] % 4) {
    case 0: {
        gnutls_x509_crt_t *certs = NULL;
        unsigned count = 0;
        if (kb_est_certs("/simpleenroll", "application/pkcs7-mime; smime-type=certs-only", body, n,
                         &certs, &count, &err) == 0)
            kb_free_certs(certs, count);
        break;
    }
    case 1: {
        struct kb_csrattrs a;
        kb_est_csrattrs("application/csrattrs", body, n, &a, &err);
        break;
    }
    case 2: {
        gnutls_datum_t der = {NULL, 0};
        if (kb_est_base64(body, n, &der, &err) == 0)
            gnutls_free(der.data);
        break;
    }
    default: {
        char *value = malloc(n + 1);
        if (value == NULL)
            return 0;
        memcpy(value, body, n);
        value[n] = '\0';
        long long s = kb_est_retry_after(value, 1700000000);
        if (s < -1)
            abort(); /* a wait is never negative: -1 means malformed */
        free(value);
    }
    }
    return 0;
}
