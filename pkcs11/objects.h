/* SPDX-License-Identifier: Apache-2.0 */
/* Keys and certificates on a token.
 *
 * kb_objects_list reads what a session can see: private keys with their facts (read
 * attribute by attribute with C_GetAttributeValue, since GnuTLS never reports CKA_LOCAL
 * or CKA_ALWAYS_SENSITIVE), and certificates, each tied to the key whose public key it
 * carries. A key's public key is read from the private key object where the token shows
 * it there (CKA_PUBLIC_KEY_INFO, RSA's CKA_MODULUS and CKA_PUBLIC_EXPONENT, CKA_EC_POINT);
 * otherwise from the public-key object with its CKA_ID, and only when that pairing is
 * unambiguous: exactly one private and one public key object with that CKA_ID, of the
 * same curve. Else the key gets a pair_error, no certificate is tied to it, and it is not
 * used (kb_objects_one_key fails with that error). Handles are valid only while the
 * session that listed them is open. */
#ifndef KB_OBJECTS_H
#define KB_OBJECTS_H

#include <gnutls/abstract.h>
#include <time.h>

#include "p11.h"

typedef struct kb_key {
    kb_token *token;
    CK_OBJECT_HANDLE handle;
    CK_OBJECT_HANDLE pub_handle; /* CK_INVALID_HANDLE when the token has none */
    struct kb_key_facts facts;
    char *uri;
    bool has_spki;
    unsigned char spki_sha256[32]; /* SHA-256 of the SubjectPublicKeyInfo */
    char *pair_error; /* why the public key cannot be told, naming the objects; or NULL */
} kb_key;

typedef struct kb_cert {
    kb_token *token;
    CK_OBJECT_HANDLE handle;
    char label[KB_LABEL_MAX];
    unsigned char id[KB_ID_MAX];
    size_t id_len;
    unsigned char *der;
    size_t der_len;
    bool parsed; /* false: CKA_VALUE is not an X.509 certificate GnuTLS can read */
    char *subject;
    char *issuer;
    time_t not_before;
    time_t not_after;
    bool is_ca;
    unsigned char sha256[32];
    unsigned char spki_sha256[32];
    long key;         /* index in kb_objects.keys, or -1 */
    bool id_mismatch; /* same CKA_ID as a key but another public key */
    char *uri;
} kb_cert;

typedef struct kb_objects {
    kb_key *keys;
    size_t n_keys;
    kb_cert *certs;
    size_t n_certs;
    size_t hidden_private; /* tokens that needed a login to show their keys */
    size_t pin_withheld;   /* of those, tokens not logged into: one PIN, several tokens */
    char *left_out;        /* " (key ... left out: ...)" for keys with a pair_error, or NULL */
} kb_objects;

/* Appends the keys and certificates of s's token that match filter (NULL: all). The
 * filter's type= selects keys (private) or certificates (cert); a certificate that
 * belongs to a listed key is always listed. */
int kb_objects_list(kb_session *s, P11KitUri *filter, kb_objects *out, kb_err *err);
/* When no key was chosen because one PIN is not tried on several tokens: true, and err
 * names the tokens with certificates and the --key that chooses each. */
bool kb_objects_ambiguous(const kb_objects *o, kb_err *err);
/* For a process that cannot ask (no terminal): -1 with err naming the first token of uri
 * (NULL: all) that needs a login when pin gives no PIN but the terminal; else 0. */
int kb_objects_pin_reachable(kb_p11 *p, P11KitUri *uri, const struct kb_pin_opts *pin, kb_err *err);
void kb_objects_free(kb_objects *o);

/* Reads one attribute into a malloc'd buffer. Returns the CKR code. */
CK_RV kb_attr_get(kb_session *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                  unsigned char **value, CK_ULONG *len);

/* Handles of objects of class cls whose attribute attr equals value (attr 0: any). */
int kb_find(kb_session *s, CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE attr, const void *value,
            CK_ULONG len, CK_OBJECT_HANDLE **out, size_t *n, kb_err *err);

/* An RSA key on a token without CKM_RSA_PKCS_PSS (no TLS 1.3, no PSS signatures). */
bool kb_key_lacks_pss(const kb_key *k);

/* Reads a private key's facts and its public half (see above) into k. A public half that
 * cannot be told is no failure here: k->pair_error says why. */
int kb_key_read(kb_session *s, CK_OBJECT_HANDLE priv, kb_key *k, kb_err *err);
void kb_key_clear(kb_key *k);

/* k's public key, read again through s (priv: k's private key as s sees it), for a check
 * that needs the key itself rather than its hash (attestation). */
int kb_key_pubkey(kb_session *s, CK_OBJECT_HANDLE priv, const kb_key *k, gnutls_pubkey_t *out,
                  kb_err *err);

/* Why private keys may be missing from o, for the end of a message: "" or
 * " (private keys need a PIN to be seen)" or a note that one PIN was not tried on
 * several tokens, or the keys left out for a pair_error, naming their objects. */
const char *kb_objects_hint(const kb_objects *o);

/* Exactly one private key matching uri (after kb_objects_collect with login). On
 * failure err lists what the URI did match: the keys, or the tokens it reached; a
 * matching key with a pair_error is that error. */
int kb_objects_one_key(kb_p11 *p, P11KitUri *uri, const char *uri_text,
                       const struct kb_pin_opts *pin, kb_token_list *tokens, kb_objects *objs,
                       kb_key **out, kb_err *err);

#endif

/* For each token matching uri: open a session, log in when the token needs it and a PIN
 * can be had (login: false never logs in), list its objects, close. A PIN that is not
 * typed at the terminal is only used when one token needs a login. tokens receives the
 * matching tokens (the objects point into it). A failed login is an error. */
int kb_objects_collect(kb_p11 *p, P11KitUri *uri, const struct kb_pin_opts *pin, bool login,
                       kb_token_list *tokens, kb_objects *out, kb_err *err);
