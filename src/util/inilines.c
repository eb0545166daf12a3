#include "config.h"

#include "inilines.h"

#include <stdbool.h>
#include <string.h>

char *kb_ini_read_line(char *buf, int size, void *stream)
{
    struct kb_ini *ini = stream;
    if (fgets(buf, size, ini->file) == NULL)
        return NULL;
    ini->line++;
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] != '\n' && !feof(ini->file)) {
        char msg[64];
        snprintf(msg, sizeof msg, "line is longer than %d characters", size - 2);
        ini->error(ini->user, msg);
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
        ini->error(ini->user, "this line is indented and starts with '[': write a section "
                              "header in the first column");
    else if (blanks > 0 && start[blanks] != '\0' && start[blanks] != '\n' &&
             strchr(";#", start[blanks]) == NULL)
        /* Debian's libinih is built with INI_ALLOW_MULTILINE: it would hand this line to
         * the handler as one more value of the key above, e.g. a second, wider allow. */
        ini->error(ini->user, "this line is indented; write every key = value in the first "
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
            ini->section(ini->user, name);
        }
    }
    return buf;
}
