/* SPDX-License-Identifier: Apache-2.0 */
/* Facts about a device, as the admission policy sees them.
 *
 * Plain C structs, no PKCS#11 or GnuTLS types: pkcs11/ fills them from what a token
 * says, src/ fills the certificate and endpoint facts, and policy/ evaluates them. An
 * attribute the token did not report is KB_TRI_UNKNOWN, never guessed. */
#ifndef KB_FACTS_H
#define KB_FACTS_H

#include <stdbool.h>
#include <stddef.h>

enum kb_tri { KB_TRI_UNKNOWN = -1, KB_TRI_FALSE = 0, KB_TRI_TRUE = 1 };

struct kb_token_facts {
    char label[33];
    char manufacturer[33];
    char model[17];
    char serial[17];
    bool hw_slot;           /* CKF_HW_SLOT on the slot */
    bool removable;         /* CKF_REMOVABLE_DEVICE on the slot */
    bool login_required;    /* CKF_LOGIN_REQUIRED */
    bool protected_auth;    /* CKF_PROTECTED_AUTHENTICATION_PATH: PIN pad */
    bool rng;               /* CKF_RNG */
    bool initialized;       /* CKF_TOKEN_INITIALIZED */
    bool write_protected;   /* CKF_WRITE_PROTECTED */
    bool pin_count_low;     /* CKF_USER_PIN_COUNT_LOW */
    bool pin_final_try;     /* CKF_USER_PIN_FINAL_TRY */
    bool pin_locked;        /* CKF_USER_PIN_LOCKED */
    bool pin_to_be_changed; /* CKF_USER_PIN_TO_BE_CHANGED */
};

enum kb_key_type { KB_KEY_UNKNOWN = 0, KB_KEY_RSA, KB_KEY_EC, KB_KEY_EDDSA };

#define KB_ID_MAX 64
#define KB_LABEL_MAX 256

struct kb_key_facts {
    enum kb_key_type type;
    unsigned bits;  /* RSA modulus bits or curve size; 0 when unknown */
    char curve[16]; /* "P-256", "P-384", "P-521", "Ed25519", "Ed448" or "" */
    char label[KB_LABEL_MAX];
    unsigned char id[KB_ID_MAX];
    size_t id_len;
    enum kb_tri sensitive;
    enum kb_tri extractable;
    enum kb_tri never_extractable;
    enum kb_tri always_sensitive;
    enum kb_tri local; /* generated on the token */
    enum kb_tri private_obj;
    enum kb_tri always_authenticate;
    enum kb_tri sign;
};

enum kb_chain {
    KB_CHAIN_UNCHECKED = 0, /* the policy names no trust anchors */
    KB_CHAIN_OK,
    KB_CHAIN_FAIL,  /* does not chain to the anchors: detail says why */
    KB_CHAIN_ERROR, /* could not be checked (anchors unreadable...): detail says why */
};

#define KB_CERT_LIST_MAX 8

/* No fact is cut to fit (doc/design.md, invariant 5): the DNs are the certificate's own
 * strings, and a list or value too large for its buffer is flagged *_unfit, which makes
 * every rule that looks at it an error. */
struct kb_cert_facts {
    bool present;
    /* RFC 4514, whole. Borrowed: they live as long as the certificate they were read from.
     * NULL: the DN could not be read in full (e.g. it holds a NUL byte). */
    const char *subject;
    const char *issuer;
    long long not_before; /* seconds since the epoch */
    long long not_after;
    char sha256[65];
    enum kb_tri ca; /* basicConstraints CA:TRUE; unknown: the extension is unreadable */
    char eku[KB_CERT_LIST_MAX][64]; /* dotted OIDs */
    size_t n_eku;
    bool eku_unfit; /* more than KB_CERT_LIST_MAX, one longer than 63 bytes, or unreadable */
    char san_uri[KB_CERT_LIST_MAX][256];
    size_t n_san_uri;
    bool san_uri_unfit; /* as eku_unfit, for URIs longer than 255 bytes */
    enum kb_chain chain;
    char chain_detail[256];
    enum kb_tri revoked; /* unknown: not checked (no CRL) or an error (crl_detail says) */
    bool crl_error;
    char crl_detail[256];
};

struct kb_endpoint_facts {
    bool given;
    char host[256];
    unsigned port;
};

/* What the key's TPM proved about it (src/attest/ fills it from verified evidence; see
 * keybound(1), "attest"). Only a full verification sets attested: checked && !attested is
 * a denial under require-attestation, reason naming the first check that failed. */
struct kb_attest_facts {
    bool checked;     /* the policy asked for attestation and it was tried */
    bool attested;    /* every check passed */
    char reason[512]; /* the first failing check, when !attested: "fixedTPM, fixedParent,
                         sensitiveDataOrigin clear", ... */
    bool fixed_tpm, fixed_parent, sensitive_data_origin;
    char tpm_manufacturer[64], tpm_model[64], tpm_version[64]; /* from the EK certificate's SAN */
    char ek_issuer[512];
    long long at; /* when the evidence was made */
    /* The AK proved its TPM by activating the verifier's credential. False when attested
     * from evidence with the caller's nonce (kb_attest_verify_nonce): the binding then
     * rests on the TPM's qualifiedSigner. */
    bool ak_activated;
};

/* Everything the policy looks at for one key. */
struct kb_device_facts {
    struct kb_token_facts token;
    struct kb_key_facts key;
    struct kb_cert_facts cert;
    struct kb_endpoint_facts endpoint;
    struct kb_attest_facts attest;
};

#endif
