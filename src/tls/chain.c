/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "chain.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_datum(const gnutls_datum_t *a, const gnutls_datum_t *b)
{
    return a->size == b->size && (a->size == 0 || memcmp(a->data, b->data, a->size) == 0);
}

/* issuer's subject is crt's issuer, and the key identifiers agree where both are given. */
static bool names_match(gnutls_x509_crt_t issuer, gnutls_x509_crt_t crt)
{
    gnutls_datum_t want = {NULL, 0}, have = {NULL, 0};
    bool ok = gnutls_x509_crt_get_raw_issuer_dn(crt, &want) == 0 &&
              gnutls_x509_crt_get_raw_dn(issuer, &have) == 0 && same_datum(&want, &have);
    gnutls_free(want.data);
    gnutls_free(have.data);
    if (!ok)
        return false;
    unsigned char aki[128], ski[128];
    size_t aki_len = sizeof aki, ski_len = sizeof ski;
    unsigned critical = 0;
    if (gnutls_x509_crt_get_authority_key_id(crt, aki, &aki_len, &critical) < 0 ||
        gnutls_x509_crt_get_subject_key_id(issuer, ski, &ski_len, &critical) < 0)
        return true; /* one of them has none: the names decide */
    return aki_len == ski_len && memcmp(aki, ski, aki_len) == 0;
}

static bool self_signed(gnutls_x509_crt_t crt)
{
    return names_match(crt, crt);
}

bool kb_chain_issues(gnutls_x509_crt_t issuer, gnutls_x509_crt_t crt)
{
    if (!names_match(issuer, crt))
        return false;
    if (issuer == crt || gnutls_x509_crt_equals(issuer, crt))
        return true; /* self-signed: its own names and key identifiers agree */
    unsigned critical = 0, usage = 0;
    if (gnutls_x509_crt_get_ca_status(issuer, &critical) <= 0)
        return false;
    int rc = gnutls_x509_crt_get_key_usage(issuer, &usage, &critical);
    if (rc >= 0 && !(usage & GNUTLS_KEY_KEY_CERT_SIGN))
        return false;
    if (rc < 0 && rc != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return false;
    /* The signature, checked with issuer as the only anchor. Times are not the path's
     * business (the policy's validity rule and the peer judge them); an algorithm GnuTLS
     * deems weak is for the peer to refuse, but a wrong signature is not an issuer. */
    unsigned status = 0;
    rc = gnutls_x509_crt_verify(
        crt, &issuer, 1,
        GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS, &status);
    const unsigned wrong =
        GNUTLS_CERT_SIGNATURE_FAILURE | GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA;
    return rc == 0 && !(status & wrong);
}

static bool valid_at(gnutls_x509_crt_t crt, long long now)
{
    return (long long)gnutls_x509_crt_get_activation_time(crt) <= now &&
           now <= (long long)gnutls_x509_crt_get_expiration_time(crt);
}

/* Is a better issuer than b (b may be -1)? */
static bool better(gnutls_x509_crt_t *cands, long a, long b, long long now)
{
    if (b < 0)
        return true;
    bool va = valid_at(cands[a], now), vb = valid_at(cands[b], now);
    if (va != vb)
        return va;
    return gnutls_x509_crt_get_activation_time(cands[a]) >
           gnutls_x509_crt_get_activation_time(cands[b]);
}

static void subject_of(gnutls_x509_crt_t crt, char *out, size_t len)
{
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
        size_t n = dn.size < len - 1 ? dn.size : len - 1;
        memcpy(out, dn.data, n);
        out[n] = '\0';
    } else {
        snprintf(out, len, "(unreadable subject)");
    }
    gnutls_free(dn.data);
}

int kb_chain_build(gnutls_x509_crt_t leaf, gnutls_x509_crt_t *cands, unsigned n, unsigned cap,
                   long long now, unsigned *path, unsigned *len, kb_err *err)
{
    *len = 0;
    if (cap > KB_CHAIN_MAX)
        cap = KB_CHAIN_MAX;
    bool *used = calloc(n ? n : 1, sizeof *used);
    if (used == NULL)
        return kb_err_set(err, "out of memory");
    /* Copies of the leaf are never its issuer (unless it is self-signed, and then the
     * path is empty anyway). */
    for (unsigned i = 0; i < n; i++)
        used[i] = gnutls_x509_crt_equals(cands[i], leaf) != 0;
    gnutls_x509_crt_t cur = leaf;
    int rc = 0;
    while (!self_signed(cur)) {
        long best = -1;
        for (unsigned i = 0; i < n; i++)
            if (!used[i] && kb_chain_issues(cands[i], cur) && better(cands, i, best, now))
                best = i;
        if (best < 0)
            break; /* the top of what was given: its issuer is the peer's business */
        /* Each certificate at most once: duplicates go with it, and no loop is possible. */
        for (unsigned i = 0; i < n; i++)
            if (!used[i] && gnutls_x509_crt_equals(cands[i], cands[best]))
                used[i] = true;
        if (self_signed(cands[best]))
            break; /* the anchor: the peer has it, it is not part of the path */
        if (*len == cap) {
            char subject[256];
            subject_of(leaf, subject, sizeof subject);
            rc = kb_err_set(err,
                            "the issuer path of certificate '%s' is longer than %u certificates "
                            "(not counting the root)",
                            subject, cap);
            *len = 0;
            break;
        }
        path[(*len)++] = (unsigned)best;
        cur = cands[best];
    }
    free(used);
    return rc;
}
