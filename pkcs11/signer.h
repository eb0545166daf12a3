/* SPDX-License-Identifier: Apache-2.0 */
/* Signing with a token key through GnuTLS.
 *
 * kb_gnutls_pkcs11_init puts GnuTLS in manual PKCS#11 mode with exactly the modules
 * kb_p11 loaded: auto mode loads every registered module, and some stall or print
 * noise. A kb_signer owns one imported key object, that is one session. The contract:
 * after any error from the token the object is dropped, and the next signature imports
 * a fresh one; GnuTLS can hang forever signing again on an object whose session failed
 * to re-open. The exception is a module that lost its state (recovery.h): nothing is
 * imported or signed on it until it is initialised again. One key object signs one thing at a time
 * (GnuTLS serialises it); a signer can keep a small pool of them, each with its own session, so
 * that threads sign in parallel where the token allows it. */
#ifndef KB_SIGNER_H
#define KB_SIGNER_H

#include <gnutls/abstract.h>

#include "p11.h"

typedef struct kb_signer kb_signer;

#define KB_SIGNER_POOL_MAX 8

/* Once per process (again only after kb_gnutls_pkcs11_deinit); modules that recovery
 * finalised and could not initialise again are left out. */
int kb_gnutls_pkcs11_init(const kb_p11 *p, kb_err *err);
void kb_gnutls_pkcs11_deinit(void);

/* key_uri must name one private key; it must not carry pin attributes (the PIN comes
 * from the callback kb_pin_install_gnutls sets). */
int kb_signer_open(const char *key_uri, kb_signer **out, kb_err *err);
void kb_signer_free(kb_signer *s);

/* The token the key is on. Then a failed signature is followed by kb_module_answers: a
 * module that lost its state is marked lost (recovery.h) instead of the key object being
 * imported again, and every signer on it fails at once, touching nothing, until
 * kb_p11_recover has initialised it again. */
void kb_signer_set_token(kb_signer *s, kb_token *t);
/* On (a command on a terminal): a signature that takes over a second says, while it waits,
 * that the token may want a touch or its PIN pad. Off (the default): a signature that took
 * a second or more is logged afterwards. */
void kb_signer_feedback(bool on);

/* Recovery's: every signer drops its key objects and signs nothing until resumed. */
void kb_signers_pause(void);
void kb_signers_resume(void);

/* What the last failed signature through a kb_signer_privkey key on this thread said (a
 * handshake's error names the token's failure, not only "signing failed"); NULL: none. */
const char *kb_signer_thread_failure(void);

/* Up to n key objects (at most KB_SIGNER_POOL_MAX; 1 on a TPM), opened when first needed. */
void kb_signer_set_pool(kb_signer *s, unsigned n);

/* Hashes and signs data with the key's natural algorithm (ECDSA or RSA PKCS#1 v1.5 with
 * SHA-256/384, or EdDSA). sig is gnutls_free'd by the caller. */
int kb_signer_sign(kb_signer *s, const gnutls_datum_t *data, gnutls_datum_t *sig,
                   gnutls_sign_algorithm_t *algo, kb_err *err);

/* Signs as GnuTLS asks in a handshake: its algorithm and flags (RSA-PSS...), on data or on
 * a hash. These are what an external GnuTLS private key forwards to. */
int kb_signer_sign_data2(kb_signer *s, gnutls_sign_algorithm_t algo, unsigned flags,
                         const gnutls_datum_t *data, gnutls_datum_t *sig, kb_err *err);
int kb_signer_sign_hash2(kb_signer *s, gnutls_sign_algorithm_t algo, unsigned flags,
                         const gnutls_datum_t *hash, gnutls_datum_t *sig, kb_err *err);

/* The key's gnutls_pk_algorithm_t and size. */
int kb_signer_info(kb_signer *s, int *pk, unsigned *bits, kb_err *err);

/* Signatures the token has made through this signer. */
unsigned long kb_signer_signatures(kb_signer *s);

/* How long the token took for each signature (failed ones too), in the buckets of a
 * Prometheus histogram: le[i] seconds, counts not cumulative; the last bucket is +Inf. */
#define KB_SIGN_BUCKETS 12
extern const double kb_sign_bucket_le[KB_SIGN_BUCKETS - 1];
struct kb_sign_latency {
    unsigned long count[KB_SIGN_BUCKETS];
    double sum_s;
};
/* Adds the signer's to *sum. */
void kb_signer_latency(kb_signer *s, struct kb_sign_latency *sum);

/* A GnuTLS private key whose every signature goes through s (so the contract above holds in
 * handshakes and CSRs too). no_pss: the token lacks CKM_RSA_PKCS_PSS, so RSA-PSS is not
 * offered. s must outlive the key. */
int kb_signer_privkey(kb_signer *s, bool no_pss, gnutls_privkey_t *out, kb_err *err);

/* The public key of the signer's key, to verify with. */
int kb_signer_pubkey(kb_signer *s, gnutls_pubkey_t *out, kb_err *err);

/* How many times the key object was imported (1 + one per recovery). */
unsigned kb_signer_imports(kb_signer *s);

#endif
