#include "config.h"

#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/pkcs11.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "src/util/log.h"
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
    return !(o->file || o->env || o->uri_value || o->uri_source ||
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

void kb_pin_rejected(const char *label)
{
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

void kb_pin_forget_rejections(void)
{
    pthread_mutex_lock(&pin_lock);
    n_rejected = 0;
    pthread_mutex_unlock(&pin_lock);
}

static const kb_pin_opts *gnutls_pin_opts;

static int gnutls_pin_cb(void *userdata, int attempt, const char *token_url,
                         const char *token_label, unsigned int flags, char *pin, size_t pin_max)
{
    (void)userdata;
    (void)token_url;
    const kb_pin_opts *o = gnutls_pin_opts;
    /* GnuTLS asks again after a wrong PIN, and again for every re-imported key object;
     * answering would spend another of the token's tries without a person deciding to. */
    if (attempt > 0 || (flags & GNUTLS_PIN_WRONG)) {
        kb_pin_rejected(token_label);
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
        return -1;
    }
    if (flags & GNUTLS_PIN_COUNT_LOW)
        kb_log(KB_LOG_WARN, "token '%s' reports a wrong PIN was entered before", token_label);
    kb_secret *s = NULL;
    char source[300];
    kb_err err;
    pthread_mutex_lock(&pin_lock);
    int got = kb_pin_get(o, token_label, &s, source, sizeof source, &err);
    pthread_mutex_unlock(&pin_lock);
    if (got != 0) {
        kb_log(KB_LOG_ERROR, "%s", err.msg);
        return -1;
    }
    int rc = -1;
    if (s->len < pin_max) {
        memcpy(pin, s->buf, s->len + 1);
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
