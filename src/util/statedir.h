/* SPDX-License-Identifier: Apache-2.0 */
/* keybound's persistent state directory, and files written into it atomically.
 *
 * The directory is, first found: $KEYBOUND_STATE_DIR (tests), the first path of
 * $STATE_DIRECTORY (systemd's StateDirectory=; it may list several, colon-separated),
 * /var/lib/keybound when running as root, $XDG_STATE_HOME/keybound, ~/.local/state/keybound.
 * It is not a runtime directory: systemd empties those between restarts, and what is kept
 * here (a rejected PIN's marker) must outlive a restart. */
#ifndef KB_STATEDIR_H
#define KB_STATEDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The pure choice, from the values of the variables above (NULL or "" when unset) and
 * whether the effective user is root. Returns 0, or -1 when nothing names a directory or
 * it does not fit in out. */
int kb_state_dir_choose(const char *keybound_state_dir, const char *state_directory, bool root,
                        const char *xdg_state_home, const char *home, char *out, size_t len);

/* The directory for this process (from the environment); with create, made (0700, with
 * any missing parents) when it is not there. */
int kb_state_dir(char *out, size_t len, bool create, kb_err *err);

/* Writes data to dir/name through a temporary file in dir and rename(2), mode 0600: a
 * reader sees the old file or the new one, never a part. */
int kb_state_write(const char *dir, const char *name, const char *data, size_t len, kb_err *err);

/* Reads a state file (not following a symlink) into *text (malloc'd, NUL-terminated):
 * 0, 1 when there is none, or -1 with err naming it (unreadable, not a regular file). Only
 * the first max + 1 bytes are read: a longer file shows as longer than max. */
int kb_state_read(const char *path, size_t max, char **text, size_t *len, kb_err *err);

#endif
