/* SPDX-License-Identifier: Apache-2.0 */
/* Diagnostics on stderr.
 *
 * kb_log prints "keybound: " and one line. Messages at KB_LOG_DEBUG appear only with
 * -v. Nothing logged may contain a PIN; callers pass names, paths and codes only. */
#ifndef KB_LOG_H
#define KB_LOG_H

#include "err.h"

enum kb_log_level { KB_LOG_ERROR, KB_LOG_WARN, KB_LOG_INFO, KB_LOG_DEBUG };

void kb_log_set_verbosity(int verbose);
int kb_log_verbosity(void);
void kb_log(enum kb_log_level level, const char *fmt, ...) KB_PRINTF(2, 3);

#endif
