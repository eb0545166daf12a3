/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool set(const char *v)
{
    return v != NULL && *v != '\0';
}

int kb_state_dir_choose(const char *keybound_state_dir, const char *state_directory, bool root,
                        const char *xdg_state_home, const char *home, char *out, size_t len)
{
    int n;
    if (set(keybound_state_dir)) {
        n = snprintf(out, len, "%s", keybound_state_dir);
    } else if (set(state_directory) && state_directory[0] != ':') {
        /* StateDirectory=a b gives "/var/lib/a:/var/lib/b": ours is the first. */
        n = snprintf(out, len, "%.*s", (int)strcspn(state_directory, ":"), state_directory);
    } else if (root) {
        n = snprintf(out, len, "/var/lib/keybound");
    } else if (set(xdg_state_home) && xdg_state_home[0] == '/') {
        /* The XDG spec: a relative value is invalid and ignored. */
        n = snprintf(out, len, "%s/keybound", xdg_state_home);
    } else if (set(home)) {
        n = snprintf(out, len, "%s/.local/state/keybound", home);
    } else {
        return -1;
    }
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* mkdir -p, each directory made 0700. */
static int make_dirs(char *path, kb_err *err)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            kb_err_set(err, "state directory %s cannot be made: %s", path, strerror(e));
            *p = c;
            return -1;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return kb_err_set(err, "state directory %s is not a directory", path);
    return 0;
}

int kb_state_dir(char *out, size_t len, bool create, kb_err *err)
{
    const char *home = getenv("HOME");
    if (!set(home)) {
        struct passwd *pw = getpwuid(geteuid());
        home = pw != NULL ? pw->pw_dir : NULL;
    }
    if (kb_state_dir_choose(getenv("KEYBOUND_STATE_DIR"), getenv("STATE_DIRECTORY"), geteuid() == 0,
                            getenv("XDG_STATE_HOME"), home, out, len) != 0)
        return kb_err_set(err,
                          "no state directory: set KEYBOUND_STATE_DIR, STATE_DIRECTORY or HOME");
    return create ? make_dirs(out, err) : 0;
}

int kb_state_write(const char *dir, const char *name, const char *data, size_t len, kb_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, name) >= sizeof tmp)
        return kb_err_set(err, "state file name in %s is too long", dir);
    int fd = mkstemp(tmp); /* 0600 */
    if (fd < 0)
        return kb_err_set(err, "%s cannot be written: %s", path, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return kb_err_set(err, "%s cannot be written: %s", path, strerror(e));
        }
        off += (size_t)n;
    }
    bool bad = fchmod(fd, 0600) != 0 || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad)
        bad = true, e = errno;
    if (bad) {
        unlink(tmp);
        return kb_err_set(err, "%s cannot be written: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return kb_err_set(err, "%s cannot be written: %s", path, strerror(e));
    }
    /* The rename itself reaches the disk with the directory. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int kb_state_read(const char *path, size_t max, char **text, size_t *len, kb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        return kb_err_set(err, "state file %s cannot be read: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kb_err_set(err, "state file %s is not a regular file; move it away", path);
    }
    char *buf = malloc(max + 2);
    size_t n = 0;
    ssize_t got = 0;
    while (buf != NULL && n <= max &&
           ((got = read(fd, buf + n, max + 1 - n)) > 0 || (got < 0 && errno == EINTR)))
        n += got > 0 ? (size_t)got : 0;
    int e = errno;
    close(fd);
    if (buf == NULL || got < 0) {
        free(buf);
        return kb_err_set(err, "state file %s cannot be read: %s", path,
                          buf ? strerror(e) : "out of memory");
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}
