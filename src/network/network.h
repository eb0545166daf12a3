/* SPDX-License-Identifier: Apache-2.0 */
/* 802.1X EAP-TLS profiles on the token's key: the workflows behind `keybound network`,
 * renew's and status's hooks.
 *
 * profile: the policy's [network "NAME"] section and the command line settle the CA, the
 * server name and the TLS floor before any token is touched (kb_net_plan); then one login
 * with keybound's own PIN safety (final-try guard, marker, exit 6), the admission verdict
 * and the certificate as kb_device_choose picks it, and only when all passed, the files
 * (mode 0600, each through a temporary file and rename): the certificate with its issuer
 * path, a copy of the CA, on a TPM token a wpa_supplicant.service drop-in, and last the
 * profile with the PIN the token just accepted (profile.h), then the registry entry
 * (registry.h). check: one login with the stored PIN; a PIN the token rejects is removed
 * from the profile at once. A private key's sensitive attributes are never read. */
#ifndef KB_NETWORK_H
#define KB_NETWORK_H

#include "pkcs11/objects.h"
#include "pkcs11/pin.h"
#include "policy/eval.h"
#include "policy/policy.h"
#include "src/network/registry.h"
#include "src/tls/device.h"

struct kb_net_request {
    const char *key_uri;
    const char *ca;          /* --ca, or NULL */
    const char *server_name; /* --server-name, or NULL */
    bool wired;
    const char *ssid;     /* when not wired */
    const char *name;     /* NULL: the SSID, or "wired" */
    const char *identity; /* NULL: the certificate's subject CN */
    enum kb_net_format format;
    const char *policy_path; /* --policy, remembered for check; NULL: the default */
    const char *out_dir;     /* -o DIR; NULL with install */
    bool install;            /* into $KEYBOUND_INSTALL_ROOT/etc/... */
    bool reload;             /* with install: nmcli connection load, or systemctl daemon-reload */
};

/* What the policy and the command line settle together. */
struct kb_net_plan {
    char name[65];
    char ca[PATH_MAX];
    char server_name[256];
    int min_tls; /* 12 or 13 */
};

/* Before the token: 0 go on; 1 refused (err says why: the policy lists no such network,
 * check network.listed; exit 1); -1 bad input (a bad NAME, a value the policy fixes given
 * otherwise, no CA or server name from either; exit 2). */
int kb_net_plan(const kb_policy *pol, const struct kb_net_request *rq, struct kb_net_plan *plan,
                kb_err *err);

/* What was written: the registry entry, and the certificate (DER, malloc'd). */
struct kb_net_written {
    struct kb_net_entry entry;
    unsigned char *cert_der;
    size_t cert_der_len;
    char warning[512]; /* an audit-mode denial, or "" */
};

/* 0 written; 1 refused (err: the key is not admitted; nothing written); -1 err (a rejected
 * PIN among them: kb_pin_rejection_seen). */
int kb_net_profile_write(kb_p11 *p, const kb_pin_opts *pin, const kb_policy *pol,
                         const struct kb_net_request *rq, const struct kb_net_plan *plan,
                         struct kb_net_written *out, kb_err *err);
void kb_net_written_free(struct kb_net_written *w);

/* One profile as network check found it. */
struct kb_net_check {
    char name[65];
    char profile[PATH_MAX];
    bool ok;
    const char *pin; /* "accepted", "rejected", "none" */
    bool pin_removed;
    bool certificate_current;
    bool admitted;
    char reason[768]; /* why not ok, or "" */
    int exit_code;    /* 0 ok, 1 not current or not admitted, 2 error, 6 PIN rejected */
};

/* Checks the profile named name (NULL: every registered one). policy_path NULL: each
 * profile's own (the one it was written with). pin gives --force only: the PIN is the
 * profile's. 0 with *out (malloc'd) and *n, or -1 err (no such profile, no registry). */
int kb_net_check_all(kb_p11 *p, const kb_pin_opts *pin, const char *policy_path, const char *name,
                     struct kb_net_check **out, size_t *n, kb_err *err);

/* renew, after a renewal stored and admitted: rewrites the certificate file of every profile
 * for key (by its SPKI), with the same selection as profile. After a rekey, was is the SPKI
 * of the key replaced: its profiles move to key (certificate, profile with the PIN it holds,
 * registry entry). Failures are warnings naming the profile. */
void kb_net_follow_renewal(const kb_objects *objs, const kb_key *key, const unsigned char *was,
                           const kb_policy *pol, const kb_trust *trust, long long now);

/* The names of the profiles for the key whose SPKI is spki (malloc'd array of malloc'd
 * names; none: NULL and 0). */
void kb_net_profiles_of(const unsigned char spki[32], char ***names, size_t *n);
void kb_net_names_free(char **names, size_t n);

#endif
