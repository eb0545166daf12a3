/* SPDX-License-Identifier: Apache-2.0 */
/* 802.1X EAP-TLS profiles as text: a wpa_supplicant configuration or a NetworkManager
 * keyfile, written and read back.
 *
 * Pure: strings in, text out; no token, no files. Every value goes through the format's own
 * quoting (wpa_supplicant: "..." for printable ASCII without '"', else hex; the keyfile:
 * GKeyFile escapes, an SSID that would not read back as text as a list of bytes), so an odd
 * SSID or PIN can neither end a line nor add a setting. The text holds the PIN: callers
 * release it with kb_net_text_free, which zeroises it. Reading back finds only the pin line
 * (network check uses it, and removes it when the token rejects the PIN). */
#ifndef KB_NET_PROFILE_H
#define KB_NET_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "src/util/err.h"
#include "src/util/secret.h"

enum kb_net_format { KB_NET_NM, KB_NET_WPA };

struct kb_net_profile {
    const char *name; /* kb_network_name_valid */
    enum kb_net_format format;
    bool wired;
    const char *ssid; /* Wi-Fi: 1 to 32 bytes */
    const char *identity;
    const char *server_name;
    const char *ca_file; /* absolute paths of the files beside the profile */
    const char *cert_file;
    const char *key_uri;     /* pkcs11:...;type=private */
    const char *engine_path; /* wpa: libp11's OpenSSL engine */
    const char *module_path; /* wpa: the key's PKCS#11 module */
    const char *uuid;        /* nm: the connection's */
    int min_tls;             /* 12 or 13 */
    const char *pin;         /* NULL: no pin line */
};

/* "nm", "wpa"; and back (-1 for another word). */
const char *kb_net_format_name(enum kb_net_format f);
int kb_net_format_parse(const char *word);

/* "keybound-NAME.nmconnection" or "keybound-NAME.conf". */
void kb_net_profile_file(const char *name, enum kb_net_format f, char *out, size_t len);

/* The profile's text (malloc'd, NUL-terminated), or NULL with err set (a value the format
 * cannot hold: a path with a newline, an empty or oversize SSID). */
char *kb_net_render(const struct kb_net_profile *p, kb_err *err);

/* Zeroises and frees a profile's text. */
void kb_net_text_free(char *text);

/* The PIN stored in a profile's text: 1 found (pin holds it), 0 there is none, -1 err (a
 * pin line keybound cannot read; name is the file, for the message). */
int kb_net_pin_read(const char *text, size_t len, enum kb_net_format f, const char *name,
                    kb_secret *pin, kb_err *err);

/* The text without its pin line(s) (malloc'd; kb_net_text_free), or NULL without memory. */
char *kb_net_pin_remove(const char *text, size_t len, enum kb_net_format f);

#endif
