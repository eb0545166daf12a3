/* SPDX-License-Identifier: Apache-2.0 */
/* Diagnostics on stderr.
 *
 * kb_log prints "keybound: " and one line. Messages at KB_LOG_DEBUG appear only with
 * -v. Nothing logged may contain a PIN; callers pass names, paths and codes only. */
#ifndef KB_LOG_H
#define KB_LOG_H

#include <stdbool.h>

#include "err.h"

enum kb_log_level { KB_LOG_ERROR, KB_LOG_WARN, KB_LOG_INFO, KB_LOG_DEBUG };

/* -1 (-q): errors and warnings only; 0: and notices; 1 (-v) and more: and debug lines. */
void kb_log_set_verbosity(int verbose);
/* Each line starts with the UTC time, unless stderr is the journal (which stamps its own):
 * for a service's log in a file. */
void kb_log_set_timestamps(bool on);
int kb_log_verbosity(void);
void kb_log(enum kb_log_level level, const char *fmt, ...) KB_PRINTF(2, 3);

#endif
