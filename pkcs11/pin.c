/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/pkcs11.h>
#include <inttypes.h>
#include <limits.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "src/util/log.h"
#include "src/util/statedir.h"
#include "src/util/trustfile.h"

const char *kb_pin_source_path(const char *src)
{
    if (src == NULL)
        return NULL;
    if (strncmp(src, "file://", 7) == 0)
        return src + 7; /* file:///p: the authority is empty, the path is /p */
    if (strncmp(src, "file:", 5) == 0)
        return src + 5;
    return src;
}

static void strip_newline(kb_secret *s)
{
    if (s->len > 0 && s->buf[s->len - 1] == '\n') {
        s->buf[--s->len] = '\0';
        if (s->len > 0 && s->buf[s->len - 1] == '\r')
            s->buf[--s->len] = '\0';
    }
}

static bool secret_readable_ok;

void kb_secret_allow_readable(bool allow)
{
    secret_readable_ok = allow;
}

int kb_secret_read_file(const char *path, const char *what, kb_secret *s, kb_err *err)
{
    int fd = kb_trustfile_open(
        path, what, KB_TF_SECRET | (secret_readable_ok ? KB_TF_ALLOW_READABLE : 0u), err);
    if (fd < 0)
        return -1;
    s->len = 0;
    for (;;) {
        ssize_t n = read(fd, s->buf + s->len, KB_SECRET_MAX + 1 - s->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return kb_err_set(err, "%s %s cannot be read: %s", what, path, strerror(e));
        }
        if (n == 0)
            break;
        s->len += (size_t)n;
        if (s->len > KB_SECRET_MAX)
            break;
    }
    close(fd);
    s->buf[s->len > KB_SECRET_MAX ? KB_SECRET_MAX : s->len] = '\0';
    strip_newline(s);
    if (s->len > KB_SECRET_MAX - 1)
        return kb_err_set(err, "%s %s is longer than %d bytes; is it the right file?", what, path,
                          KB_SECRET_MAX - 1);
    if (s->len == 0)
        return kb_err_set(err, "%s %s is empty", what, path);
    return 0;
}

int kb_pin_read_file(const char *path, kb_secret *s, kb_err *err)
{
    return kb_secret_read_file(path, "PIN file", s, err);
}

static int copy_text(kb_secret *s, const char *text, const char *what, kb_err *err)
{
    size_t n = strlen(text);
    if (n == 0)
        return kb_err_set(err, "%s is empty", what);
    if (n > KB_SECRET_MAX - 1)
        return kb_err_set(err, "%s is longer than %d bytes", what, KB_SECRET_MAX - 1);
    memcpy(s->buf, text, n + 1);
    s->len = n;
    return 0;
}

/* The terminal's echo must come back even when the user gives up with Ctrl-C. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_fd = -1;

static void restore_tty(int sig)
{
    if (tty_fd >= 0)
        tcsetattr(tty_fd, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int read_tty(const char *label, kb_secret *s, kb_err *err)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || tcgetattr(fd, &saved_tty) != 0) {
        if (fd >= 0)
            close(fd);
        return kb_err_set(err,
                          "token '%s' needs a PIN and there is no terminal to ask on; give "
                          "--pin-file FILE, --pin-env NAME, pin-source=FILE in the URI or the "
                          "systemd credential keybound.pin",
                          label);
    }
    struct termios quiet = saved_tty;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    struct sigaction sa = {.sa_handler = restore_tty}, old[3];
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    tty_fd = fd;
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &old[i]);
    /* Echo goes off before the prompt shows: whatever is typed after it stays hidden. */
    tcsetattr(fd, TCSAFLUSH, &quiet);
    dprintf(fd, "PIN for token '%s': ", label);
    s->len = 0;
    int rc = 0;
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n == 0 && s->len > 0)) {
            /* A PIN cut short by Ctrl-D or a read error must not reach C_Login. */
            rc = kb_err_set(err, "the PIN for token '%s' was not ended with Enter", label);
            s->len = 0;
            break;
        }
        if (n == 0 || c == '\n')
            break;
        if (s->len >= KB_SECRET_MAX - 1) {
            rc = kb_err_set(err, "the PIN typed for token '%s' is too long", label);
            break;
        }
        s->buf[s->len++] = c;
    }
    tcsetattr(fd, TCSAFLUSH, &saved_tty);
    tty_fd = -1;
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &old[i], NULL);
    dprintf(fd, "\n");
    close(fd);
    s->buf[s->len] = '\0';
    if (rc == 0 && s->len == 0)
        rc = kb_err_set(err, "no PIN was typed for token '%s'", label);
    return rc;
}

static bool credential_path(char *out, size_t len)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    return dir != NULL && *dir && (size_t)snprintf(out, len, "%s/keybound.pin", dir) < len &&
           access(out, F_OK) == 0;
}

bool kb_pin_is_interactive(const kb_pin_opts *o)
{
    char path[4096];
    return !(o->file || o->env || o->stored_value || o->uri_value || o->uri_source ||
             credential_path(path, sizeof path));
}

bool kb_pin_available(const kb_pin_opts *o)
{
    if (!kb_pin_is_interactive(o))
        return true;
    if (o->no_tty)
        return false;
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* A PIN typed at the terminal is kept (locked, out of core dumps) until the command
 * ends, so that one command that logs in twice (a listing, then GnuTLS) asks once. */
static struct {
    char label[33];
    kb_secret *pin;
} typed;

static int typed_pin(const char *label, kb_secret *s, kb_err *err)
{
    if (typed.pin != NULL && strcmp(typed.label, label) == 0) {
        memcpy(s->buf, typed.pin->buf, typed.pin->len + 1);
        s->len = typed.pin->len;
        return 0;
    }
    if (read_tty(label, s, err) != 0)
        return -1;
    kb_pin_forget_typed();
    if ((typed.pin = kb_secret_new()) != NULL) {
        memcpy(typed.pin->buf, s->buf, s->len + 1);
        typed.pin->len = s->len;
        snprintf(typed.label, sizeof typed.label, "%s", label);
    }
    return 0;
}

void kb_pin_forget_typed(void)
{
    kb_secret_free(typed.pin);
    typed.pin = NULL;
}

int kb_pin_get(const kb_pin_opts *o, const char *label, kb_secret **out, char *source,
               size_t source_len, kb_err *err)
{
    *out = NULL;
    kb_secret *s = kb_secret_new();
    if (s == NULL)
        return kb_err_set(err, "cannot allocate locked memory for the PIN");
    int rc;
    char what[300];
    char cred_path[4096];
    if (o->file != NULL) {
        snprintf(source, source_len, "--pin-file %s", o->file);
        rc = kb_pin_read_file(o->file, s, err);
    } else if (o->env != NULL) {
        snprintf(source, source_len, "--pin-env %s", o->env);
        const char *v = getenv(o->env);
        snprintf(what, sizeof what, "environment variable %s (named by --pin-env)", o->env);
        rc = v == NULL ? kb_err_set(err, "%s is not set", what) : copy_text(s, v, what, err);
    } else if (o->stored_value != NULL) {
        snprintf(source, source_len, "the pin line of %s", o->stored_file);
        rc = copy_text(s, o->stored_value, source, err);
    } else if (o->uri_value != NULL) {
        snprintf(source, source_len, "the URI's pin-value");
        rc = copy_text(s, o->uri_value, "the URI's pin-value", err);
    } else if (o->uri_source != NULL) {
        const char *path = kb_pin_source_path(o->uri_source);
        snprintf(source, source_len, "pin-source %s", path);
        rc = kb_pin_read_file(path, s, err);
    } else if (credential_path(cred_path, sizeof cred_path)) {
        snprintf(source, source_len, "systemd credential keybound.pin");
        rc = kb_pin_read_file(cred_path, s, err);
    } else if (o->no_tty) {
        rc = kb_err_set(err,
                        "token '%s' needs a PIN; give --pin-file FILE, --pin-env NAME, "
                        "pin-source=FILE in the URI or the systemd credential keybound.pin",
                        label);
    } else {
        snprintf(source, source_len, "the terminal");
        rc = typed_pin(label, s, err);
    }
    if (rc != 0) {
        kb_secret_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* Guards the rejection list and serialises prompts: GnuTLS calls back from any thread. */
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;
static char rejected[16][33];
static size_t n_rejected;

static bool was_rejected_locked(const char *label)
{
    for (size_t i = 0; i < n_rejected; i++)
        if (strcmp(rejected[i], label) == 0)
            return true;
    return false;
}

static void note_rejection(void);

void kb_pin_rejected(const char *label)
{
    note_rejection();
    if (typed.pin != NULL && strcmp(typed.label, label) == 0)
        kb_pin_forget_typed();
    pthread_mutex_lock(&pin_lock);
    if (!was_rejected_locked(label)) {
        /* When the list is full the oldest entry goes; tokens with the same label share
         * an entry, which only makes keybound more careful. */
        if (n_rejected == sizeof rejected / sizeof rejected[0])
            memmove(rejected, rejected + 1, sizeof rejected - sizeof rejected[0]), n_rejected--;
        snprintf(rejected[n_rejected++], sizeof rejected[0], "%s", label);
    }
    pthread_mutex_unlock(&pin_lock);
}

bool kb_pin_was_rejected(const char *label)
{
    pthread_mutex_lock(&pin_lock);
    bool r = was_rejected_locked(label);
    pthread_mutex_unlock(&pin_lock);
    return r;
}

static void forget_seen(void);

void kb_pin_forget_rejections(void)
{
    pthread_mutex_lock(&pin_lock);
    n_rejected = 0;
    pthread_mutex_unlock(&pin_lock);
    forget_seen();
}

/* ---- Rejections remembered across processes ---------------------------------------- */

static pthread_mutex_t mark_lock = PTHREAD_MUTEX_INITIALIZER;
static bool rejection_seen;

bool kb_pin_rejection_seen(void)
{
    pthread_mutex_lock(&mark_lock);
    bool r = rejection_seen;
    pthread_mutex_unlock(&mark_lock);
    return r;
}

static void note_rejection(void)
{
    pthread_mutex_lock(&mark_lock);
    rejection_seen = true;
    pthread_mutex_unlock(&mark_lock);
}

void kb_pin_note_refusal(void)
{
    note_rejection();
}

static void forget_seen(void)
{
    pthread_mutex_lock(&mark_lock);
    rejection_seen = false;
    pthread_mutex_unlock(&mark_lock);
}

void kb_pin_token_from_info(const CK_TOKEN_INFO *info, kb_pin_token *t)
{
    kb_trim_field(t->manufacturer, info->manufacturerID, sizeof info->manufacturerID);
    kb_trim_field(t->model, info->model, sizeof info->model);
    kb_trim_field(t->serial, info->serialNumber, sizeof info->serialNumber);
    kb_trim_field(t->label, info->label, sizeof info->label);
}

/* Appends "key = value\n" with control characters shown as '?': one line per field
 * whatever a token or a path holds. */
static void add_line(char *buf, size_t len, const char *key, const char *value)
{
    size_t n = strlen(buf);
    int w = snprintf(buf + n, len - n, "%s = ", key);
    if (w < 0 || (size_t)w >= len - n)
        return;
    n += (size_t)w;
    for (const unsigned char *v = (const unsigned char *)value; *v && n + 2 < len; v++)
        buf[n++] = (*v < 0x20 || *v == 0x7f) ? '?' : (char)*v;
    buf[n++] = '\n';
    buf[n] = '\0';
}

static void add_number(char *buf, size_t len, const char *key, const char *fmt, ...)
    KB_PRINTF(4, 5);
static void add_number(char *buf, size_t len, const char *key, const char *fmt, ...)
{
    char v[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    add_line(buf, len, key, v);
}

static void token_lines(const kb_pin_token *t, char *buf, size_t len)
{
    buf[0] = '\0';
    add_line(buf, len, "token-manufacturer", t->manufacturer);
    add_line(buf, len, "token-model", t->model);
    add_line(buf, len, "token-serial", t->serial);
    add_line(buf, len, "token-label", t->label);
}

static void file_lines(const char *path, bool credential, char *buf, size_t len)
{
    struct stat st;
    add_line(buf, len, "source", credential ? "systemd-credential" : "file");
    add_line(buf, len, "source-path", path);
    if (stat(path, &st) != 0) {
        add_line(buf, len, "source-state", "missing");
        return;
    }
    if (!credential) {
        /* A new file (an editor's rename, a new credential copy) or new contents. */
        add_number(buf, len, "source-device", "%ju", (uintmax_t)st.st_dev);
        add_number(buf, len, "source-inode", "%ju", (uintmax_t)st.st_ino);
        add_number(buf, len, "source-mtime", "%lld.%09ld", (long long)st.st_mtim.tv_sec,
                   (long)st.st_mtim.tv_nsec);
    }
    add_number(buf, len, "source-size", "%lld", (long long)st.st_size);
}

/* Where kb_pin_get would take the PIN from, in the order it looks: shown (for messages)
 * and the marker's source lines. Returns false for a person's answer (terminal, none):
 * a marker never stops those. */
static bool source_lines(const kb_pin_opts *o, char *shown, size_t shown_len, char *buf, size_t len)
{
    char cred[4096];
    buf[0] = '\0';
    if (o->file != NULL) {
        snprintf(shown, shown_len, "--pin-file %s", o->file);
        file_lines(o->file, false, buf, len);
    } else if (o->env != NULL) {
        snprintf(shown, shown_len, "--pin-env %s", o->env);
        const char *v = getenv(o->env);
        add_line(buf, len, "source", "environment");
        add_line(buf, len, "source-name", o->env);
        add_number(buf, len, "source-size", "%zu", v != NULL ? strlen(v) : (size_t)0);
    } else if (o->stored_value != NULL) {
        /* The file changes (inode, mtime) whenever keybound rewrites the PIN in it. */
        snprintf(shown, shown_len, "the pin line of %s", o->stored_file);
        file_lines(o->stored_file, false, buf, len);
    } else if (o->uri_value != NULL) {
        snprintf(shown, shown_len, "the URI's pin-value");
        add_line(buf, len, "source", "uri-pin-value");
        add_number(buf, len, "source-size", "%zu", strlen(o->uri_value));
    } else if (o->uri_source != NULL) {
        const char *path = kb_pin_source_path(o->uri_source);
        snprintf(shown, shown_len, "pin-source %s", path);
        file_lines(path, false, buf, len);
    } else if (credential_path(cred, sizeof cred)) {
        snprintf(shown, shown_len, "systemd credential keybound.pin");
        file_lines(cred, true, buf, len);
    } else {
        snprintf(shown, shown_len, "the terminal");
        add_line(buf, len, "source", "terminal");
        return false;
    }
    return true;
}

/* The marker's file name: one per token, from its identity (not from any PIN). */
static void marker_name(const kb_pin_token *t, char *out, size_t len)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    const char *parts[4] = {t->manufacturer, t->model, t->serial, t->label};
    for (int i = 0; i < 4; i++) {
        for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++)
            h = (h ^ *c) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    snprintf(out, len, "pin-rejected.%016" PRIx64, h);
}

/* The marker's lines that identify token and source (its comments left out). */
static bool read_marker(const char *path, char *buf, size_t len)
{
    /* Never blocks: something other than a file in its place is no marker. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return false;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        close(fd);
        return false;
    }
    char line[1024];
    size_t n = 0;
    buf[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        size_t l = strlen(line);
        if (n + l + 1 > len)
            break;
        memcpy(buf + n, line, l + 1);
        n += l;
    }
    fclose(f);
    return true;
}

int kb_pin_mark_check(const kb_pin_opts *o, const kb_pin_token *t, kb_err *err)
{
    char dir[PATH_MAX], name[64], path[PATH_MAX + 64], shown[4200];
    char want[8192], have[8192];
    if (kb_state_dir(dir, sizeof dir, false, NULL) != 0)
        return 0;
    marker_name(t, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    token_lines(t, want, sizeof want);
    size_t n = strlen(want);
    bool blocks = source_lines(o, shown, sizeof shown, want + n, sizeof want - n);
    if (!read_marker(path, have, sizeof have))
        return 0;
    if (strcmp(have, want) != 0)
        return 0; /* another source (or token): it gets its one try */
    if (!blocks) {
        kb_log(KB_LOG_WARN, "token '%s' rejected a PIN typed here before: fewer tries may be left",
               t->label);
        return 0;
    }
    if (o->force) {
        kb_log(KB_LOG_WARN,
               "the PIN from %s was rejected by token '%s' before; trying it once more (--force)",
               shown, t->label);
        return 0;
    }
    note_rejection();
    return kb_err_set(err,
                      "the PIN from %s was rejected by token '%s' before; not trying it again: "
                      "change the PIN source, or delete %s, or pass --force",
                      shown, t->label, path);
}

void kb_pin_mark_rejected(const kb_pin_opts *o, const kb_pin_token *t)
{
    note_rejection();
    char dir[PATH_MAX], name[64], shown[4200], when[32], body[12288];
    kb_err err;
    if (kb_state_dir(dir, sizeof dir, true, &err) != 0) {
        kb_log(KB_LOG_WARN, "%s; the rejected PIN is not remembered", err.msg);
        return;
    }
    marker_name(t, name, sizeof name);
    char ids[8192];
    token_lines(t, ids, sizeof ids);
    size_t n = strlen(ids);
    source_lines(o, shown, sizeof shown, ids + n, sizeof ids - n);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(when, sizeof when, "unknown");
    char label[sizeof t->label];
    snprintf(label, sizeof label, "%s", t->label);
    for (char *c = shown; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = '?';
    for (char *c = label; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = '?';
    snprintf(body, sizeof body,
             "# keybound: token '%s' rejected the PIN from %s at %s.\n"
             "# keybound does not try this PIN source on this token again while it is unchanged.\n"
             "# Delete this file (or pass --force) to try it anyway. It holds no PIN.\n%s",
             label, shown, when, ids);
    if (kb_state_write(dir, name, body, strlen(body), &err) != 0)
        kb_log(KB_LOG_WARN, "%s; the rejected PIN is not remembered", err.msg);
}

void kb_pin_mark_clear(const kb_pin_token *t)
{
    char dir[PATH_MAX], name[64], path[PATH_MAX + 64];
    if (kb_state_dir(dir, sizeof dir, false, NULL) != 0)
        return;
    marker_name(t, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) == 0)
        kb_log(KB_LOG_DEBUG, "token '%s' accepted the PIN: removed %s", t->label, path);
}

/* Tokens the GnuTLS callback gave a PIN to, waiting for kb_pin_settle. */
static kb_pin_token answered[16];
static size_t n_answered;

static bool same_token(const kb_pin_token *a, const kb_pin_token *b)
{
    return strcmp(a->manufacturer, b->manufacturer) == 0 && strcmp(a->model, b->model) == 0 &&
           strcmp(a->serial, b->serial) == 0 && strcmp(a->label, b->label) == 0;
}

static void answered_set(const kb_pin_token *t, bool add)
{
    pthread_mutex_lock(&mark_lock);
    for (size_t i = 0; i < n_answered; i++)
        if (same_token(&answered[i], t)) {
            answered[i] = answered[--n_answered];
            break;
        }
    if (add && n_answered < sizeof answered / sizeof answered[0])
        answered[n_answered++] = *t;
    pthread_mutex_unlock(&mark_lock);
}

void kb_pin_settle(void)
{
    kb_pin_token done[16];
    pthread_mutex_lock(&mark_lock);
    size_t n = n_answered;
    memcpy(done, answered, n * sizeof done[0]);
    n_answered = 0;
    pthread_mutex_unlock(&mark_lock);
    for (size_t i = 0; i < n; i++)
        kb_pin_mark_clear(&done[i]);
}

static bool token_from_url(const char *url, const char *label, kb_pin_token *t)
{
    memset(t, 0, sizeof *t);
    P11KitUri *u = p11_kit_uri_new();
    bool ok = u != NULL && url != NULL &&
              p11_kit_uri_parse(url, P11_KIT_URI_FOR_TOKEN, u) == P11_KIT_URI_OK;
    if (ok)
        kb_pin_token_from_info(p11_kit_uri_get_token_info(u), t);
    else if (label != NULL)
        snprintf(t->label, sizeof t->label, "%s", label);
    if (u != NULL)
        p11_kit_uri_free(u);
    return ok;
}

static const kb_pin_opts *gnutls_pin_opts;

static int gnutls_pin_cb(void *userdata, int attempt, const char *token_url,
                         const char *token_label, unsigned int flags, char *pin, size_t pin_max)
{
    (void)userdata;
    const kb_pin_opts *o = gnutls_pin_opts;
    kb_pin_token tok;
    token_from_url(token_url, token_label, &tok);
    /* GnuTLS asks again after a wrong PIN, and again for every re-imported key object;
     * answering would spend another of the token's tries without a person deciding to. */
    if (attempt > 0 || (flags & GNUTLS_PIN_WRONG)) {
        kb_pin_rejected(token_label);
        answered_set(&tok, false);
        if (o != NULL)
            kb_pin_mark_rejected(o, &tok);
        kb_log(KB_LOG_ERROR, "wrong PIN for token '%s'; not retried", token_label);
        return -1;
    }
    if (kb_pin_was_rejected(token_label)) {
        kb_log(KB_LOG_ERROR, "the PIN for token '%s' was rejected before; not tried again",
               token_label);
        return -1;
    }
    if (o == NULL)
        return -1;
    if ((flags & GNUTLS_PIN_FINAL_TRY) && !o->force) {
        kb_log(KB_LOG_ERROR, "token '%s' reports 1 PIN try left; not logging in without --force",
               token_label);
        kb_pin_note_refusal();
        return -1;
    }
    kb_secret *s = NULL;
    char source[300];
    kb_err err;
    pthread_mutex_lock(&pin_lock);
    int got = kb_pin_mark_check(o, &tok, &err);
    if (got == 0 && (flags & GNUTLS_PIN_COUNT_LOW))
        kb_log(KB_LOG_WARN, "token '%s' reports a wrong PIN was entered before", token_label);
    if (got == 0)
        got = kb_pin_get(o, token_label, &s, source, sizeof source, &err);
    pthread_mutex_unlock(&pin_lock);
    if (got != 0) {
        kb_log(KB_LOG_ERROR, "%s", err.msg);
        return -1;
    }
    int rc = -1;
    if (s->len < pin_max) {
        memcpy(pin, s->buf, s->len + 1);
        answered_set(&tok, true);
        rc = 0;
    }
    kb_secret_free(s);
    return rc;
}

void kb_pin_install_gnutls(const kb_pin_opts *o)
{
    gnutls_pin_opts = o;
    gnutls_pkcs11_set_pin_function(gnutls_pin_cb, NULL);
}
