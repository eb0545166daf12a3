/* SPDX-License-Identifier: Apache-2.0 */
/* The network profiles keybound wrote, as it remembers them: one JSON file per profile in
 * the state directory (src/util/statedir.h), "network-NAME.json".
 *
 * network check, renew and status find profiles here: the files written, the key (its URI,
 * its token's serial, and the SHA-256 of its SubjectPublicKeyInfo, which is how renew and
 * status match a key), what the profile says (server name, SSID, identity) and whether it
 * holds a PIN. Never the PIN itself. Written atomically, mode 0600; read strictly and
 * bounded: a file that is not what keybound writes is one line naming it. */
#ifndef KB_NET_REGISTRY_H
#define KB_NET_REGISTRY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "src/network/profile.h"
#include "src/util/err.h"

#define KB_NET_REGISTRY_MAX (64 * 1024)

struct kb_net_entry {
    char name[65];
    enum kb_net_format format;
    char profile[PATH_MAX]; /* absolute paths */
    char certificate[PATH_MAX];
    char ca[PATH_MAX];
    char dropin[PATH_MAX]; /* "" when none was written */
    char key_uri[2048];
    char token_serial[17];
    char spki_sha256[65]; /* lower-case hex */
    char server_name[256];
    bool wired;
    char ssid[33]; /* "" when wired */
    char identity[256];
    int min_tls; /* 12 or 13 */
    bool pin_stored;
    char policy[PATH_MAX]; /* "" for the default */
};

/* "network-NAME.json" */
void kb_net_entry_file(const char *name, char *out, size_t len);

/* The JSON text (malloc'd). */
char *kb_net_entry_format(const struct kb_net_entry *e);

/* text (len bytes) into out; name is the file, for messages. */
int kb_net_entry_parse(const char *text, size_t len, const char *name, struct kb_net_entry *out,
                       kb_err *err);

/* Writes e to dir/network-NAME.json, atomically, 0600. */
int kb_net_entry_save(const char *dir, const struct kb_net_entry *e, kb_err *err);

/* dir/network-NAME.json: 0 read, 1 there is none, -1 err. */
int kb_net_entry_load(const char *dir, const char *name, struct kb_net_entry *out, kb_err *err);

/* Every profile in dir (*out malloc'd, sorted by name). A file that cannot be read is a
 * warning naming it, and left out. */
int kb_net_entry_list(const char *dir, struct kb_net_entry **out, size_t *n, kb_err *err);

#endif
