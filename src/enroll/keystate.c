/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "keystate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pkcs11/attrs.h"
#include "src/util/log.h"
#include "src/util/statedir.h"

int kb_keystate_name(const char *serial, const unsigned char *id, size_t id_len, char *out,
                     size_t len)
{
    char safe[sizeof((kb_keystate *)0)->token_serial], hex[KB_KEYSTATE_HEXID_MAX];
    size_t n = 0;
    for (; serial[n] && n + 1 < sizeof safe; n++) {
        char c = serial[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        safe[n] = ok ? c : '_'; /* a serial is the token's text: no path may come of it */
    }
    safe[n] = '\0';
    if (id_len == 0 || id_len > KB_ID_MAX)
        return -1;
    kb_hex(id, id_len, hex);
    int w = snprintf(out, len, "key-%s-%s.json", n ? safe : "_", hex);
    return w > 0 && (size_t)w < len ? 0 : -1;
}

void kb_pending_clear(struct kb_pending *p)
{
    free(p->csr);
    memset(p, 0, sizeof *p);
}

void kb_keystate_clear(kb_keystate *s)
{
    kb_pending_clear(&s->pending);
    memset(s, 0, sizeof *s);
}

int kb_pending_set_csr(struct kb_pending *p, const unsigned char *der, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, der, len);
    free(p->csr);
    p->csr = copy;
    p->csr_len = len;
    return 0;
}

/* ---- reading: every field checked for its type and size, nothing assumed ---- */

struct reader {
    const char *name;
    kb_err *err;
};

static int bad(struct reader *r, const char *what)
{
    return kb_err_set(r->err,
                      "state file %s: %s; it is not one keybound wrote: move it away (keybound "
                      "then forgets that key's last result and pending request)",
                      r->name, what);
}

static int get_string(struct reader *r, json_object *o, const char *key, bool required, char *out,
                      size_t len)
{
    json_object *v;
    char what[128];
    out[0] = '\0';
    if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
        if (!required)
            return 0;
        snprintf(what, sizeof what, "\"%s\" is missing", key);
        return bad(r, what);
    }
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(what, sizeof what, "\"%s\" is not a string", key);
        return bad(r, what);
    }
    size_t n = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (n >= len || strlen(s) != n) {
        snprintf(what, sizeof what, "\"%s\" is too long or holds a NUL", key);
        return bad(r, what);
    }
    memcpy(out, s, n + 1);
    return 0;
}

static int get_time(struct reader *r, json_object *o, const char *key, long long *out)
{
    json_object *v;
    char what[128];
    *out = 0;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return 0;
    errno = 0;
    long long t = json_object_is_type(v, json_type_int) ? (long long)json_object_get_int64(v) : -1;
    if (t < 0 || errno != 0 || t > 253402300799LL) { /* up to 9999-12-31 */
        snprintf(what, sizeof what, "\"%s\" is not a time (seconds since 1970)", key);
        return bad(r, what);
    }
    *out = t;
    return 0;
}

static int get_bool(struct reader *r, json_object *o, const char *key, bool *out)
{
    json_object *v;
    char what[128];
    *out = false;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(what, sizeof what, "\"%s\" is not true or false", key);
        return bad(r, what);
    }
    *out = json_object_get_boolean(v);
    return 0;
}

static bool is_hex_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 2 || n > 2 * KB_ID_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static int get_op(struct reader *r, json_object *o, const char *key, bool required, char *out,
                  size_t len)
{
    if (get_string(r, o, key, required, out, len) != 0)
        return -1;
    if (out[0] && strcmp(out, "enroll") != 0 && strcmp(out, "renew") != 0) {
        char what[128];
        snprintf(what, sizeof what, "\"%s\" is neither \"enroll\" nor \"renew\"", key);
        return bad(r, what);
    }
    return 0;
}

static int read_pending(struct reader *r, json_object *o, struct kb_pending *p)
{
    char op[16], b64[KB_KEYSTATE_MAX_FILE];
    if (!json_object_is_type(o, json_type_object))
        return bad(r, "\"pending\" is not an object");
    if (get_op(r, o, "operation", true, op, sizeof op) != 0 ||
        get_bool(r, o, "rekey", &p->rekey) != 0 ||
        get_string(r, o, "key_id", true, p->key_id, sizeof p->key_id) != 0 ||
        get_string(r, o, "label", true, p->label, sizeof p->label) != 0 ||
        get_string(r, o, "url", true, p->url, sizeof p->url) != 0 ||
        get_string(r, o, "csr", true, b64, sizeof b64) != 0 ||
        get_time(r, o, "submitted", &p->submitted) != 0 ||
        get_time(r, o, "last_reply", &p->last_reply) != 0 ||
        get_time(r, o, "next_poll", &p->next_poll) != 0)
        return -1;
    p->renew = strcmp(op, "renew") == 0;
    if (!is_hex_id(p->key_id))
        return bad(r, "\"pending\".\"key_id\" is not a key id in lower-case hex");
    if (p->rekey && !p->renew)
        return bad(r, "\"pending\" is a rekey but not a renewal");
    if (strncmp(p->url, "https://", 8) != 0)
        return bad(r, "\"pending\".\"url\" is not an https:// URL");
    gnutls_datum_t in = {(unsigned char *)b64, (unsigned)strlen(b64)}, der = {NULL, 0};
    if (in.size == 0 || gnutls_base64_decode2(&in, &der) < 0 || der.size == 0 ||
        der.size > KB_KEYSTATE_MAX_CSR) {
        gnutls_free(der.data);
        return bad(r, "\"pending\".\"csr\" is not a request in base64");
    }
    /* The request is sent again as it is: it must at least be a PKCS#10 request. */
    gnutls_x509_crq_t crq;
    bool ok = gnutls_x509_crq_init(&crq) >= 0;
    if (ok) {
        ok = gnutls_x509_crq_import(crq, &der, GNUTLS_X509_FMT_DER) >= 0;
        gnutls_x509_crq_deinit(crq);
    }
    int rc = ok ? kb_pending_set_csr(p, der.data, der.size) : -1;
    gnutls_free(der.data);
    if (rc != 0)
        return bad(r, ok ? "out of memory" : "\"pending\".\"csr\" is not a PKCS#10 request");
    p->active = true;
    return 0;
}

int kb_keystate_parse(const char *text, size_t len, const char *name, kb_keystate *out, kb_err *err)
{
    struct reader r = {name, err};
    memset(out, 0, sizeof *out);
    if (len > KB_KEYSTATE_MAX_FILE)
        return bad(&r, "it is larger than 64 KiB");
    if (memchr(text, '\0', len) != NULL)
        return bad(&r, "it holds a NUL byte");
    json_tokener *tok = json_tokener_new_ex(8);
    if (tok == NULL)
        return kb_err_set(err, "state file %s: out of memory", name);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = jerr == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
    json_tokener_free(tok);
    int rc = -1;
    json_object *v;
    long long schema = -1;
    char what[160];
    if (o == NULL || jerr != json_tokener_success) {
        snprintf(what, sizeof what, "not JSON (%s)",
                 jerr == json_tokener_continue ? "it ends too early"
                                               : json_tokener_error_desc(jerr));
        bad(&r, what);
        goto out;
    }
    for (size_t i = used; i < len; i++)
        if (strchr(" \t\r\n", text[i]) == NULL) {
            bad(&r, "text after the JSON object");
            goto out;
        }
    if (!json_object_is_type(o, json_type_object)) {
        bad(&r, "not a JSON object");
        goto out;
    }
    if (json_object_object_get_ex(o, "schema", &v) && json_object_is_type(v, json_type_int))
        schema = (long long)json_object_get_int64(v);
    if (schema != 1) {
        bad(&r, "\"schema\" is not 1");
        goto out;
    }
    if (get_string(&r, o, "token_serial", true, out->token_serial, sizeof out->token_serial) != 0 ||
        get_string(&r, o, "token_label", false, out->token_label, sizeof out->token_label) != 0 ||
        get_string(&r, o, "key_id", true, out->key_id, sizeof out->key_id) != 0 ||
        get_string(&r, o, "label", false, out->label, sizeof out->label) != 0 ||
        get_string(&r, o, "key_uri", false, out->key_uri, sizeof out->key_uri) != 0)
        goto out;
    if (!is_hex_id(out->key_id)) {
        bad(&r, "\"key_id\" is not a key id in lower-case hex");
        goto out;
    }
    if (json_object_object_get_ex(o, "last", &v) && v != NULL) {
        if (!json_object_is_type(v, json_type_object)) {
            bad(&r, "\"last\" is not an object");
            goto out;
        }
        if (get_op(&r, v, "operation", true, out->last_op, sizeof out->last_op) != 0 ||
            get_string(&r, v, "result", true, out->last_result, sizeof out->last_result) != 0 ||
            get_time(&r, v, "time", &out->last_time) != 0 ||
            get_string(&r, v, "message", false, out->last_message, sizeof out->last_message) != 0)
            goto out;
    }
    if (json_object_object_get_ex(o, "pending", &v) && v != NULL &&
        read_pending(&r, v, &out->pending) != 0)
        goto out;
    rc = 0;
out:
    json_object_put(o);
    if (rc != 0)
        kb_keystate_clear(out);
    return rc;
}

/* ---- writing ---- */

static json_object *str(const char *s)
{
    return json_object_new_string(s);
}

char *kb_keystate_format(const kb_keystate *s)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "schema", json_object_new_int(1));
    json_object_object_add(o, "token_serial", str(s->token_serial));
    json_object_object_add(o, "token_label", str(s->token_label));
    json_object_object_add(o, "key_id", str(s->key_id));
    json_object_object_add(o, "label", str(s->label));
    json_object_object_add(o, "key_uri", str(s->key_uri));
    if (s->last_op[0]) {
        json_object *l = json_object_new_object();
        json_object_object_add(l, "operation", str(s->last_op));
        json_object_object_add(l, "result", str(s->last_result));
        json_object_object_add(l, "time", json_object_new_int64(s->last_time));
        if (s->last_message[0])
            json_object_object_add(l, "message", str(s->last_message));
        json_object_object_add(o, "last", l);
    }
    const struct kb_pending *p = &s->pending;
    char *b64 = NULL;
    if (p->active) {
        gnutls_datum_t der = {p->csr, (unsigned)p->csr_len}, text = {NULL, 0};
        if (gnutls_base64_encode2(&der, &text) < 0) {
            json_object_put(o);
            return NULL;
        }
        json_object *j = json_object_new_object();
        json_object_object_add(j, "operation", str(p->renew ? "renew" : "enroll"));
        json_object_object_add(j, "rekey", json_object_new_boolean(p->rekey));
        json_object_object_add(j, "key_id", str(p->key_id));
        json_object_object_add(j, "label", str(p->label));
        json_object_object_add(j, "url", str(p->url));
        json_object_object_add(j, "csr",
                               json_object_new_string_len((char *)text.data, (int)text.size));
        gnutls_free(text.data);
        json_object_object_add(j, "submitted", json_object_new_int64(p->submitted));
        json_object_object_add(j, "last_reply", json_object_new_int64(p->last_reply));
        json_object_object_add(j, "next_poll", json_object_new_int64(p->next_poll));
        json_object_object_add(o, "pending", j);
    }
    const char *text = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = text ? strlen(text) : 0;
    if (text != NULL && (b64 = malloc(n + 2)) != NULL) {
        memcpy(b64, text, n);
        b64[n] = '\n';
        b64[n + 1] = '\0';
    }
    json_object_put(o);
    return b64;
}

/* ---- files ---- */

/* Reads path (at most KB_KEYSTATE_MAX_FILE + 1 bytes): 0, 1 when it is not there, -1. */
static int load_path(const char *path, kb_keystate *out, kb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = kb_state_read(path, KB_KEYSTATE_MAX_FILE, &text, &len, err);
    if (rc == 0) {
        rc = kb_keystate_parse(text, len, path, out, err);
        free(text);
    }
    return rc;
}

int kb_keystate_load(const char *dir, const char *serial, const unsigned char *id, size_t id_len,
                     kb_keystate *out, kb_err *err)
{
    char name[256], path[PATH_MAX], hex[KB_KEYSTATE_HEXID_MAX];
    memset(out, 0, sizeof *out);
    if (kb_keystate_name(serial, id, id_len, name, sizeof name) != 0 ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return kb_err_set(err, "no state file name for a key in %s", dir);
    int rc = load_path(path, out, err);
    if (rc != 0)
        return rc;
    kb_hex(id, id_len, hex);
    if (strcmp(out->token_serial, serial) != 0 || strcmp(out->key_id, hex) != 0) {
        kb_keystate_clear(out);
        return kb_err_set(err, "state file %s is for another key than its name says; move it away",
                          path);
    }
    return 0;
}

int kb_keystate_id(const char *hex, unsigned char id[KB_ID_MAX], size_t *len)
{
    if (!is_hex_id(hex))
        return -1;
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        id[i] = (unsigned char)v;
    }
    *len = n;
    return 0;
}

int kb_keystate_save(const char *dir, const kb_keystate *s, kb_err *err)
{
    unsigned char id[KB_ID_MAX];
    size_t id_len = 0;
    char name[256];
    if (kb_keystate_id(s->key_id, id, &id_len) != 0 ||
        kb_keystate_name(s->token_serial, id, id_len, name, sizeof name) != 0)
        return kb_err_set(err, "no state file name for key '%s'", s->label);
    char *text = kb_keystate_format(s);
    if (text == NULL)
        return kb_err_set(err, "out of memory");
    int rc = kb_state_write(dir, name, text, strlen(text), err);
    free(text);
    return rc;
}

int kb_keystate_remove(const char *dir, const char *serial, const unsigned char *id, size_t id_len,
                       kb_err *err)
{
    char name[256], path[PATH_MAX];
    if (kb_keystate_name(serial, id, id_len, name, sizeof name) != 0 ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return kb_err_set(err, "no state file name for a key in %s", dir);
    if (unlink(path) != 0 && errno != ENOENT)
        return kb_err_set(err, "state file %s cannot be removed: %s", path, strerror(errno));
    return 0;
}

int kb_keystate_forget(const char *dir, const kb_keystate *s, kb_err *err)
{
    unsigned char id[KB_ID_MAX];
    size_t id_len = 0;
    if (kb_keystate_id(s->key_id, id, &id_len) != 0)
        return kb_err_set(err, "no state file name for key '%s'", s->label);
    return kb_keystate_remove(dir, s->token_serial, id, id_len, err);
}

int kb_keystate_find_enroll(const char *dir, const char *serial, const char *label,
                            kb_keystate *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 1;
    int rc = 1;
    struct dirent *e;
    while (rc == 1 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "key-", 4) != 0 || n < 9 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char path[PATH_MAX];
        kb_err err;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            continue;
        if (load_path(path, out, &err) != 0) {
            kb_log(KB_LOG_WARN, "%s", err.msg);
            continue;
        }
        if (out->pending.active && !out->pending.renew && strcmp(out->token_serial, serial) == 0 &&
            strcmp(out->pending.label, label) == 0)
            rc = 0;
        else
            kb_keystate_clear(out);
    }
    closedir(d);
    return rc;
}
