/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded decoders of the TPM 2.0 structures in attestation evidence, and TPM names.
 *
 * Each decoder takes (bytes, length), reads every field big-endian as TPM 2.0 Part 2 lays
 * it out, never reads past the length, rejects sizes above the type's maximum and any
 * byte left over, and points into the input instead of copying (the input must outlive
 * the result). A refusal is one line in err naming the structure and the field. Pure: no
 * TPM, no I/O; names are hashed with GnuTLS. */
#ifndef KB_ATTEST_TPMWIRE_H
#define KB_ATTEST_TPMWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "src/util/err.h"

enum {
    KB_TPM_ALG_RSA = 0x0001,
    KB_TPM_ALG_SHA1 = 0x0004,
    KB_TPM_ALG_AES = 0x0006,
    KB_TPM_ALG_KEYEDHASH = 0x0008,
    KB_TPM_ALG_SHA256 = 0x000B,
    KB_TPM_ALG_SHA384 = 0x000C,
    KB_TPM_ALG_SHA512 = 0x000D,
    KB_TPM_ALG_NULL = 0x0010,
    KB_TPM_ALG_RSASSA = 0x0014,
    KB_TPM_ALG_RSAES = 0x0015,
    KB_TPM_ALG_RSAPSS = 0x0016,
    KB_TPM_ALG_OAEP = 0x0017,
    KB_TPM_ALG_ECDSA = 0x0018,
    KB_TPM_ALG_ECC = 0x0023,
    KB_TPM_ALG_SYMCIPHER = 0x0025,
    KB_TPM_ALG_CFB = 0x0043,
};

enum {
    KB_TPM_ECC_NIST_P256 = 0x0003,
    KB_TPM_ECC_NIST_P384 = 0x0004,
    KB_TPM_ECC_NIST_P521 = 0x0005
};

/* TPMA_OBJECT bits keybound looks at. */
enum {
    KB_TPMA_FIXED_TPM = 0x00000002,
    KB_TPMA_FIXED_PARENT = 0x00000010,
    KB_TPMA_SENSITIVE_DATA_ORIGIN = 0x00000020,
    KB_TPMA_USER_WITH_AUTH = 0x00000040,
    KB_TPMA_ADMIN_WITH_POLICY = 0x00000080,
    KB_TPMA_RESTRICTED = 0x00010000,
    KB_TPMA_DECRYPT = 0x00020000,
    KB_TPMA_SIGN = 0x00040000,
};

#define KB_TPM_GENERATED_VALUE 0xFF544347u /* TPMS_ATTEST.magic */
#define KB_TPM_ST_ATTEST_CERTIFY 0x8017
#define KB_TPM_RH_OWNER 0x40000001u
#define KB_TPM_RH_ENDORSEMENT 0x4000000Bu
#define KB_TPM_NAME_MAX (2 + 64) /* nameAlg + the largest digest */

/* TPMT_PUBLIC of an RSA or ECC key (keyedhash and symcipher objects are refused). */
struct kb_tpm_public {
    uint16_t type; /* KB_TPM_ALG_RSA or KB_TPM_ALG_ECC */
    uint16_t name_alg;
    uint32_t attributes;         /* TPMA_OBJECT */
    uint16_t sym_alg;            /* symmetric.algorithm (NULL for signing keys) */
    uint16_t sym_bits, sym_mode; /* when sym_alg is not NULL */
    uint16_t scheme;             /* the key's scheme, NULL when none */
    uint16_t scheme_hash;        /* its hash, 0 when the scheme has none */
    uint16_t curve;              /* ECC: curveID */
    uint16_t rsa_bits;           /* RSA: keyBits */
    uint32_t rsa_exponent;       /* RSA: as marshalled, 0 means 65537 */
    const unsigned char *x, *y;  /* ECC: unique.x, unique.y */
    size_t x_len, y_len;
    const unsigned char *n; /* RSA: unique (the modulus) */
    size_t n_len;
};

/* TPMS_ATTEST of a TPM2_Certify (any other type is refused). */
struct kb_tpm_attest {
    const unsigned char *signer; /* qualifiedSigner (TPM2B_NAME contents) */
    size_t signer_len;
    const unsigned char *extra; /* extraData: the qualifyingData Certify was given */
    size_t extra_len;
    uint64_t clock;
    uint32_t reset_count, restart_count;
    uint8_t safe;
    uint64_t firmware_version;
    const unsigned char *name; /* attested.certify.name */
    size_t name_len;
    const unsigned char *qualified_name; /* attested.certify.qualifiedName */
    size_t qualified_name_len;
};

/* TPMT_SIGNATURE of an ECDSA (r, s) or RSASSA/RSAPSS (sig in r) signature. */
struct kb_tpm_signature {
    uint16_t alg, hash;
    const unsigned char *r, *s;
    size_t r_len, s_len;
};

int kb_tpm_public_decode(const unsigned char *p, size_t len, struct kb_tpm_public *out,
                         kb_err *err);
int kb_tpm_attest_decode(const unsigned char *p, size_t len, struct kb_tpm_attest *out,
                         kb_err *err);
int kb_tpm_signature_decode(const unsigned char *p, size_t len, struct kb_tpm_signature *out,
                            kb_err *err);

/* The Name of an object: nameAlg (2 bytes) || H_nameAlg(its marshalled TPMT_PUBLIC), with
 * nameAlg read from the area (SHA-256, SHA-384 or SHA-512). out holds KB_TPM_NAME_MAX. */
int kb_tpm_name(const unsigned char *pub, size_t pub_len, unsigned char *out, size_t *out_len,
                kb_err *err);

/* The qualified name of a child: nameAlg(child) || H(QN(parent) || Name(child)). The
 * parent's QN is a 4-byte hierarchy handle for a primary (kb_tpm_handle_qn). out must not
 * overlap the inputs. */
int kb_tpm_qualified_name(const unsigned char *parent_qn, size_t parent_qn_len,
                          const unsigned char *name, size_t name_len, unsigned char *out,
                          size_t *out_len, kb_err *err);
/* A hierarchy's QN: its handle as 4 big-endian bytes. */
void kb_tpm_handle_qn(uint32_t handle, unsigned char out[4]);

/* The TPMT_PUBLIC of the RSA-2048 EK made from the TCG EK template L-1 and this modulus:
 * the same bytes the TPM marshals, so its Name is the EK's. out holds 512 bytes. */
int kb_tpm_ek_rsa_template(const unsigned char *n, size_t n_len, unsigned char *out,
                           size_t *out_len, kb_err *err);

#endif
