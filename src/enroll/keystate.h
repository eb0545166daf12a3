/* SPDX-License-Identifier: Apache-2.0 */
/* What keybound remembers of a key between runs, one file per key in the state directory
 * (src/util/statedir.h): the last enrol or renew and how it went, and a request the EST
 * server accepted for later (202), kept so that the next run sends the same request again
 * (RFC 7030 4.2.3) instead of making a new key.
 *
 * A file is named by the token's serial and the key's CKA_ID (both stable while the key
 * lives: a rekey makes a new key, and a new file), "key-SERIAL-IDHEX.json", and holds one
 * JSON object (doc/keybound.1, FILES). It is written atomically, mode 0600; it never holds
 * a PIN or a secret, only what the server was sent anyway. Reading is strict and bounded:
 * a file that is not what keybound writes is one line naming it, never a guess. */
#ifndef KB_KEYSTATE_H
#define KB_KEYSTATE_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/facts.h"
#include "src/util/err.h"

#define KB_KEYSTATE_MAX_FILE (64 * 1024)
#define KB_KEYSTATE_MAX_CSR (16 * 1024)
#define KB_KEYSTATE_URL_MAX 1200
#define KB_KEYSTATE_URI_MAX 2048
#define KB_KEYSTATE_HEXID_MAX (2 * KB_ID_MAX + 1)

/* A request the server answered with 202: sent again as it is, to the same operation. */
struct kb_pending {
    bool active;
    bool renew; /* simplereenroll (renew); else simpleenroll (enroll) */
    bool rekey; /* renew --rekey: the request is for a new key, not the file's */
    char key_id[KB_KEYSTATE_HEXID_MAX]; /* CKA_ID (hex) of the key the request is for */
    char label[KB_LABEL_MAX];           /* and its label */
    char url[KB_KEYSTATE_URL_MAX];      /* where it was sent */
    unsigned char *csr;                 /* the request (DER), malloc'd */
    size_t csr_len;
    long long submitted;  /* first sent (seconds since the epoch) */
    long long last_reply; /* the latest 202 */
    long long next_poll;  /* when the server said to ask again; 0: it did not say */
};

typedef struct kb_keystate {
    char token_serial[sizeof((struct kb_token_facts *)0)->serial];
    char token_label[sizeof((struct kb_token_facts *)0)->label];
    char key_id[KB_KEYSTATE_HEXID_MAX];
    char label[KB_LABEL_MAX];
    char key_uri[KB_KEYSTATE_URI_MAX];
    /* The last enroll or renew on this key: "" when none was recorded. */
    char last_op[16];     /* "enroll", "renew" */
    char last_result[24]; /* "issued", "denied", "wait", "rejected", "unreachable", ... */
    long long last_time;
    char last_message[768]; /* why, when it did not issue; "" otherwise */
    struct kb_pending pending;
} kb_keystate;

/* "key-SERIAL-IDHEX.json"; characters of the serial other than [A-Za-z0-9] become '_'. */
int kb_keystate_name(const char *serial, const unsigned char *id, size_t id_len, char *out,
                     size_t len);

/* The file's text into out (cleared first); name is the file, for messages. */
int kb_keystate_parse(const char *text, size_t len, const char *name, kb_keystate *out,
                      kb_err *err);

/* The JSON text of s (malloc'd, NUL-terminated). */
char *kb_keystate_format(const kb_keystate *s);

/* The file dir/NAME for this serial and id: 0 read, 1 there is none, -1 err (unreadable,
 * not keybound's format, or for another key than its name says). */
int kb_keystate_load(const char *dir, const char *serial, const unsigned char *id, size_t id_len,
                     kb_keystate *out, kb_err *err);

/* Writes s to its file (named from its token_serial and key_id), atomically, 0600. */
int kb_keystate_save(const char *dir, const kb_keystate *s, kb_err *err);

/* Removes the file of serial and id; none there is no error. */
int kb_keystate_remove(const char *dir, const char *serial, const unsigned char *id, size_t id_len,
                       kb_err *err);

/* Removes s's own file (named from its token_serial and key_id). */
int kb_keystate_forget(const char *dir, const kb_keystate *s, kb_err *err);

/* The first file in dir whose pending request is an enrolment on token serial for label:
 * 0 found (out), 1 none. Files that cannot be read are skipped with a warning each. */
int kb_keystate_find_enroll(const char *dir, const char *serial, const char *label,
                            kb_keystate *out);

/* A key id from its lower-case hex (as key_id holds it): 0, or -1 when it is not one. */
int kb_keystate_id(const char *hex, unsigned char id[KB_ID_MAX], size_t *len);

/* Fills pending's request (a copy of der). */
int kb_pending_set_csr(struct kb_pending *p, const unsigned char *der, size_t len);

void kb_keystate_clear(kb_keystate *s);
void kb_pending_clear(struct kb_pending *p);

#endif
