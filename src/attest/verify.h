/* SPDX-License-Identifier: Apache-2.0 */
/* The pure verifier of TPM key attestation.
 *
 * In: the evidence (DER, evidence.h), the trusted EK issuers (the policy's tpm-ca files,
 * loaded), the challenge the verifier made for this attestation (the credential secret it
 * sealed to the EK certificate's key and the AK's Name, see credential.h), the public key
 * the key must have (from PKCS#11 or the CSR) and the time. Out: struct kb_attest_facts
 * (policy/facts.h): attested or the first failing check as a reason a user can act on.
 * The checks run in the order of the research brief's section 5.2. No TPM, no PKCS#11, no
 * I/O here: GnuTLS for X.509 and signatures. Loading the anchors reads files: that is
 * anchors.c, apart. */
#ifndef KB_ATTEST_VERIFY_H
#define KB_ATTEST_VERIFY_H

#include <stddef.h>

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "src/attest/credential.h"
#include "src/attest/tpmwire.h"
#include "src/util/err.h"

struct kb_attest_facts; /* policy/facts.h */

struct kb_attest_anchors {         /* the policy's tpm-ca files, loaded */
    gnutls_x509_trust_list_t list; /* roots trusted; intermediates usable */
    char error[256]; /* a file that could not be loaded: every verification fails with it */
};
/* Loads every file (PEM, one or more certificates each) as a trust anchor. Returns 0, or
 * -1 with a->error set (a stays usable: kb_attest_verify then fails with that error). */
int kb_attest_anchors_load(const char *const *files, size_t n, struct kb_attest_anchors *a);
void kb_attest_anchors_free(struct kb_attest_anchors *a);

/* What the verifier sent the device for one attestation: the credential (for
 * ActivateCredential) and what it must come back with. The secret is also the nonce:
 * the device uses the secret it recovered as Certify's qualifyingData, so one comparison
 * proves both freshness and that the signing AK lives in the TPM that owns the EK. */
struct kb_attest_challenge {
    unsigned char secret[KB_CRED_SECRET_MAX];
    size_t secret_len;
    unsigned char ak_name[KB_TPM_NAME_MAX]; /* the Name the credential was made for */
    size_t ak_name_len;
    unsigned char ek_cert_sha256[32]; /* the EK certificate it was made for */
    struct kb_credential cred;        /* hand to ActivateCredential */
};

/* Makes a challenge for the EK certificate (DER) and the AK's TPMT_PUBLIC with a fresh
 * 32-byte secret. rnd NULL draws the secret and the credential's randomness from
 * gnutls_rnd; a test passes 32 + sizeof(struct kb_cred_random) bytes of its own. */
int kb_attest_challenge_make(const unsigned char *ek_der, size_t ek_len,
                             const unsigned char *ak_public, size_t ak_public_len,
                             const unsigned char *rnd, struct kb_attest_challenge *c, kb_err *err);

/* Verifies the evidence. expected: the public key the attested key must have. now: when
 * the evidence was made (facts->at). Returns 0 when every check passed (facts->attested),
 * else -1 with facts->reason set; facts->checked is set either way. */
int kb_attest_verify(const unsigned char *der, size_t der_len,
                     const struct kb_attest_anchors *anchors,
                     const struct kb_attest_challenge *challenge, gnutls_pubkey_t expected,
                     long long now, struct kb_attest_facts *facts);

/* The remote verifier's case: evidence made by `keybound attest --nonce HEX`, with no
 * challenge and so no ActivateCredential. The same checklist, with the caller's nonce as
 * the expected extraData and without the credential step: the AK's binding to the EK then
 * rests on the qualifiedSigner check alone (the TPM names the AK's parent chain, which it
 * signs with the AK), a weaker proof than an activation only the EK's TPM can do. On
 * success facts->ak_activated is false; KB_ATTEST_NOT_ACTIVATED says so in words. */
int kb_attest_verify_nonce(const unsigned char *der, size_t der_len,
                           const struct kb_attest_anchors *anchors, const unsigned char *nonce,
                           size_t nonce_len, gnutls_pubkey_t expected, long long now,
                           struct kb_attest_facts *facts);

#define KB_ATTEST_NOT_ACTIVATED                                                                    \
    "the AK's binding to the EK rests on the TPM's qualifiedSigner; no credential was activated"

#endif
