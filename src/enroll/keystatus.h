/* SPDX-License-Identifier: Apache-2.0 */
/* What `keybound status` shows, per key: its certificate, when it expires and whether its
 * renewal is due by the policy's renew-before, the last enrol or renew and a request the
 * EST server accepted for later (src/enroll/keystate.h), and the admission decision (the
 * same evaluation as `keybound check`).
 *
 * The keys shown are those with a certificate and those with a state file (a pending
 * request) on the tokens listed, each with the network profiles that use it
 * (src/network/registry.h, matched by the key's SPKI); reading changes nothing, on the token or on
 * disk. A state file that cannot be read is one warning naming it; its key is shown without it. */
#ifndef KB_KEYSTATUS_H
#define KB_KEYSTATUS_H

#include "pkcs11/objects.h"
#include "pkcs11/pin.h"
#include "policy/eval.h"
#include "src/enroll/keystate.h"

enum kb_renewal {
    KB_RENEWAL_NOT_DUE,
    KB_RENEWAL_DUE,     /* within renew-before, or the certificate is not valid */
    KB_RENEWAL_NO_CERT, /* nothing to renew (an enrolment is pending) */
};

struct kb_key_status {
    char *label, *key_uri, *token_label;
    char token_serial[17];
    unsigned char *cert_der; /* the certificate the policy would see, or NULL */
    size_t cert_der_len;
    char *cert_subject, *cert_issuer;
    long long not_after;
    bool cert_valid;
    long long seconds_left;  /* until notAfter (negative: expired) */
    enum kb_renewal renewal; /* by renew-before, else due only when not valid */
    long long renew_from;    /* when renewal becomes due: notAfter - renew-before; 0: unset */
    kb_verdict *verdict;
    bool have_state;
    kb_keystate state;
    char **network_profiles; /* the names of the network profiles for this key */
    size_t n_network_profiles;
};

struct kb_key_status_list {
    struct kb_key_status *v;
    size_t n;
    size_t n_tokens;       /* the tokens uri matched */
    size_t hidden_private; /* of those, tokens whose keys needed a login that was not made */
    bool pin_withheld;     /* because one PIN was not tried on several tokens: hint says */
    char hint[512];
};

/* The keys matching uri (NULL: all) on p's tokens, logging in with pin where a token hides
 * its keys. */
int kb_key_status_collect(kb_p11 *p, P11KitUri *uri, const kb_pin_opts *pin, const kb_policy *pol,
                          long long now, struct kb_key_status_list *out, kb_err *err);
void kb_key_status_list_free(struct kb_key_status_list *l);

#endif
