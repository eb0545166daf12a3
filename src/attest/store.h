/* SPDX-License-Identifier: Apache-2.0 */
/* tpm2-pkcs11's store, read-only: what unwrapping a key's TPM auth value needs.
 *
 * tpm2-pkcs11 (1.9) keeps per token, in an sqlite file, a TPM seal object holding the
 * token's wrapping key, sealed under an auth made from the user PIN: the hex text of the
 * first 16 bytes of SHA-256(PIN || salt text). Each key's TPM auth value is that wrapping
 * key's AES-256-GCM encryption ("iv:tag:ctext", hex). keybound finds the file where the
 * module does, checks the schema version it knows, and reads the token's seal object, its
 * salt, the token's tcti setting and its primary key's persistent handle. It never writes
 * the file. The crypto of the scheme (seal auth, unwrap) is here too, with every secret
 * in a kb_secret. A format keybound does not know is refused, naming the file. */
#ifndef KB_ATTEST_STORE_H
#define KB_ATTEST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "src/util/err.h"
#include "src/util/secret.h"

#define KB_TPM2_STORE_FILE "tpm2_pkcs11.sqlite3"
#define KB_TPM2_STORE_SCHEMA 8 /* tpm2-pkcs11 1.9 */

struct kb_tpm2_store {
    char path[4096];
    unsigned char *seal_pub; /* TPM2B_PUBLIC of the user seal object */
    size_t seal_pub_len;
    unsigned char *seal_priv; /* TPM2B_PRIVATE of it */
    size_t seal_priv_len;
    char *salt;       /* userauthsalt, as text */
    char *tcti;       /* the token's tcti setting, or NULL */
    uint32_t primary; /* the persistent handle the token's keys live under */
};

/* The store file, searched as tpm2-pkcs11 does: $TPM2_PKCS11_STORE (taken even when the file
 * is not there), else the first that exists of /etc/tpm2_pkcs11, $XDG_DATA_HOME/tpm2-pkcs11
 * (or ~/.local/share/tpm2-pkcs11), ~/.tpm2_pkcs11 and the working directory. */
int kb_tpm2_store_locate(char *path, size_t len, kb_err *err);

/* Reads the rows of the token labelled label from the store. */
int kb_tpm2_store_read(const char *label, struct kb_tpm2_store *out, kb_err *err);
void kb_tpm2_store_free(struct kb_tpm2_store *s);

/* The seal object's auth for pin and the store's salt: 32 hex characters. */
int kb_tpm2_seal_auth(const kb_secret *pin, const char *salt, kb_secret *out, kb_err *err);

/* The key's TPM auth value from its CKA_TPM2_OBJAUTH_ENC text and the unsealed wrapping key
 * (64 hex characters, as the seal object holds it). what names the key in messages. */
int kb_tpm2_unwrap_auth(const kb_secret *wrapping_key, const char *objauth_enc, const char *what,
                        kb_secret *out, kb_err *err);

#endif
