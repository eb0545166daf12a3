/* SPDX-License-Identifier: Apache-2.0 */
/* The admission policy: an INI file, parsed into a plain struct.
 *
 * Pure: no GnuTLS, no PKCS#11, no I/O but the policy file itself. Unknown sections or
 * keys, bad values and repeated singular keys are errors naming file:line. A policy
 * that omits the key rules still requires a sensitive, not extractable key (doc/design.md,
 * invariant 1): only an explicit "= no" lifts that. File names inside the policy
 * (trust, crl, ca, tpm-ca) are taken relative to the policy file's directory. */
#ifndef KB_POLICY_H
#define KB_POLICY_H

#include <stdbool.h>
#include <stdio.h>

#include "policy/facts.h"
#include "src/util/err.h"

enum kb_mode { KB_MODE_ENFORCE, KB_MODE_AUDIT, KB_MODE_OFF };

struct kb_token_pattern {
    char *manufacturer; /* fnmatch(3) globs; NULL matches anything */
    char *model;
    char *serial;
    char *label;
};

struct kb_alg_rule {
    enum kb_key_type type;
    char curve[16];    /* for EC and EdDSA */
    unsigned min_bits; /* for RSA */
    bool at_least;     /* rsa-N+ */
};

struct kb_endpoint_rule {
    char *host;
    unsigned port; /* 0: any port */
    char *ca;
    char **pins; /* base64 SHA-256 of the server's SubjectPublicKeyInfo */
    size_t n_pins;
    int min_tls; /* 12 or 13; 0: not set (TLS 1.2) */
    char *priority;
    char *server_name;
};

/* [network "NAME"]: what an 802.1X profile for network NAME must use (src/network/). */
struct kb_network_rule {
    char *name; /* kb_network_name_valid */
    char *ca;
    char *server_name;
    int min_tls; /* 12 or 13; 0: not set (TLS 1.2) */
};

typedef struct kb_policy {
    char *path; /* NULL for the built-in baseline */
    enum kb_mode mode;
    bool allow_unlisted_endpoints;

    struct kb_token_pattern *allow;
    size_t n_allow;
    char **deny_serial;
    size_t n_deny_serial;
    bool require_hw_slot;
    bool require_login;
    bool require_protected_auth;

    bool require_sensitive;
    bool require_not_extractable;
    bool require_never_extractable;
    bool require_always_sensitive;
    bool require_local;
    struct kb_alg_rule *algs;
    size_t n_algs;
    /* The key's TPM must prove its origin and non-exportability (src/attest/) to an EK
     * certificate chaining to one of tpm_ca: the key rules above are what the token says,
     * this is what the TPM signs. */
    bool require_attestation;
    char **tpm_ca; /* resolved paths: the EK issuers trusted, roots and intermediates */
    size_t n_tpm_ca;

    char *trust;
    char **eku; /* dotted OIDs */
    size_t n_eku;
    char *subject;
    char *san_uri;
    long long min_remaining; /* seconds; -1: not set */
    long long renew_before;
    long long max_lifetime;
    char *crl;
    bool allow_ca_device_cert; /* a device certificate with CA:TRUE is denied unless set */

    struct kb_endpoint_rule *endpoints;
    size_t n_endpoints;
    struct kb_network_rule *networks;
    size_t n_networks;
} kb_policy;

/* Parses an open policy file; name is used in messages and to resolve relative paths. */
int kb_policy_parse(FILE *f, const char *name, kb_policy **out, kb_err *err);

/* Opens path, refuses it when group- or world-writable, and parses it. */
int kb_policy_load(const char *path, kb_policy **out, kb_err *err);

/* path, else KB_SYSCONFDIR/keybound/policy.conf when it exists, else the baseline
 * (*baseline set, so that the caller can say so once). */
int kb_policy_load_or_baseline(const char *path, kb_policy **out, bool *baseline, kb_err *err);

/* The built-in baseline: key sensitive and never extractable, certificate within its
 * validity with clientAuth, server always verified. */
kb_policy *kb_policy_baseline(void);

void kb_policy_free(kb_policy *p);

/* "30d", "12h", "1d12h", "90m", "45s", "2w" to seconds; -1 when malformed. */
long long kb_duration_parse(const char *text);

/* "enforce", "audit", "off" */
const char *kb_mode_name(enum kb_mode m);

/* The endpoint section for host:port (exact port first, then a section without a port),
 * or NULL. */
const struct kb_endpoint_rule *kb_policy_endpoint(const kb_policy *p, const char *host,
                                                  unsigned port);

/* The [network "NAME"] section for name, or NULL. */
const struct kb_network_rule *kb_policy_network(const kb_policy *p, const char *name);

/* A network profile's name: 1 to 64 of [A-Za-z0-9._-], and not "." or "..": it is part of
 * file names (keybound-NAME.conf). */
bool kb_network_name_valid(const char *name);

#endif
