#include "config.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static int verbosity;

void kb_log_set_verbosity(int verbose)
{
    verbosity = verbose;
}

int kb_log_verbosity(void)
{
    return verbosity;
}

void kb_log(enum kb_log_level level, const char *fmt, ...)
{
    if (level == KB_LOG_DEBUG && verbosity < 1)
        return;
    static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line keeps lines whole when several threads log. */
    fprintf(stderr, "keybound: %s%s\n", prefix[level], line);
}
