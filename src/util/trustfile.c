/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "trustfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

const char *kb_trustfile_writer(unsigned mode, unsigned uid, int is_dir)
{
    if (!(mode & (S_IWGRP | S_IWOTH)))
        return NULL;
    /* A sticky directory owned by root (/tmp): others may add files, not replace ours. */
    if (is_dir && (mode & S_ISVTX) && uid == 0)
        return NULL;
    return (mode & S_IWOTH) ? "every user" : "its group";
}

bool kb_trustfile_owner_ok(unsigned uid, unsigned euid)
{
    return uid == 0 || uid == euid;
}

static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a plain file";
}

/* The directory holding path, as the path names it. */
static void parent_of(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(out, len, ".");
    else if (slash == path)
        snprintf(out, len, "/");
    else
        snprintf(out, len, "%.*s", (int)(slash - path), path);
}

static int checks(int fd, const char *path, const char *what, unsigned flags, kb_err *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return kb_err_set(err, "%s %s cannot be read: %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kb_err_set(err, "%s %s is not a regular file (%s); give a regular file", what, path,
                          kind_of(st.st_mode));
    const char *who = kb_trustfile_writer(st.st_mode, st.st_uid, 0);
    if (who != NULL)
        return kb_err_set(err, "%s %s is writable by %s; refusing it: chmod go-w %s", what, path,
                          who, path);
    /* Its owner may change it at will: that must be us or root. */
    if (!kb_trustfile_owner_ok(st.st_uid, geteuid()))
        return kb_err_set(err,
                          "%s %s belongs to uid %u, neither root nor you; refusing it: chown it "
                          "to root or to uid %u",
                          what, path, (unsigned)st.st_uid, (unsigned)geteuid());
    /* The directory that really holds it (a symlink's target's), whose writers may
     * replace it. */
    char real[PATH_MAX], dir[PATH_MAX];
    if (realpath(path, real) == NULL)
        return kb_err_set(err, "%s %s cannot be resolved: %s", what, path, strerror(errno));
    parent_of(real, dir, sizeof dir);
    struct stat ds;
    if (stat(dir, &ds) != 0)
        return kb_err_set(err, "%s %s: its directory %s cannot be examined: %s", what, path, dir,
                          strerror(errno));
    if ((who = kb_trustfile_writer(ds.st_mode, ds.st_uid, 1)) != NULL)
        return kb_err_set(err,
                          "%s %s is in %s, which %s can write; refusing it: chmod go-w %s, or "
                          "keep the file in a directory only its owner can write",
                          what, path, dir, who, dir);
    bool shared_tmp = (ds.st_mode & S_ISVTX) && ds.st_uid == 0;
    if (!shared_tmp && !kb_trustfile_owner_ok(ds.st_uid, geteuid()))
        return kb_err_set(err,
                          "%s %s is in %s, which belongs to uid %u, neither root nor you; "
                          "refusing it: keep the file in a directory of root's or yours",
                          what, path, dir, (unsigned)ds.st_uid);
    if ((flags & KB_TF_SECRET) && (st.st_mode & (S_IRGRP | S_IROTH))) {
        if (!(flags & KB_TF_ALLOW_READABLE))
            return kb_err_set(err,
                              "%s %s can be read by other users; refusing it: chmod 600 %s, or "
                              "pass --insecure-pin-file",
                              what, path, path);
        kb_log(KB_LOG_WARN, "%s %s can be read by other users (--insecure-pin-file); chmod 600 it",
               what, path);
    }
    return 0;
}

static int open_checked(const char *path, const char *what, unsigned flags, int *open_errno,
                        kb_err *err)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        *open_errno = errno;
        return kb_err_set(err, "%s %s cannot be %s: %s", what, path,
                          (flags & KB_TF_SECRET) ? "read" : "opened", strerror(errno));
    }
    *open_errno = 0;
    if (checks(fd, path, what, flags, err) != 0) {
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return kb_err_set(err, "%s %s cannot be read: %s", what, path, strerror(e));
    }
    return fd;
}

int kb_trustfile_open(const char *path, const char *what, unsigned flags, kb_err *err)
{
    int e;
    return open_checked(path, what, flags, &e, err);
}

FILE *kb_trustfile_fopen(const char *path, const char *what, unsigned flags, kb_err *err)
{
    int fd = kb_trustfile_open(path, what, flags, err);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        kb_err_set(err, "%s %s cannot be read: %s", what, path, strerror(errno));
        close(fd);
    }
    return f;
}

int kb_trustfile_check(const char *path, const char *what, unsigned flags, kb_err *err)
{
    int e;
    int fd = open_checked(path, what, flags, &e, err);
    if (fd < 0)
        return (e != 0 && (flags & KB_TF_MISSING_OK)) ? 0 : -1;
    close(fd);
    return 0;
}
