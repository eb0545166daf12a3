/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the tunnel's parsers: the first byte picks the tunnel config file
 * parser (libinih plus keybound's checks) or the HTTP CONNECT proxy reply parser. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/tunnel/settings.h"
#include "src/util/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kb_tunnel_conf confs[KB_TUNNEL_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    kb_err err;
    if (data[0] & 1) {
        int status;
        size_t header_len;
        int rc = kb_proxy_reply((const char *)data + 1, size - 1, &status, &header_len, &err);
        if (rc == 1 && (header_len > size - 1 || status < 0 || status > 999))
            abort(); /* the headers end inside the input, the status has three digits */
        return 0;
    }
    FILE *f = fmemopen((void *)(data + 1), size - 1, "r");
    if (f == NULL)
        return 0;
    size_t n;
    if (kb_tunnel_conf_parse(f, "/fuzz/tunnels.conf", confs, &n, NULL, &err) == 0 &&
        n > KB_TUNNEL_MAX)
        abort();
    fclose(f);
    return 0;
}
