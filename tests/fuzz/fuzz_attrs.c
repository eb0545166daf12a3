/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for what keybound decodes from a token or a user: EC parameters and
 * points as a token reports them, and pkcs11: URIs (parsing and pin-value redaction).
 * The first byte picks the decoder. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/attrs.h"
#include "pkcs11/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const unsigned char *in = data + 1;
    size_t n = size - 1;
    char name[16];
    unsigned bits;
    const unsigned char *pt;
    size_t ptlen;
    switch (data[0] % 3) {
    case 0:
        kb_ec_params_curve(in, n, name, sizeof name, &bits);
        break;
    case 1:
        if (kb_ec_point_raw(in, n, &pt, &ptlen) && (pt < in || pt + ptlen > in + n))
            abort(); /* the point must lie inside the attribute */
        break;
    default: {
        char *text = malloc(n + 1);
        if (text == NULL)
            return 0;
        memcpy(text, in, n);
        text[n] = '\0';
        P11KitUri *uri = NULL;
        kb_err err;
        if (kb_uri_parse(text, KB_URI_ALLOW_PIN_VALUE, &uri, &err) == 0)
            p11_kit_uri_free(uri);
        free(kb_uri_redact(text));
        free(text);
    }
    }
    return 0;
}
