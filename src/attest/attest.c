/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "attest.h"

#include <gnutls/abstract.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/pin.h"
#include "pkcs11/tpmblobs.h"
#include "policy/facts.h"
#include "src/attest/evidence.h"
#include "src/attest/store.h"
#include "src/attest/tpm.h"
#include "src/attest/verify.h"
#include "src/util/secret.h"

/* What one attestation gathers, device side. */
struct run {
    unsigned char *ek_der;
    size_t ek_len;
    uint32_t ek_index;
    unsigned char *ak_public;
    size_t ak_public_len;
    unsigned char q[KB_CRED_SECRET_MAX > 64 ? KB_CRED_SECRET_MAX : 64];
    size_t q_len;
    struct kb_tpm_certified cert;
    gnutls_pubkey_t expected;
};

static void run_free(struct run *r)
{
    free(r->ek_der);
    free(r->ak_public);
    kb_tpm_certified_free(&r->cert);
    if (r->expected != NULL)
        gnutls_pubkey_deinit(r->expected);
    memset(r, 0, sizeof *r);
}

/* The PIN to derive the seal auth from: the one C_Login just accepted. When this process
 * was logged in already (another session of the same module), C_Login proves nothing and
 * the PIN comes from the same source again. */
static int login(kb_session *s, const kb_pin_opts *pin, kb_secret **out, bool *proved, kb_err *err)
{
    kb_pin_opts o = *pin;
    o.accepted = out;
    *out = NULL;
    *proved = false;
    if (kb_session_login(s, &o, err) != 0)
        return -1;
    if ((*proved = *out != NULL))
        return 0;
    char source[300];
    if (!s->token->facts.login_required)
        return kb_err_set(err, "token '%s' needs no login: no PIN to open its seal object",
                          s->token->facts.label);
    return kb_pin_get(pin, s->token->facts.label, out, source, sizeof source, err);
}

/* The device's half. challenge NULL: q is the caller's nonce (already in r->q), no
 * activation. */
static int gather(kb_p11 *p, const kb_key *k, const kb_pin_opts *pin,
                  struct kb_attest_challenge *challenge, struct run *r, kb_err *err)
{
    (void)p;
    kb_token *t = k->token;
    if (kb_tpm_token_check(t, err) != 0)
        return -1;
    kb_session s = {0};
    kb_secret *pinsec = NULL, *seal_auth = kb_secret_new(), *wrap = kb_secret_new(),
              *key_auth = kb_secret_new();
    struct kb_tpm_blobs blobs = {0};
    struct kb_tpm2_store store = {0};
    struct kb_tpm *tpm = NULL;
    CK_OBJECT_HANDLE h;
    char what[KB_LABEL_MAX + 16];
    int rc = -1;
    snprintf(what, sizeof what, "key '%s'", k->facts.label);
    if (seal_auth == NULL || wrap == NULL || key_auth == NULL) {
        kb_err_set(err, "cannot lock memory for the attestation's secrets");
        goto out;
    }
    /* What can make attestation impossible (no store, no resource manager) is found out
     * before the PIN is used. */
    if (kb_tpm2_store_read(t->facts.label, &store, err) != 0 ||
        kb_tpm_open(store.tcti, &tpm, err) != 0 || kb_session_open(t, false, &s, err) != 0)
        goto out;
    bool proved;
    if (login(&s, pin, &pinsec, &proved, err) != 0 || kb_tpm_key_find(&s, k, &h, err) != 0 ||
        kb_tpm_blobs_read(&s, h, &blobs, err) != 0 ||
        kb_key_pubkey(&s, h, k, &r->expected, err) != 0 ||
        kb_tpm_ek_cert(tpm, &r->ek_der, &r->ek_len, &r->ek_index, err) != 0 ||
        kb_tpm_ak(tpm, r->ek_der, r->ek_len, &r->ak_public, &r->ak_public_len, err) != 0)
        goto out;
    if (challenge != NULL) {
        if (kb_attest_challenge_make(r->ek_der, r->ek_len, r->ak_public, r->ak_public_len, NULL,
                                     challenge, err) != 0 ||
            kb_tpm_activate(tpm, &challenge->cred, r->q, &r->q_len, err) != 0)
            goto out;
    }
    if (kb_tpm2_seal_auth(pinsec, store.salt, seal_auth, err) != 0)
        goto out;
    int unsealed = kb_tpm_unseal(tpm, store.primary, store.seal_pub, store.seal_pub_len,
                                 store.seal_priv, store.seal_priv_len, seal_auth, wrap, err);
    if (unsealed == 1 && !proved) {
        /* The same Unseal is tpm2-pkcs11's C_Login: the token rejected this PIN, and the
         * module's next login with it would cost the TPM's lockout a second try. */
        kb_pin_token tok;
        kb_pin_token_from_info(&t->info, &tok);
        kb_pin_rejected(t->facts.label);
        kb_pin_mark_rejected(pin, &tok);
        kb_err_set(err,
                   "wrong PIN for token '%s': the TPM refused it for the token's seal object; "
                   "not retried, since the TPM counts failed tries",
                   t->facts.label);
    } else if (unsealed == 1) {
        kb_tpm_refuse_auth(); /* a PIN C_Login accepted: the store is not this TPM's */
    }
    if (unsealed != 0 || kb_tpm2_unwrap_auth(wrap, blobs.objauth_enc, what, key_auth, err) != 0 ||
        kb_tpm_certify(tpm, store.primary, blobs.pub, blobs.pub_len, blobs.priv, blobs.priv_len,
                       key_auth, r->q, r->q_len, what, &r->cert, err) != 0)
        goto out;
    rc = 0;
out:
    kb_tpm_close(tpm);
    kb_tpm2_store_free(&store);
    kb_tpm_blobs_free(&blobs);
    kb_secret_free(pinsec);
    kb_secret_free(seal_auth);
    kb_secret_free(wrap);
    kb_secret_free(key_auth);
    if (s.token != NULL)
        kb_session_close(&s);
    return rc;
}

static int encode(const struct run *r, unsigned char **der, size_t *der_len, kb_err *err)
{
    struct kb_evidence ev = {
        .attest = r->cert.attest,
        .attest_len = r->cert.attest_len,
        .signature = r->cert.signature,
        .signature_len = r->cert.signature_len,
        .key_public = r->cert.key_public,
        .key_public_len = r->cert.key_public_len,
        .ak_public = r->ak_public,
        .ak_public_len = r->ak_public_len,
        .nonce = (unsigned char *)r->q,
        .nonce_len = r->q_len,
        .ncerts = 1,
        .ek_index = r->ek_index,
    };
    ev.certs[0] = r->ek_der;
    ev.cert_lens[0] = r->ek_len;
    return kb_evidence_encode(&ev, der, der_len, err);
}

int kb_attest_prove(kb_p11 *p, const kb_key *k, const kb_pin_opts *pin,
                    const struct kb_attest_anchors *anchors, long long now,
                    struct kb_attest_facts *facts, kb_err *err)
{
    struct run r = {0};
    struct kb_attest_challenge ch;
    unsigned char *der = NULL;
    size_t der_len = 0;
    memset(facts, 0, sizeof *facts);
    memset(&ch, 0, sizeof ch);
    facts->checked = true;
    facts->at = now;
    int rc = -1;
    if (gather(p, k, pin, &ch, &r, err) != 0 || encode(&r, &der, &der_len, err) != 0) {
        snprintf(facts->reason, sizeof facts->reason, "%.*s", (int)sizeof facts->reason - 1,
                 err->msg);
        goto out;
    }
    /* The secret the TPM gave back is what Certify signed; the verifier compares it with
     * the one it sealed, so a wrong activation shows as a failing check, not here. */
    rc = kb_attest_verify(der, der_len, anchors, &ch, r.expected, now, facts);
    facts->checked = true;
    if (rc != 0)
        kb_err_set(err, "key '%s' is not attested: %s", k->facts.label, facts->reason);
out:
    free(der);
    run_free(&r);
    kb_memzero(&ch, sizeof ch);
    return rc;
}

int kb_attest_evidence(kb_p11 *p, const kb_key *k, const kb_pin_opts *pin,
                       const unsigned char *nonce, size_t nonce_len, unsigned char **der,
                       size_t *der_len, kb_err *err)
{
    struct run r = {0};
    *der = NULL;
    *der_len = 0;
    if (nonce_len == 0 || nonce_len > 64) /* TPM2B_DATA: at most a SHA-512 digest */
        return kb_err_set(err, "the nonce must be 1 to 64 bytes, not %zu", nonce_len);
    memcpy(r.q, nonce, nonce_len);
    r.q_len = nonce_len;
    int rc = gather(p, k, pin, NULL, &r, err) == 0 ? encode(&r, der, der_len, err) : -1;
    run_free(&r);
    return rc;
}
