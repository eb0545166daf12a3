/* SPDX-License-Identifier: Apache-2.0 */
/* One front end for keybound's INI files (the policy, keybound.conf) on libinih.
 *
 * inih reports neither line numbers to its handler nor sections without keys; kb_ini_parse
 * feeds it line by line, counts lines and hands every section header to the caller itself,
 * before inih sees the line. A header ends at the first ']' outside quotes ([endpoint
 * "[::1]:443"]); a UTF-8 byte order mark on the first line is skipped, as inih does; a line
 * that is too long, or an indented line that is not blank or a comment, is an error:
 * libinih built with INI_ALLOW_MULTILINE (Debian's is) reads it as one more value of the
 * previous key, or as a section header, depending on what came before. The first error
 * wins and stops the handlers; it is returned as "FILE:LINE: message". */
#ifndef KB_INILINES_H
#define KB_INILINES_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

struct kb_ini {
    /* Set by the caller. */
    void *user;
    void (*section)(void *user, const char *name);
    int (*key)(void *user, const char *key, const char *value); /* 0 after kb_ini_fail */
    const char *kind;     /* "policy": "policy FILE cannot be read" */
    const char *expected; /* "[section]": "syntax error: expected [section] or key = value" */
    /* Kept by kb_ini_parse. */
    FILE *file;
    unsigned line; /* the line being read */
    bool failed;
    unsigned err_line;
    kb_err why;
};

/* Records the first error, at the line being read; returns 0, inih's "stop". */
int kb_ini_fail(struct kb_ini *ini, const char *fmt, ...) KB_PRINTF(2, 3);

/* Reads f (named name in messages) through ini's handlers. */
int kb_ini_parse(struct kb_ini *ini, FILE *f, const char *name, kb_err *err);

#endif
