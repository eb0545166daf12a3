/* SPDX-License-Identifier: Apache-2.0 */
/* The attester that admission evaluations lend to kb_device_gather (src/tls/device.h).
 *
 * For each key gathered under a require-attestation policy it runs kb_attest_prove
 * (src/attest/attest.h): a fresh credential secret, which is also the nonce, activated by
 * the TPM and certified under the policy's tpm-ca anchors. A result is reused for at most
 * `reuse` seconds (0: never; the tunnel passes its re-evaluation interval), in this
 * process's memory only: a result kept on disk would be edited as easily as the store
 * row attestation exists to distrust. Failures are facts with their reason, never errors:
 * the policy turns them into a denial. */
#ifndef KB_ATTEST_ATTESTER_H
#define KB_ATTEST_ATTESTER_H

#include "pkcs11/objects.h"
#include "pkcs11/p11.h"
#include "policy/policy.h"
#include "src/tls/device.h"

typedef struct kb_attester kb_attester;

/* An attester for pol on p, logging in with pin (both outlive it). NULL when out of
 * memory; anchors that cannot be loaded are kept as the reason for every key. */
kb_attester *kb_attester_new(const kb_policy *pol, kb_p11 *p, const struct kb_pin_opts *pin,
                             long long reuse);
void kb_attester_free(kb_attester *a);

/* For a process that reloads its policy and settings (the tunnel): the anchors of pol,
 * loaded again, and the reuse bound. Results proved under other anchors (the tpm-ca list
 * or a file's bytes changed) are dropped, since they were verified against what the
 * policy no longer trusts; a shorter bound applies to the results already kept. */
void kb_attester_sync(kb_attester *a, const kb_policy *pol, long long reuse);

/* The kb_attester_fn; ctx is a kb_attester. */
void kb_attester_run(void *ctx, const kb_key *key, long long now, struct kb_attest_facts *f);

/* When pol requires attestation: a new attester set on t (*out, freed by the caller after
 * t is no longer used). Otherwise *out = NULL. -1 only when out of memory. */
int kb_attester_attach(kb_trust *t, const kb_policy *pol, kb_p11 *p, const struct kb_pin_opts *pin,
                       long long reuse, kb_attester **out, kb_err *err);

#endif
