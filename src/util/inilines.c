/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "inilines.h"

#include <ini.h>
#include <stdarg.h>
#include <string.h>

int kb_ini_fail(struct kb_ini *ini, const char *fmt, ...)
{
    if (!ini->failed) {
        ini->failed = true;
        ini->err_line = ini->line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ini->why.msg, sizeof ini->why.msg, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static char *read_line(char *buf, int size, void *stream)
{
    struct kb_ini *ini = stream;
    if (fgets(buf, size, ini->file) == NULL)
        return NULL;
    ini->line++;
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] != '\n' && !feof(ini->file)) {
        kb_ini_fail(ini, "line is longer than %d characters", size - 2);
        int c;
        while ((c = fgetc(ini->file)) != EOF && c != '\n')
            ;
    }
    char *start = buf;
    if (ini->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3;
    /* inih's own test for "indented" is any white space, as isspace(3) says. */
    size_t blanks = strspn(start, " \t\v\f\r");
    if (blanks > 0 && start[blanks] == '[')
        kb_ini_fail(ini, "this line is indented and starts with '[': write a section "
                         "header in the first column");
    else if (blanks > 0 && start[blanks] != '\0' && start[blanks] != '\n' &&
             strchr(";#", start[blanks]) == NULL)
        /* Debian's libinih is built with INI_ALLOW_MULTILINE: it would hand this line to
         * the handler as one more value of the key above, e.g. a second, wider allow. */
        kb_ini_fail(ini, "this line is indented; write every key = value in the first "
                         "column (an indented line would be taken as one more value of "
                         "the key above it)");
    if (start[0] == '[') {
        /* With an unbalanced quote, take the first ']' and let the caller refuse the name. */
        bool quoted = false;
        char *close = start + 1;
        for (; *close != '\0' && (quoted || *close != ']'); close++)
            if (*close == '"')
                quoted = !quoted;
        if (*close != ']')
            close = strchr(start, ']');
        if (close != NULL) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(close - start - 1), start + 1);
            if (!ini->failed)
                ini->section(ini->user, name);
        }
    }
    return buf;
}

static int on_key(void *user, const char *section, const char *key, const char *value)
{
    (void)section; /* read_line has handed it over first */
    struct kb_ini *ini = user;
    return ini->failed ? 0 : ini->key(ini->user, key, value);
}

int kb_ini_parse(struct kb_ini *ini, FILE *f, const char *name, kb_err *err)
{
    ini->file = f;
    ini->line = 0;
    ini->failed = false;
    /* inih reads lines of up to this many bytes (Debian's build sizes its line buffer by
     * it); GnuTLS priority strings, long globs and listen paths need more than 200. */
    ini_max_line = 4096;
    int line = ini_parse_stream(read_line, ini, on_key, ini);
    if (line < 0)
        return kb_err_set(err, "%s %s cannot be read", ini->kind, name);
    /* inih names the first line it could not take; an error of ours before it comes first. */
    if (ini->failed && (line == 0 || ini->err_line <= (unsigned)line))
        return kb_err_set(err, "%s:%u: %s", name, ini->err_line, ini->why.msg);
    if (line > 0)
        return kb_err_set(err, "%s:%d: syntax error: expected %s or key = value", name, line,
                          ini->expected);
    return 0;
}
