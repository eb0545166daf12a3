/* SPDX-License-Identifier: Apache-2.0 */
/* The device's TLS identity: its certificate chain and a GnuTLS private key that signs on
 * the token.
 *
 * The private key is an external GnuTLS key whose every signature goes through kb_signer,
 * so the drop-and-reimport contract holds in handshakes too and signatures are counted.
 * An RSA key on a token without CKM_RSA_PKCS_PSS cannot sign a TLS 1.3 CertificateVerify:
 * rsa_without_pss tells the TLS client to stay at TLS 1.2 for this key. */
#ifndef KB_IDENTITY_H
#define KB_IDENTITY_H

#include <gnutls/abstract.h>

#include "pkcs11/signer.h"
#include "src/tls/chain.h"
#include "src/tls/device.h"

typedef struct kb_identity {
    kb_signer *signer;
    gnutls_privkey_t privkey;
    gnutls_pcert_st *pcerts; /* the device certificate, then its issuer path (chain.h) */
    unsigned n_pcerts;
    int pk; /* gnutls_pk_algorithm_t */
    unsigned bits;
    bool rsa_without_pss;
    char key_uri[1024];
    char label[256]; /* the key's, for messages */
    char subject[512];
    long long not_after;
    char token[33];
} kb_identity;

/* From a gathered device whose certificate was chosen. objs supplies the candidates for
 * the issuer path (certificates on the same token that belong to no key): only the path
 * is sent, leaf first, without the anchor; a path longer than KB_CHAIN_MAX is an error. */
int kb_identity_new(const kb_device *dev, const kb_objects *objs, kb_identity **out, kb_err *err);
void kb_identity_free(kb_identity *id);

/* The issuer path of leaf as kb_identity_new sends it, from the certificates on leaf's token
 * that belong to no key: path (room for KB_CHAIN_MAX) gets *len of objs' certificates, the
 * leaf's issuer first, without the anchor. For what is written beside the key, such as a
 * network profile's certificate file. */
int kb_identity_path(const kb_cert *leaf, const kb_objects *objs, const kb_cert **path,
                     unsigned *len, kb_err *err);

#endif
