/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "store.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pkcs11/attrs.h"

#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
#define AUTH_MAX 64 /* TPM2B_AUTH holds at most a SHA-512 digest */

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int kb_tpm2_store_locate(char *path, size_t len, kb_err *err)
{
    const char *env = getenv("TPM2_PKCS11_STORE");
    if (env != NULL && *env != '\0') {
        /* The module uses this directory whether or not the file is there yet. */
        if ((size_t)snprintf(path, len, "%s/%s", env, KB_TPM2_STORE_FILE) >= len)
            return kb_err_set(err, "TPM2_PKCS11_STORE is too long");
        return 0;
    }
    const char *home = getenv("HOME"), *xdg = getenv("XDG_DATA_HOME");
    char dirs[5][2048];
    size_t n = 0;
    snprintf(dirs[n++], sizeof dirs[0], "/etc/tpm2_pkcs11");
    /* tpm2-pkcs11 1.9.1 and later look in the XDG data directory before ~/.tpm2_pkcs11. */
    if (xdg != NULL && *xdg != '\0')
        snprintf(dirs[n++], sizeof dirs[0], "%s/tpm2-pkcs11", xdg);
    else if (home != NULL && *home != '\0')
        snprintf(dirs[n++], sizeof dirs[0], "%s/.local/share/tpm2-pkcs11", home);
    if (home != NULL && *home != '\0')
        snprintf(dirs[n++], sizeof dirs[0], "%s/.tpm2_pkcs11", home);
    snprintf(dirs[n++], sizeof dirs[0], ".");
    for (size_t i = 0; i < n; i++) {
        if ((size_t)snprintf(path, len, "%s/%s", dirs[i], KB_TPM2_STORE_FILE) < len && exists(path))
            return 0;
    }
    return kb_err_set(err,
                      "no tpm2-pkcs11 store found (%s in /etc/tpm2_pkcs11, ~/.tpm2_pkcs11 "
                      "or the working directory); set TPM2_PKCS11_STORE as for the module",
                      KB_TPM2_STORE_FILE);
}

/* The value of key in the module's YAML map ("? !!str \"key\"\n  : !!TYPE \"value\""),
 * malloc'd, or NULL. Only the flat maps tpm2-pkcs11 writes are understood; a value with
 * an escape is not one of them and counts as absent. */
static char *yaml_get(const char *yaml, const char *key)
{
    char want[128];
    snprintf(want, sizeof want, "? !!str \"%s\"", key);
    for (const char *p = yaml; (p = strstr(p, want)) != NULL; p += strlen(want)) {
        const char *q = p + strlen(want);
        while (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t')
            q++;
        if (*q != ':')
            continue;
        q++;
        while (*q == ' ')
            q++;
        if (strncmp(q, "!!", 2) == 0)
            q += strcspn(q, " \n");
        while (*q == ' ')
            q++;
        if (*q != '"')
            continue;
        const char *end = strchr(++q, '"');
        if (end == NULL || memchr(q, '\\', (size_t)(end - q)) != NULL)
            return NULL;
        char *v = malloc((size_t)(end - q) + 1);
        if (v != NULL) {
            memcpy(v, q, (size_t)(end - q));
            v[end - q] = '\0';
        }
        return v;
    }
    return NULL;
}

static int blob(sqlite3_stmt *st, int col, unsigned char **out, size_t *len)
{
    const void *v = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (v == NULL || n <= 0 || (*out = malloc((size_t)n)) == NULL)
        return -1;
    memcpy(*out, v, (size_t)n);
    *len = (size_t)n;
    return 0;
}

static char *text(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return v != NULL ? strdup((const char *)v) : NULL;
}

/* The primary's handle from pobjects.config: tpm2-pkcs11 serialises the ESYS_TR of a
 * persistent primary, and a serialised ESYS_TR begins with the TPM handle (4 bytes). */
static int primary_handle(const char *config, const char *path, const char *label, uint32_t *out,
                          kb_err *err)
{
    char *transient = yaml_get(config, "transient");
    char *tr = yaml_get(config, "esys-tr");
    int rc = -1;
    unsigned char h[4];
    if (transient == NULL || strcmp(transient, "false") != 0)
        kb_err_set(err,
                   "%s: token '%s' re-creates its primary key from a template at each use "
                   "(tpm2_ptool init --transient-parent); keybound attests keys under a "
                   "persistent primary only",
                   path, label);
    else if (tr == NULL || strlen(tr) < 8 || kb_unhex(tr, 8, h, 4) != 4)
        kb_err_set(err, "%s: token '%s' names no primary key keybound can read", path, label);
    else if ((*out = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]) >>
                 24 !=
             0x81)
        kb_err_set(err, "%s: token '%s': primary key 0x%08x is not a persistent handle", path,
                   label, *out);
    else
        rc = 0;
    free(transient);
    free(tr);
    return rc;
}

int kb_tpm2_store_read(const char *label, struct kb_tpm2_store *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    if (kb_tpm2_store_locate(out->path, sizeof out->path, err) != 0)
        return -1;
    const char *path = out->path;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *config = NULL;
    int rc = -1;
    /* Read-only, and never created: a store that is not there is an error, not a new file. */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        kb_err_set(err, "cannot open the tpm2-pkcs11 store %s: %s", path,
                   db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 2000); /* the module may be writing it */
    if (sqlite3_prepare_v2(db, "SELECT schema_version FROM schema", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        kb_err_set(err, "%s is not a tpm2-pkcs11 store keybound can read (no schema version)",
                   path);
        goto out;
    }
    int version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (version != KB_TPM2_STORE_SCHEMA) {
        kb_err_set(err,
                   "%s: tpm2-pkcs11 store schema version %d; keybound reads version %d "
                   "(tpm2-pkcs11 1.9)",
                   path, version, KB_TPM2_STORE_SCHEMA);
        goto out;
    }
    static const char q[] =
        "SELECT s.userpub, s.userpriv, s.userauthsalt, t.config, p.config FROM tokens t "
        "JOIN sealobjects s ON s.tokid = t.id JOIN pobjects p ON p.id = t.pid WHERE t.label = ?";
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, label, -1, SQLITE_STATIC) != SQLITE_OK) {
        kb_err_set(err, "%s: cannot read its tokens: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        kb_err_set(err, "%s holds no token '%s' (is it the store the module uses?)", path, label);
        goto out;
    }
    char *tok_config = text(st, 3);
    config = text(st, 4);
    if (blob(st, 0, &out->seal_pub, &out->seal_pub_len) != 0 ||
        blob(st, 1, &out->seal_priv, &out->seal_priv_len) != 0 ||
        (out->salt = text(st, 2)) == NULL || *out->salt == '\0' || config == NULL) {
        free(tok_config);
        kb_err_set(err, "%s: token '%s' has no complete user seal object", path, label);
        goto out;
    }
    if (tok_config != NULL)
        out->tcti = yaml_get(tok_config, "tcti");
    free(tok_config);
    if (sqlite3_step(st) == SQLITE_ROW) {
        kb_err_set(err, "%s: more than one token '%s'", path, label);
        goto out;
    }
    rc = primary_handle(config, path, label, &out->primary, err);
out:
    free(config);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc != 0)
        kb_tpm2_store_free(out);
    return rc;
}

void kb_tpm2_store_free(struct kb_tpm2_store *s)
{
    free(s->seal_pub);
    free(s->seal_priv);
    free(s->salt);
    free(s->tcti);
    memset(s, 0, sizeof *s);
}

int kb_tpm2_seal_auth(const kb_secret *pin, const char *salt, kb_secret *out, kb_err *err)
{
    /* tpm2-pkcs11's ssl_util_hash_pass: one SHA-256 over the PIN then the salt's hex text
     * (no KDF: the TPM's dictionary-attack lockout is what protects the PIN). */
    gnutls_hash_hd_t h;
    unsigned char md[32];
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return kb_err_set(err, "SHA-256 is not available");
    gnutls_hash(h, pin->buf, pin->len);
    gnutls_hash(h, salt, strlen(salt));
    gnutls_hash_deinit(h, md);
    static const char digits[] = "0123456789abcdef";
    kb_secret_wipe(out);
    for (size_t i = 0; i < 16; i++) {
        out->buf[2 * i] = digits[md[i] >> 4];
        out->buf[2 * i + 1] = digits[md[i] & 15];
    }
    out->len = 32;
    kb_memzero(md, sizeof md);
    return 0;
}

int kb_tpm2_unwrap_auth(const kb_secret *wrapping_key, const char *objauth_enc, const char *what,
                        kb_secret *out, kb_err *err)
{
    unsigned char key[32], iv[GCM_IV_LEN], ct[AUTH_MAX + GCM_TAG_LEN];
    int rc = -1;
    gnutls_aead_cipher_hd_t c = NULL;
    const char *p1 = strchr(objauth_enc, ':'), *p2 = p1 ? strchr(p1 + 1, ':') : NULL;
    long ct_len;
    if (p2 == NULL || strchr(p2 + 1, ':') != NULL ||
        kb_unhex(objauth_enc, (size_t)(p1 - objauth_enc), iv, sizeof iv) != GCM_IV_LEN ||
        kb_unhex(p1 + 1, (size_t)(p2 - p1 - 1), ct + AUTH_MAX, GCM_TAG_LEN) != GCM_TAG_LEN ||
        (ct_len = kb_unhex(p2 + 1, strlen(p2 + 1), ct, AUTH_MAX)) <= 0) {
        kb_err_set(err, "%s: CKA_TPM2_OBJAUTH_ENC is not tpm2-pkcs11's iv:tag:ctext", what);
        goto out;
    }
    /* GnuTLS wants the tag right after the ciphertext. */
    memmove(ct + ct_len, ct + AUTH_MAX, GCM_TAG_LEN);
    if (wrapping_key->len != 64 || kb_unhex(wrapping_key->buf, 64, key, sizeof key) != 32) {
        kb_err_set(err, "%s: the token's unsealed wrapping key is not 64 hex digits", what);
        goto out;
    }
    gnutls_datum_t k = {key, sizeof key};
    size_t pt_len = kb_secret_capacity() - 1;
    kb_secret_wipe(out);
    if (gnutls_aead_cipher_init(&c, GNUTLS_CIPHER_AES_256_GCM, &k) < 0 ||
        gnutls_aead_cipher_decrypt(c, iv, sizeof iv, NULL, 0, GCM_TAG_LEN, ct,
                                   (size_t)ct_len + GCM_TAG_LEN, out->buf, &pt_len) < 0) {
        kb_secret_wipe(out);
        kb_err_set(err,
                   "%s: its encrypted TPM auth does not open with the token's wrapping key "
                   "(the store and the token disagree)",
                   what);
        goto out;
    }
    out->len = pt_len;
    rc = 0;
out:
    if (c != NULL)
        gnutls_aead_cipher_deinit(c);
    kb_memzero(key, sizeof key);
    return rc;
}
