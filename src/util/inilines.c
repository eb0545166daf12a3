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
    size_t blanks = strspn(start, " \t");
    if (blanks > 0 && start[blanks] == '[')
        ini->error(ini->user, "this line is indented and starts with '[': write a section "
                              "header in the first column, and do not begin a continued value "
                              "with '['");
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
