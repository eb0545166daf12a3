/* SPDX-License-Identifier: Apache-2.0 */
/* The enrol and renew workflow, in one place for both commands.
 *
 * cacerts -> csrattrs -> login -> keygen (enrol, or renew --rekey) -> request signed on
 * the token -> submit -> certificate matched to the key -> stored with its issuer path
 * -> the result checked against the policy -> (rekey) the old key retired.
 * Everything the user gave is checked before the network or the token; nothing is
 * written to the token before the reply has been parsed and its certificate matched to
 * the key, and a key generated for a request that then failed is removed again. The
 * EST server is authenticated before any credential goes to it (src/enroll/est.h). */
#ifndef KB_FLOW_H
#define KB_FLOW_H

#include "pkcs11/p11.h"
#include "pkcs11/pin.h"
#include "policy/eval.h"
#include "src/enroll/csr.h"
#include "src/enroll/est.h"

struct kb_enroll_spec {
    bool renew; /* simplereenroll for key_uri's current certificate; else enrol anew */
    /* How to reach and trust the EST server. */
    const char *url, *ca, *fingerprint;
    kb_secret *secret; /* from kb_enroll_secret; kb_enroll_run takes it over */
    unsigned max_wait_s;
    const char *proxy;        /* http://HOST:PORT; NULL: $https_proxy unless $no_proxy names it */
    const char *save_cacerts; /* write /cacerts there (PEM) */
    const kb_policy *policy;
    /* enrol */
    const char *token_uri, *label, *type;
    struct kb_csr_spec csr; /* subject and names */
    const char *auth_key;   /* authenticate with this key's certificate instead of a secret */
    bool store_chain;       /* /cacerts certificates may complete the stored issuer path */
    /* renew */
    const char *key_uri;
    long long if_expires_within; /* seconds; -1: renew whatever is left */
    bool rekey, prune;
};

struct kb_enroll_outcome {
    enum kb_est_state state;
    bool monitoring; /* renew: the certificate is not due, nothing was done */
    int exit_code;   /* 0 issued and admitted (or monitoring), 1 denied, else kb_est_exit */
    char *key_uri;   /* the key that holds the certificate (malloc'd, or NULL) */
    char *cert_subject, *cert_issuer;
    char cert_sha256[65];
    long long cert_not_after;
    unsigned char *cert_der; /* the certificate itself, for JSON's fields (malloc'd, or NULL) */
    size_t cert_der_len;
    bool have_verdict;
    kb_verdict verdict;
    bool pending_kept;   /* WAIT: the key and the request are kept for the next run */
    long long next_poll; /* and when the server said to ask again (0: it did not say) */
};

/* "user:password" from a file, or the systemd credential keybound.secret when path is NULL
 * (then *out may stay NULL). Read first, so that a bad file is the one line a user sees. */
int kb_enroll_secret(const char *path, kb_secret **out, kb_err *err);

/* Runs enrol or renew on the modules p with the PIN options pin. Returns 0 when it ran
 * (the outcome says how it went; err holds the reason when the state is not ISSUED) and
 * -1 when the final check itself could not run (err). */
int kb_enroll_run(kb_p11 *p, const kb_pin_opts *pin, const struct kb_enroll_spec *spec,
                  struct kb_enroll_outcome *out, kb_err *err);
void kb_enroll_outcome_free(struct kb_enroll_outcome *o);

#endif
