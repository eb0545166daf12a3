/* SPDX-License-Identifier: Apache-2.0 */
/* The issuer path of a device certificate, built from candidate certificates.
 *
 * Pure: parsed certificates in, indexes out; no token, no trust anchors. Candidates come
 * in any order and may include unrelated, duplicate and self-signed certificates. C issues
 * X when C's subject is X's issuer (the encoded names, byte for byte), C's subject key
 * identifier equals X's authority key identifier where both are present, C is a CA (basic
 * constraints, and keyCertSign where it has a key usage) and X's signature verifies with
 * C's key. The path runs from the leaf's issuer upwards and ends below a self-signed
 * certificate (the trust anchor, never part of the path) or where no candidate issues the
 * top; it is what is stored on a token and sent in the handshake, in this order. */
#ifndef KB_CHAIN_H
#define KB_CHAIN_H

#include <gnutls/x509.h>
#include <stdbool.h>

#include "src/util/err.h"

/* Longest issuer path kept (certificates between the leaf and the anchor). */
#define KB_CHAIN_MAX 8

/* Does issuer issue crt (as above)? issues(c, c): c is self-signed. */
bool kb_chain_issues(gnutls_x509_crt_t issuer, gnutls_x509_crt_t crt);

/* Fills path[0..*len-1] with indexes into cands: the leaf's issuer first. Where several
 * candidates issue the same certificate, one valid at `now` is preferred, then the latest
 * notBefore. Fails, naming the leaf, when the path would be longer than cap (at most
 * KB_CHAIN_MAX; path has room for cap entries). */
int kb_chain_build(gnutls_x509_crt_t leaf, gnutls_x509_crt_t *cands, unsigned n, unsigned cap,
                   long long now, unsigned *path, unsigned *len, kb_err *err);

#endif
