/* Feeding libinih line by line, knowing where we are.
 *
 * inih reports neither line numbers to its handler nor sections without keys; this reader
 * counts lines and hands every section header to the caller itself, before inih sees the
 * line. A header ends at the first ']' outside quotes ([endpoint "[::1]:443"]); a UTF-8
 * byte order mark on the first line is skipped, as inih does; a line that is too long, or
 * an indented line that is not blank or a comment, is an error: libinih built with
 * INI_ALLOW_MULTILINE (Debian's is) reads it as one more value of the previous key, or as
 * a section header, depending on what came before. */
#ifndef KB_INILINES_H
#define KB_INILINES_H

#include <stdio.h>

struct kb_ini {
    FILE *file;
    unsigned line; /* the line inih is handling now */
    void *user;
    void (*section)(void *user, const char *name);
    void (*error)(void *user, const char *message);
};

/* An ini_reader for ini_parse_stream; stream is a struct kb_ini. */
char *kb_ini_read_line(char *buf, int size, void *stream);

#endif
