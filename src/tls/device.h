/* SPDX-License-Identifier: Apache-2.0 */
/* A device as the admission policy sees it, and the certificate it would present.
 *
 * For one key on a token: the token's and key's facts, and of the certificates tied to
 * the key, the one the seed's rule picks: valid now and chaining to the policy's trust
 * anchors, with the latest notBefore. The others are kept with the reason they were
 * passed over. Chains and CRLs are checked here with GnuTLS; an anchor or CRL file that
 * cannot be used becomes an error fact, which the policy turns into a denial. */
#ifndef KB_DEVICE_H
#define KB_DEVICE_H

#include <gnutls/x509.h>

#include "pkcs11/objects.h"
#include "policy/eval.h"
#include "policy/policy.h"

enum kb_pick {
    KB_PICK_CHOSEN,
    KB_PICK_OLDER,
    KB_PICK_EXPIRED,
    KB_PICK_NOT_YET_VALID,
    KB_PICK_OTHER_ISSUER,
    KB_PICK_UNREADABLE,
    KB_PICK_REVOKED,
};

struct kb_candidate {
    const kb_cert *cert;
    enum kb_pick pick;
    char detail[256];
};

#define KB_MAX_CANDIDATES 16

typedef struct kb_device {
    const kb_key *key;
    const kb_cert *cert; /* the chosen one; NULL when the key has none readable */
    bool cert_valid;     /* false: no candidate was valid; cert is the newest, for reasons */
    struct kb_candidate cands[KB_MAX_CANDIDATES];
    size_t n_cands;
    struct kb_device_facts facts;
} kb_device;

/* The policy's trust anchors and CRL, loaded once. Loading never fails: a problem is
 * kept and reported as an error fact for every certificate. */
typedef struct kb_trust kb_trust;
kb_trust *kb_trust_load(const kb_policy *pol);
void kb_trust_free(kb_trust *t);

/* Attestation (src/attest/) speaks ESAPI and reads tpm2-pkcs11's store; src/tls must not
 * depend on it: it is the TLS client that connect, the tunnel and EST share, and it is
 * unit-tested without a TPM stack. So the caller that can attest lends an attester: under
 * a require-attestation policy kb_device_gather calls it for every key it gathers, and it
 * fills *f (checked set, attested or a reason). A failure is a fact, not an error: the
 * policy denies with the reason. How fresh the evidence must be (a new nonce each time, or
 * reuse within a tunnel's re-evaluation interval) is the attester's business too, since only
 * the caller knows its clock. Without an attester the fact stays unchecked: a denial. */
typedef void kb_attester_fn(void *ctx, const kb_key *key, long long now, struct kb_attest_facts *f);
void kb_trust_set_attester(kb_trust *t, kb_attester_fn *fn, void *ctx);

/* Whether the policy the trust was loaded for requires attestation. */
bool kb_trust_wants_attestation(const kb_trust *t);

/* The earliest nextUpdate of the policy's CRLs (seconds since the epoch), or 0 when there
 * is none: when a verdict resting on them may change. */
long long kb_trust_next_update(const kb_trust *t);

/* Gathers the facts for objs->keys[key]. endpoint may be NULL. */
int kb_device_gather(const kb_objects *objs, size_t key, const kb_trust *trust, long long now,
                     const char *endpoint, kb_device *out, kb_err *err);

const char *kb_pick_name(enum kb_pick p);

/* The certificate as GnuTLS parses it, or NULL when it cannot be; the caller deinits it. */
gnutls_x509_crt_t kb_cert_x509(const kb_cert *c);

/* Why a GnuTLS verification status is a failure, as a phrase ("The certificate issuer is
 * unknown"). */
void kb_verify_status_text(unsigned status, char *out, size_t len);

/* The key to present: `only` (from --key) or, of the keys that have a certificate, the one
 * the policy admits. 0: one key admitted, dev and v describe it. 1: denied, v says why
 * (the first key's verdict when several were denied). -1: err says why: no candidate, or
 * several admitted keys (listed). */
int kb_device_choose(const kb_objects *objs, const kb_key *only, const kb_policy *pol,
                     const kb_trust *trust, long long now, const char *endpoint, kb_device *dev,
                     kb_verdict *v, kb_err *err);

#endif
