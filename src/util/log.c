/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static int verbosity;
static bool stamps;

void kb_log_set_timestamps(bool on)
{
    stamps = on;
}

void kb_log_set_verbosity(int verbose)
{
    verbosity = verbose;
}

int kb_log_verbosity(void)
{
    return verbosity;
}

/* stderr goes to the journal when systemd says so (JOURNAL_STREAM names its device and
 * inode): then each line starts with its syslog priority, which journald reads. */
static bool to_journal(void)
{
    static int cached = -1;
    if (cached < 0) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long dev, ino;
        struct stat st;
        cached = js != NULL && sscanf(js, "%lu:%lu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
                 st.st_dev == dev && st.st_ino == ino;
    }
    return cached;
}

void kb_log(enum kb_log_level level, const char *fmt, ...)
{
    if ((level == KB_LOG_DEBUG && verbosity < 1) || (level == KB_LOG_INFO && verbosity < 0))
        return;
    static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line keeps lines whole when several threads log. */
    static const char *const priority[] = {"<3>", "<4>", "<6>", "<7>"};
    char when[40] = "";
    if (stamps && !to_journal()) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    }
    fprintf(stderr, "%s%skeybound: %s%s\n", to_journal() ? priority[level] : "", when,
            prefix[level], line);
}
