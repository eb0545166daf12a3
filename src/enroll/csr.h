/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#10 requests signed on the token.
 *
 * The request names the subject, the subject alternative names, the key usage
 * digitalSignature and the extended key usage clientAuth (plus any the CA asked for in
 * /csrattrs). It is signed through kb_signer: the key never leaves the token. */
#ifndef KB_CSR_H
#define KB_CSR_H

#include <gnutls/gnutls.h>

#include "pkcs11/signer.h"

#define KB_SAN_MAX 16
#define KB_EKU_MAX 8

struct kb_csr_spec {
    const char *subject;          /* RFC 4514 DN, e.g. "CN=laptop-17,O=Example" */
    const char *sans[KB_SAN_MAX]; /* "dns:NAME", "uri:URI", "email:ADDR", "ip:ADDR" */
    size_t n_sans;
    const char *extra_eku[KB_EKU_MAX]; /* dotted OIDs besides clientAuth */
    size_t n_extra_eku;
    gnutls_digest_algorithm_t digest; /* 0: the key's preferred one */
};

/* Checks a --san value ("dns:...", ...) without making anything. */
int kb_san_check(const char *san, kb_err *err);

/* Builds and signs the request; *der is gnutls_free'd by the caller. */
int kb_csr_make(kb_signer *signer, bool no_pss, const struct kb_csr_spec *spec, gnutls_datum_t *der,
                kb_err *err);

#endif
