#include "config.h"

#include "install.h"

#include <string.h>

#include "pkcs11/store.h"

int kb_cert_matches_key(gnutls_x509_crt_t crt, const kb_key *k, const char *what, kb_err *err)
{
    unsigned char spki[32];
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

int kb_install_cert_in(kb_session *s, const kb_key *k, gnutls_x509_crt_t *certs, unsigned n,
                       struct kb_install_result *r, kb_err *err)
{
    memset(r, 0, sizeof *r);
    if (n == 0)
        return kb_err_set(err, "no certificate to store");
    if (kb_cert_matches_key(certs[0], k, "the certificate", err) != 0)
        return -1;
    int rc = 0;
    for (unsigned i = 1; i < n && rc == 0; i++) {
        bool stored;
        rc = kb_store_chain_cert(s, certs[i], &stored, err);
        r->chain_new += stored;
    }
    if (rc == 0)
        rc = kb_store_cert(s, certs[0], k->facts.label, k->facts.id, k->facts.id_len, &r->stored,
                           err);
    return rc;
}

int kb_install_cert(const kb_key *k, gnutls_x509_crt_t *certs, unsigned n, const kb_pin_opts *pin,
                    struct kb_install_result *r, kb_err *err)
{
    memset(r, 0, sizeof *r);
    if (n == 0)
        return kb_err_set(err, "no certificate to store");
    if (kb_cert_matches_key(certs[0], k, "the certificate", err) != 0)
        return -1;
    kb_session s;
    if (kb_session_open(k->token, true, &s, err) != 0)
        return -1;
    int rc = kb_session_login(&s, pin, err);
    if (rc == 0)
        rc = kb_store_cert(&s, certs[0], k->facts.label, k->facts.id, k->facts.id_len, &r->stored,
                           err);
    for (unsigned i = 1; i < n && rc == 0; i++) {
        bool stored;
        rc = kb_store_chain_cert(&s, certs[i], &stored, err);
        r->chain_new += stored;
    }
    kb_session_close(&s);
    return rc;
}
