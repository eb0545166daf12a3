/* SPDX-License-Identifier: Apache-2.0 */
/* Installing an issued certificate next to its key.
 *
 * The certificate's public key must be the key's (compared by the SHA-256 of the
 * SubjectPublicKeyInfo); otherwise nothing is written. It is stored with the key's own
 * CKA_ID and label. Of the other certificates given, only the device certificate's issuer
 * path (src/tls/chain.h: at most KB_CHAIN_MAX, without the self-signed anchor) is stored,
 * as CA certificates, before the device certificate; unrelated, duplicate and anchor
 * certificates are left out. enroll, renew and import-cert all store through here. */
#ifndef KB_INSTALL_H
#define KB_INSTALL_H

#include <gnutls/x509.h>

#include "pkcs11/objects.h"
#include "pkcs11/pin.h"

struct kb_install_result {
    bool stored;        /* false: the same certificate was already on the token */
    unsigned chain_new; /* chain certificates written */
    unsigned chain_len; /* certificates on the issuer path (stored now or before) */
    unsigned left_out;  /* certificates given that are not on the path */
};

/* Fails, writing nothing, when certs[0] is not for key k. */
int kb_cert_matches_key(gnutls_x509_crt_t crt, const kb_key *k, const char *what, kb_err *err);

/* Stores certs[0] (the device certificate, which must be for k) and its issuer path built
 * from certs[1..n-1] (any order; unrelated, duplicate and self-signed anchor certificates
 * are not stored) on s, an open read-write logged-in session. On failure nothing new stays
 * on the token (chain certificates it wrote are removed again). */
int kb_install_cert_in(kb_session *s, const kb_key *k, gnutls_x509_crt_t *certs, unsigned n,
                       struct kb_install_result *r, kb_err *err);

/* The same in a session of its own on k's token, logged in with pin. The certificate and
 * its path are checked before the token is opened. */
int kb_install_cert(const kb_key *k, gnutls_x509_crt_t *certs, unsigned n, const kb_pin_opts *pin,
                    struct kb_install_result *r, kb_err *err);

#endif
