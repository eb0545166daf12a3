/* SPDX-License-Identifier: Apache-2.0 */
/* Writing to a token: certificates next to their key, and removing objects.
 *
 * A device certificate takes its key's CKA_ID and CKA_LABEL (read from the key: GnuTLS's
 * own id would differ), so that it is found with the key. An identical certificate
 * already on the token is not stored twice. Sessions must be read-write and logged in. */
#ifndef KB_STORE_H
#define KB_STORE_H

#include <gnutls/x509.h>

#include "objects.h"

/* Stores crt with the given label and id. *stored is false when the very same
 * certificate was already there (then nothing is written). */
int kb_store_cert(kb_session *s, gnutls_x509_crt_t crt, const char *label, const unsigned char *id,
                  size_t id_len, bool *stored, kb_err *err);

/* A CA or chain certificate: labelled with its common name, CKA_ID the SHA-1 of its
 * public key. */
int kb_store_chain_cert(kb_session *s, gnutls_x509_crt_t crt, bool *stored, kb_err *err);

/* The same, giving the new object's handle (CK_INVALID_HANDLE when the certificate was
 * already there), so that a caller can remove what it wrote when a later step fails. */
int kb_store_cert_obj(kb_session *s, gnutls_x509_crt_t crt, const char *label,
                      const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE *created,
                      kb_err *err);
int kb_store_chain_cert_obj(kb_session *s, gnutls_x509_crt_t crt, CK_OBJECT_HANDLE *created,
                            kb_err *err);

/* Removes the key pair (private and public object). */
int kb_destroy_key(kb_session *s, const kb_key *k, kb_err *err);

int kb_destroy_object(kb_session *s, CK_OBJECT_HANDLE h, const char *what, kb_err *err);

/* Removes every object of class cls whose attr equals value, found in this session
 * (handles from another session need not be valid here). */
int kb_destroy_matching(kb_session *s, CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE attr,
                        const void *value, size_t len, const char *what, kb_err *err);

/* Sets CKA_LABEL on every object (key pair, certificates) with the given CKA_ID. */
int kb_relabel(kb_session *s, const unsigned char *id, size_t id_len, const char *label,
               kb_err *err);

/* Certificates from a PEM (one or more) or DER file. */
int kb_load_certs(const char *path, gnutls_x509_crt_t **out, unsigned *n, kb_err *err);
void kb_free_certs(gnutls_x509_crt_t *v, unsigned n);

/* SHA-256 of the certificate's SubjectPublicKeyInfo. */
int kb_cert_spki_sha256(gnutls_x509_crt_t crt, unsigned char out[32]);

#endif
