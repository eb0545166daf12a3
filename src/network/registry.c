/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "registry.h"

#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "src/util/log.h"
#include "src/util/statedir.h"

void kb_net_entry_file(const char *name, char *out, size_t len)
{
    snprintf(out, len, "network-%s.json", name);
}

/* The text fields, where they stand in the file: in "files" or at the top. An optional
 * field is null in the file when empty. */
static const struct field {
    const char *key;
    bool in_files;
    size_t offset, size;
    bool optional;
} fields[] = {
#define F(k, files, member, opt)                                                                   \
    {                                                                                              \
        k, files, offsetof(struct kb_net_entry, member), sizeof((struct kb_net_entry *)0)->member, \
            opt                                                                                    \
    }
    F("name", false, name, false),
    F("profile", true, profile, false),
    F("certificate", true, certificate, false),
    F("ca", true, ca, false),
    F("dropin", true, dropin, true),
    F("key_uri", false, key_uri, false),
    F("token_serial", false, token_serial, false),
    F("key_spki_sha256", false, spki_sha256, false),
    F("server_name", false, server_name, false),
    F("ssid", false, ssid, true),
    F("identity", false, identity, false),
    F("policy", false, policy, true),
#undef F
};

char *kb_net_entry_format(const struct kb_net_entry *e)
{
    json_object *o = json_object_new_object(), *files = json_object_new_object();
    json_object_object_add(o, "schema", json_object_new_int(1));
    json_object_object_add(o, "format", json_object_new_string(kb_net_format_name(e->format)));
    json_object_object_add(o, "files", files);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = (const char *)e + fields[i].offset;
        json_object_object_add(fields[i].in_files ? files : o, fields[i].key,
                               fields[i].optional && !*v ? NULL : json_object_new_string(v));
    }
    json_object_object_add(o, "wired", json_object_new_boolean(e->wired));
    json_object_object_add(o, "min_tls", json_object_new_string(e->min_tls == 13 ? "1.3" : "1.2"));
    json_object_object_add(o, "pin_stored", json_object_new_boolean(e->pin_stored));
    const char *text = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = text ? malloc(strlen(text) + 2) : NULL;
    if (copy != NULL)
        sprintf(copy, "%s\n", text);
    json_object_put(o);
    return copy;
}

static int bad(const char *name, const char *what, const char *key, kb_err *err)
{
    return kb_err_set(err,
                      "network registry file %s: \"%s\" %s; it is not one keybound wrote: write "
                      "the profile again with 'keybound network profile'",
                      name, key, what);
}

static bool absolute_path(const char *p)
{
    return p[0] == '/' && strpbrk(p, "\n\r") == NULL;
}

static int read_fields(json_object *o, json_object *files, const char *name,
                       struct kb_net_entry *out, kb_err *err)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const struct field *f = &fields[i];
        json_object *v = NULL;
        char *slot = (char *)out + f->offset;
        if (!json_object_object_get_ex(f->in_files ? files : o, f->key, &v) ||
            (v == NULL && !f->optional))
            return bad(name, "is missing", f->key, err);
        if (v == NULL)
            continue;
        if (!json_object_is_type(v, json_type_string))
            return bad(name, "is not a string", f->key, err);
        size_t n = (size_t)json_object_get_string_len(v);
        const char *s = json_object_get_string(v);
        if (n >= f->size || strlen(s) != n || (n == 0 && !f->optional))
            return bad(name, "is empty, too long or holds a NUL", f->key, err);
        memcpy(slot, s, n + 1);
        if ((f->in_files || strcmp(f->key, "policy") == 0) && n > 0 && !absolute_path(slot))
            return bad(name, "is not an absolute path", f->key, err);
    }
    return 0;
}

static int read_bool(json_object *o, const char *key, const char *name, bool *out, kb_err *err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
        return bad(name, "is not true or false", key, err);
    *out = json_object_get_boolean(v);
    return 0;
}

int kb_net_entry_parse(const char *text, size_t len, const char *name, struct kb_net_entry *out,
                       kb_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > KB_NET_REGISTRY_MAX || strlen(text) != len)
        return kb_err_set(err, "network registry file %s is too long or holds a NUL; move it away",
                          name);
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return kb_err_set(err, "out of memory");
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    /* Nothing but blanks after the object. */
    bool whole = json_tokener_get_error(tok) == json_tokener_success && end <= len &&
                 strspn(text + end, " \t\r\n") == len - end;
    json_tokener_free(tok);
    json_object *v = NULL, *files = NULL;
    int rc = -1;
    if (o == NULL || !whole || !json_object_is_type(o, json_type_object)) {
        kb_err_set(err, "network registry file %s is not a JSON object; move it away", name);
        goto out;
    }
    if (!json_object_object_get_ex(o, "schema", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int(v) != 1) {
        bad(name, "is not 1", "schema", err);
        goto out;
    }
    if (!json_object_object_get_ex(o, "files", &files) ||
        !json_object_is_type(files, json_type_object)) {
        bad(name, "is not an object", "files", err);
        goto out;
    }
    int format =
        json_object_object_get_ex(o, "format", &v) && json_object_is_type(v, json_type_string)
            ? kb_net_format_parse(json_object_get_string(v))
            : -1;
    if (format < 0) {
        bad(name, "is not \"nm\" or \"wpa\"", "format", err);
        goto out;
    }
    out->format = (enum kb_net_format)format;
    const char *tls =
        json_object_object_get_ex(o, "min_tls", &v) && json_object_is_type(v, json_type_string)
            ? json_object_get_string(v)
            : "";
    out->min_tls = strcmp(tls, "1.2") == 0 ? 12 : strcmp(tls, "1.3") == 0 ? 13 : 0;
    if (out->min_tls == 0) {
        bad(name, "is not \"1.2\" or \"1.3\"", "min_tls", err);
        goto out;
    }
    if (read_fields(o, files, name, out, err) != 0 ||
        read_bool(o, "wired", name, &out->wired, err) != 0 ||
        read_bool(o, "pin_stored", name, &out->pin_stored, err) != 0)
        goto out;
    if (!kb_network_name_valid(out->name)) {
        bad(name, "is not a network name", "name", err);
        goto out;
    }
    if (out->wired == (out->ssid[0] != '\0')) {
        bad(name, out->wired ? "is set for a wired profile" : "is missing", "ssid", err);
        goto out;
    }
    if (strlen(out->spki_sha256) != 64 || strspn(out->spki_sha256, "0123456789abcdef") != 64) {
        bad(name, "is not a SHA-256 in hex", "key_spki_sha256", err);
        goto out;
    }
    rc = 0;
out:
    json_object_put(o);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int kb_net_entry_save(const char *dir, const struct kb_net_entry *e, kb_err *err)
{
    char file[128];
    kb_net_entry_file(e->name, file, sizeof file);
    char *text = kb_net_entry_format(e);
    if (text == NULL)
        return kb_err_set(err, "out of memory");
    int rc = kb_state_write(dir, file, text, strlen(text), err);
    free(text);
    return rc;
}

static int load_path(const char *path, struct kb_net_entry *out, kb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = kb_state_read(path, KB_NET_REGISTRY_MAX, &text, &len, err);
    if (rc == 0)
        rc = kb_net_entry_parse(text, len, path, out, err);
    free(text);
    return rc;
}

int kb_net_entry_load(const char *dir, const char *name, struct kb_net_entry *out, kb_err *err)
{
    char file[128], path[PATH_MAX];
    kb_net_entry_file(name, file, sizeof file);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return kb_err_set(err, "network registry file name in %s is too long", dir);
    int rc = load_path(path, out, err);
    if (rc == 0 && strcmp(out->name, name) != 0)
        return kb_err_set(err, "network registry file %s is for profile '%s'; move it away", path,
                          out->name);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct kb_net_entry *)a)->name, ((const struct kb_net_entry *)b)->name);
}

int kb_net_entry_list(const char *dir, struct kb_net_entry **out, size_t *n, kb_err *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "network-", 8) != 0 || len < 14 ||
            strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
            continue;
        struct kb_net_entry *v = realloc(*out, (*n + 1) * sizeof *v);
        if (v == NULL) {
            closedir(d);
            free(*out);
            *out = NULL;
            *n = 0;
            return kb_err_set(err, "out of memory");
        }
        *out = v;
        kb_err why;
        if (load_path(path, &v[*n], &why) != 0)
            kb_log(KB_LOG_WARN, "%s", why.msg);
        else
            (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof **out, by_name);
    return 0;
}
