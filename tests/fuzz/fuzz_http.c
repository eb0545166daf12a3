/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the EST client's HTTP/1.1 reply reader. The first byte says where
 * the input is cut into reads (a network read ends anywhere), the rest is the reply, then
 * the close. A complete reply never holds more body than the limit; nothing may read
 * outside the input. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "src/enroll/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] == 0 ? size : data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct kb_http_reply r;
    kb_err err;
    if (kb_http_reply_init(&r, &err) != 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i += step)
        rc = kb_http_reply_feed(&r, "/cacerts", text + i, step < len - i ? step : len - i, &err);
    if (rc == 0)
        rc = kb_http_reply_feed(&r, "/cacerts", "", 0, &err);
    if (rc == 1 && (r.len > KB_HTTP_BODY_MAX || (r.len > 0 && r.body == NULL) || r.malformed))
        abort();
    if (rc == -1 && !r.malformed)
        abort();
    kb_http_reply_free(&r);
    return 0;
}
