/* SPDX-License-Identifier: Apache-2.0 */
/* tpm2-pkcs11's store as src/attest/store.h reads it: the seal auth is tpm2-pkcs11's (a
 * vector computed apart), the key auth unwraps from "iv:tag:ctext" and a changed tag or a
 * malformed value is refused, and a store made here in tpm2-pkcs11's schema gives the
 * token's rows while another schema version, a transient primary or a missing token is
 * one error naming the file. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "pkcs11/attrs.h"
#include "src/attest/store.h"

#define SALT                                                                                       \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"                             \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void seal_auth_vector(void **state)
{
    (void)state;
    kb_secret *pin = kb_secret_new(), *out = kb_secret_new();
    kb_err err;
    strcpy(pin->buf, "1234");
    pin->len = 4;
    /* python3: hashlib.sha256(b"1234" + SALT).hexdigest()[:32] */
    assert_int_equal(kb_tpm2_seal_auth(pin, SALT, out, &err), 0);
    assert_int_equal(out->len, 32);
    assert_memory_equal(out->buf, "9bac0f2d837280b407a6d8a2e1907bb4", 32);
    kb_secret_free(pin);
    kb_secret_free(out);
}

/* The way tpm2-pkcs11 wraps an auth: AES-256-GCM, 12-byte IV, no AAD, "iv:tag:ctext". */
static void wrap(const unsigned char key[32], const char *plain, char *out)
{
    unsigned char iv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, ct[128];
    size_t ct_len = sizeof ct, n = strlen(plain);
    gnutls_aead_cipher_hd_t c;
    gnutls_datum_t k = {(unsigned char *)key, 32};
    assert_int_equal(gnutls_aead_cipher_init(&c, GNUTLS_CIPHER_AES_256_GCM, &k), 0);
    assert_int_equal(
        gnutls_aead_cipher_encrypt(c, iv, sizeof iv, NULL, 0, 16, plain, n, ct, &ct_len), 0);
    gnutls_aead_cipher_deinit(c);
    char a[25], t[33], x[129];
    kb_hex(iv, 12, a);
    kb_hex(ct + n, 16, t);
    kb_hex(ct, n, x);
    sprintf(out, "%s:%s:%s", a, t, x);
}

static void unwrap(void **state)
{
    (void)state;
    unsigned char key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(0xa0 + i);
    kb_secret *wk = kb_secret_new(), *out = kb_secret_new();
    kb_hex(key, 32, wk->buf);
    wk->len = 64;
    char enc[256];
    kb_err err;
    wrap(key, "324aa16cede549e86aedd1bb8146a24a", enc);
    assert_int_equal(kb_tpm2_unwrap_auth(wk, enc, "key 'k'", out, &err), 0);
    assert_int_equal(out->len, 32);
    assert_memory_equal(out->buf, "324aa16cede549e86aedd1bb8146a24a", 32);

    char *tag = strchr(enc, ':') + 1;
    *tag = *tag == '0' ? '1' : '0';
    assert_int_equal(kb_tpm2_unwrap_auth(wk, enc, "key 'k'", out, &err), -1);
    assert_non_null(strstr(err.msg, "key 'k'"));
    assert_int_equal(out->len, 0);
    assert_int_equal(kb_tpm2_unwrap_auth(wk, "00:11", "key 'k'", out, &err), -1);
    assert_non_null(strstr(err.msg, "iv:tag:ctext"));
    wk->len = 10;
    wrap(key, "x", enc);
    assert_int_equal(kb_tpm2_unwrap_auth(wk, enc, "key 'k'", out, &err), -1);
    kb_secret_free(wk);
    kb_secret_free(out);
}

static char dir[256];

static void make_store(int version, const char *transient)
{
    char path[300], sql[2048];
    snprintf(path, sizeof path, "%s/" KB_TPM2_STORE_FILE, dir);
    unlink(path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "CREATE TABLE tokens(id INTEGER PRIMARY KEY,pid INTEGER NOT NULL,label TEXT UNIQUE,"
             "config TEXT NOT NULL);"
             "CREATE TABLE sealobjects(id INTEGER PRIMARY KEY,tokid INTEGER NOT NULL,userpub "
             "BLOB,userpriv BLOB,userauthsalt TEXT,sopub BLOB NOT NULL,sopriv BLOB NOT NULL,"
             "soauthsalt TEXT NOT NULL);"
             "CREATE TABLE pobjects(id INTEGER PRIMARY KEY,hierarchy TEXT NOT NULL,config TEXT "
             "NOT NULL,objauth TEXT NOT NULL);"
             "CREATE TABLE schema(id INTEGER PRIMARY KEY,schema_version INTEGER NOT NULL);"
             "INSERT INTO schema VALUES(1,%d);"
             "INSERT INTO pobjects VALUES(1,'o','---\n!!map {\n  ? !!str \"transient\"\n  : "
             "!!bool \"%s\",\n  ? !!str \"esys-tr\"\n  : !!str \"810000010022000b\",\n}\n','');"
             "INSERT INTO tokens VALUES(1,1,'dev','---\n!!map {\n  ? !!str \"token-init\"\n  : "
             "!!bool \"true\",\n  ? !!str \"tcti\"\n  : !!str \"tabrmd:bus_type=session\",\n}\n');"
             "INSERT INTO sealobjects VALUES(1,1,x'00300001',x'00c00002','" SALT
             "',x'00',x'00','s');",
             version, transient);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void store_read(void **state)
{
    (void)state;
    struct kb_tpm2_store s;
    kb_err err;
    snprintf(dir, sizeof dir, "%s/kb-store-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    setenv("TPM2_PKCS11_STORE", dir, 1);

    make_store(KB_TPM2_STORE_SCHEMA, "false");
    assert_int_equal(kb_tpm2_store_read("dev", &s, &err), 0);
    assert_int_equal(s.primary, 0x81000001u);
    assert_string_equal(s.tcti, "tabrmd:bus_type=session");
    assert_string_equal(s.salt, SALT);
    assert_int_equal(s.seal_pub_len, 4);
    assert_int_equal(s.seal_priv_len, 4);
    kb_tpm2_store_free(&s);

    assert_int_equal(kb_tpm2_store_read("other", &s, &err), -1);
    assert_non_null(strstr(err.msg, "no token 'other'"));
    assert_non_null(strstr(err.msg, dir));

    make_store(7, "false");
    assert_int_equal(kb_tpm2_store_read("dev", &s, &err), -1);
    assert_non_null(strstr(err.msg, "schema version 7"));

    make_store(KB_TPM2_STORE_SCHEMA, "true");
    assert_int_equal(kb_tpm2_store_read("dev", &s, &err), -1);
    assert_non_null(strstr(err.msg, "persistent primary"));

    char path[300];
    snprintf(path, sizeof path, "%s/" KB_TPM2_STORE_FILE, dir);
    unlink(path);
    assert_int_equal(kb_tpm2_store_read("dev", &s, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_int_equal(access(path, F_OK), -1); /* read-only: never created */
    rmdir(dir);
}

int main(void)
{
    gnutls_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seal_auth_vector),
        cmocka_unit_test(unwrap),
        cmocka_unit_test(store_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
