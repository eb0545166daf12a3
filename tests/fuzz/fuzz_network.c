/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for what network check reads back (src/network/profile.h, registry.h):
 * the first byte picks the parser, the rest is the file. 0: a wpa_supplicant profile, 1: a
 * NetworkManager keyfile: the pin line is read, and the text without it has none; a PIN
 * read is one a profile can hold again and read back the same. 2: a registry file: what
 * parses is written out and reads back the same. Seed corpus: tests/fuzz/corpus/network. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/network/profile.h"
#include "src/network/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void profile(const char *text, size_t len, enum kb_net_format f)
{
    kb_secret *pin = kb_secret_new(), *again = kb_secret_new();
    kb_err err;
    if (pin == NULL || again == NULL)
        abort();
    int found = kb_net_pin_read(text, len, f, "/fuzz/profile", pin, &err);
    char *rest = kb_net_pin_remove(text, len, f);
    if (rest == NULL || kb_net_pin_read(rest, strlen(rest), f, "/fuzz/rest", again, &err) != 0)
        abort();
    if (found == 1) {
        struct kb_net_profile p = {
            .name = "fuzz",
            .format = f,
            .wired = true,
            .identity = "id",
            .server_name = "radius.example",
            .ca_file = "/ca.pem",
            .cert_file = "/cert.pem",
            .key_uri = "pkcs11:token=t;id=%01;type=private",
            .engine_path = "/engine.so",
            .module_path = "/module.so",
            .uuid = "00000000-0000-8000-8000-000000000000",
            .min_tls = 12,
            .pin = pin->buf,
        };
        char *t = kb_net_render(&p, &err);
        if (t == NULL || kb_net_pin_read(t, strlen(t), f, "/fuzz/again", again, &err) != 1 ||
            again->len != pin->len || memcmp(again->buf, pin->buf, pin->len) != 0)
            abort();
        kb_net_text_free(t);
    }
    kb_net_text_free(rest);
    kb_secret_free(pin);
    kb_secret_free(again);
}

static void registry(const char *text, size_t len)
{
    struct kb_net_entry a, b;
    kb_err err;
    if (kb_net_entry_parse(text, len, "/fuzz/network.json", &a, &err) != 0)
        return;
    char *out = kb_net_entry_format(&a);
    if (out == NULL || kb_net_entry_parse(out, strlen(out), "/fuzz/again.json", &b, &err) != 0 ||
        memcmp(&a, &b, sizeof a) != 0)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* The readers take NUL-terminated text of a given length, as kb_state_read gives it. */
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        profile(text, strlen(text), KB_NET_WPA);
        break;
    case 1:
        profile(text, strlen(text), KB_NET_NM);
        break;
    default:
        registry(text, size - 1);
    }
    free(text);
    return 0;
}
