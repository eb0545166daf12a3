/* SPDX-License-Identifier: Apache-2.0 */
/* Where a PIN comes from, and how it is held.
 *
 * Sources, first found wins: --pin-file FILE, --pin-env NAME, the URI's pin-value or
 * pin-source, $CREDENTIALS_DIRECTORY/keybound.pin (systemd LoadCredential), the
 * terminal without echo. There is no option that takes the PIN itself. Files lose one
 * trailing newline (LF or CRLF) and nothing else. The PIN is read into a kb_secret and
 * zeroised by the caller right after C_Login. The GnuTLS PIN callback answers no when
 * GnuTLS asks again for the same token (attempt > 0: the last PIN was wrong). */
#ifndef KB_PIN_H
#define KB_PIN_H

#include <p11-kit/pkcs11.h>
#include <stdbool.h>

#include "src/util/err.h"
#include "src/util/secret.h"

typedef struct kb_pin_opts {
    const char *file;       /* --pin-file */
    const char *env;        /* --pin-env: the variable's name */
    const char *uri_source; /* pin-source from the key or token URI */
    const char *uri_value;  /* pin-value from a URI given in a file */
    /* A PIN keybound stored in a file it wrote (a network profile's pin line), read back by
     * the caller: messages and the marker name stored_file, never the PIN. */
    const char *stored_value;
    const char *stored_file;
    /* Non-NULL: kb_session_login hands a PIN the token accepted (C_Login said CKR_OK) to
     * *accepted instead of zeroising it; the caller frees it (kb_secret_free). */
    struct kb_secret **accepted;
    bool force;  /* log in despite a final-try or locked report */
    bool no_tty; /* never prompt (tests, daemons) */
} kb_pin_opts;

/* Fills *out with the PIN for the token named label and sets *source to a description
 * of where it came from (for messages: "--pin-file /x", never the PIN). Returns 0, or -1
 * with err set (no source available, unreadable file, empty or oversize PIN). */
int kb_pin_get(const kb_pin_opts *o, const char *label, kb_secret **out, char *source,
               size_t source_len, kb_err *err);

/* Whether kb_pin_get has a source to try: an option, the URI, the systemd credential,
 * or a terminal. */
bool kb_pin_available(const kb_pin_opts *o);

/* Whether the PIN would be asked for at the terminal (no other source is given). */
bool kb_pin_is_interactive(const kb_pin_opts *o);

/* Zeroises the PIN typed at the terminal, which is kept until the command ends (or the
 * token rejects it). main() calls this on the way out. */
void kb_pin_forget_typed(void);

/* Reads a secret file (what: "PIN file", "secret file") into s: at most KB_SECRET_MAX
 * bytes, one trailing newline dropped. Opened as src/util/trustfile.h says (never blocks on
 * a FIFO; refused when others can write it or its directory); refused when group or others
 * can read it, unless kb_secret_allow_readable(true) was called (--insecure-pin-file), then
 * a warning. */
int kb_secret_read_file(const char *path, const char *what, kb_secret *s, kb_err *err);

/* --insecure-pin-file: a PIN or secret file that others can read is used, with a warning. */
void kb_secret_allow_readable(bool allow);

/* Reads a PIN file: at most KB_SECRET_MAX bytes, one trailing newline dropped. */
int kb_pin_read_file(const char *path, kb_secret *s, kb_err *err);

/* Turns file:///p and file:p forms of pin-source into a plain path (p11-kit and GnuTLS
 * only take the plain form). Returns a pointer into src or NULL when not a file. */
const char *kb_pin_source_path(const char *src);

/* A token that rejected a PIN is not given one again by this process, by any path
 * (kb_session_login or the GnuTLS callback): a re-opened session must not spend another
 * of the token's tries. kb_pin_forget_rejections starts over (after a reload). */
void kb_pin_rejected(const char *label);
bool kb_pin_was_rejected(const char *label);
void kb_pin_forget_rejections(void);

/* A rejected PIN is remembered across processes (a restart, the next timer run) by a
 * marker file in keybound's state directory (src/util/statedir.h), one per token:
 * pin-rejected.<hash of the token's identity>. It names the token (manufacturer, model,
 * serial, label) and the PIN source: a file by path, device, inode, mtime and size; a
 * systemd credential by path and size (systemd writes the file anew at every start); an
 * environment variable by name and the value's length; never the PIN or a hash of it.
 * While it is there and the source is unchanged, no login is tried without --force. A PIN
 * typed at the terminal (or on a PIN pad) is a person's new decision each time: a marker
 * is written for it but never stops the next prompt. */
typedef struct kb_pin_token {
    char manufacturer[33];
    char model[17];
    char serial[17];
    char label[33];
} kb_pin_token;

void kb_pin_token_from_info(const CK_TOKEN_INFO *info, kb_pin_token *t);

/* Before a login with the PIN from o: 0 to go on, or -1 with err saying the PIN was
 * rejected before and how to clear the marker (the rejection then counts for
 * kb_pin_rejection_seen). */
int kb_pin_mark_check(const kb_pin_opts *o, const kb_pin_token *t, kb_err *err);

/* The token rejected the PIN from o: writes the marker (a failure to is logged). */
void kb_pin_mark_rejected(const kb_pin_opts *o, const kb_pin_token *t);

/* A login succeeded: removes the token's marker. */
void kb_pin_mark_clear(const kb_pin_token *t);

/* Whether this process saw a token reject a PIN (or refused to try one rejected before):
 * main() turns a failing command's exit code into 6 then. */
bool kb_pin_rejection_seen(void);

/* keybound refused to log in because the token reports its PIN locked or at its final try:
 * counts for kb_pin_rejection_seen (exit 6), writes no marker. */
void kb_pin_note_refusal(void);

/* The GnuTLS callback cannot see whether the PIN it gave was right; a token it gave one
 * to and that did not ask again had it accepted. Removes those tokens' markers; called
 * after a key opened, and on the way out. */
void kb_pin_settle(void);

/* Installs the process-wide GnuTLS PIN callback that serves o (which must outlive its
 * use). */
void kb_pin_install_gnutls(const kb_pin_opts *o);

#endif
