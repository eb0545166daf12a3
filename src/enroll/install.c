/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "install.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pkcs11/store.h"
#include "src/tls/chain.h"

int kb_cert_matches_key(gnutls_x509_crt_t crt, const kb_key *k, const char *what, kb_err *err)
{
    unsigned char spki[32];
    if (k->pair_error != NULL)
        return kb_err_set(err, "%s; nothing was stored", k->pair_error);
    if (!k->has_spki)
        return kb_err_set(err,
                          "the public key of '%s' cannot be read to compare it with %s; "
                          "nothing was stored",
                          k->facts.label, what);
    if (kb_cert_spki_sha256(crt, spki) != 0)
        return kb_err_set(err, "%s has no readable public key; nothing was stored", what);
    if (memcmp(spki, k->spki_sha256, 32) != 0)
        return kb_err_set(err, "%s is for another key, not for '%s'; nothing was stored", what,
                          k->facts.label);
    return 0;
}

/* The checks that need no token: the certificate is for k, and its issuer path. */
static int plan(const kb_key *k, gnutls_x509_crt_t *certs, unsigned n, unsigned *path,
                unsigned *len, kb_err *err)
{
    if (n == 0)
        return kb_err_set(err, "no certificate to store");
    if (kb_cert_matches_key(certs[0], k, "the certificate", err) != 0)
        return -1;
    if (kb_chain_build(certs[0], certs + 1, n - 1, KB_CHAIN_MAX, (long long)time(NULL), path, len,
                       err) != 0) {
        if (err != NULL) {
            size_t used = strlen(err->msg);
            snprintf(err->msg + used, sizeof err->msg - used, "; nothing was stored");
        }
        return -1;
    }
    return 0;
}

int kb_install_cert_in(kb_session *s, const kb_key *k, gnutls_x509_crt_t *certs, unsigned n,
                       struct kb_install_result *r, kb_err *err)
{
    memset(r, 0, sizeof *r);
    unsigned path[KB_CHAIN_MAX], len = 0;
    if (plan(k, certs, n, path, &len, err) != 0)
        return -1;
    /* The path first, top down, then the device certificate: until the last step nothing
     * points at the new objects, and a failure removes the ones written here. */
    CK_OBJECT_HANDLE made[KB_CHAIN_MAX];
    unsigned n_made = 0;
    for (unsigned i = len; i-- > 0;) {
        CK_OBJECT_HANDLE h;
        if (kb_store_chain_cert_obj(s, certs[1 + path[i]], &h, err) != 0)
            goto undo;
        if (h != CK_INVALID_HANDLE)
            made[n_made++] = h;
    }
    CK_OBJECT_HANDLE leaf;
    if (kb_store_cert_obj(s, certs[0], k->facts.label, k->facts.id, k->facts.id_len, &leaf, err) !=
        0)
        goto undo;
    r->stored = leaf != CK_INVALID_HANDLE;
    r->chain_new = n_made;
    r->chain_len = len;
    r->left_out = n - 1 - len;
    return 0;
undo:
    for (unsigned i = 0; i < n_made; i++) {
        kb_err gone;
        if (kb_destroy_object(s, made[i], "a chain certificate it had just written", &gone) != 0) {
            if (err != NULL) {
                size_t used = strlen(err->msg);
                snprintf(err->msg + used, sizeof err->msg - used, "; and %s", gone.msg);
            }
            return -1;
        }
    }
    if (err != NULL) {
        size_t used = strlen(err->msg);
        if (n_made > 0)
            snprintf(err->msg + used, sizeof err->msg - used,
                     "; nothing was stored (the %u chain certificate%s written were removed "
                     "again)",
                     n_made, n_made == 1 ? "" : "s");
        else
            snprintf(err->msg + used, sizeof err->msg - used, "; nothing was stored");
    }
    return -1;
}

int kb_install_cert(const kb_key *k, gnutls_x509_crt_t *certs, unsigned n, const kb_pin_opts *pin,
                    struct kb_install_result *r, kb_err *err)
{
    memset(r, 0, sizeof *r);
    unsigned path[KB_CHAIN_MAX], len = 0;
    if (plan(k, certs, n, path, &len, err) != 0)
        return -1;
    kb_session s;
    if (kb_session_open(k->token, true, &s, err) != 0)
        return -1;
    int rc = kb_session_login(&s, pin, err);
    if (rc == 0)
        rc = kb_install_cert_in(&s, k, certs, n, r, err);
    kb_session_close(&s);
    return rc;
}
