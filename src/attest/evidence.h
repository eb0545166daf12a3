/* SPDX-License-Identifier: Apache-2.0 */
/* keybound's TPM evidence as DER (src/attest/evidence.asn).
 *
 * KeyboundTpmEvidence wraps the IETF LAMPS AttestationBundle (the value the CSR attribute
 * 1.2.840.113549.1.9.16.2.59 will carry) holding one TCG tcg-attest-tpm-certify statement
 * (2.23.133.20.1: TPMS_ATTEST, TPMT_SIGNATURE, the key's TPMT_PUBLIC) and the EK certificate
 * then its chain, plus the AK's TPMT_PUBLIC, the nonce and the EK certificate's NV index.
 * Encoding and decoding go through libtasn1; decoding is strict DER: no BER forms, no
 * trailing byte, exactly one statement of that type, the key's public area and the EK
 * certificate present. Pure: no TPM, no I/O. */
#ifndef KB_ATTEST_EVIDENCE_H
#define KB_ATTEST_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include "src/util/err.h"

#define KB_EVIDENCE_VERSION 1
#define KB_EVIDENCE_MAX_CERTS 8                     /* the EK certificate and its intermediates */
#define KB_EVIDENCE_OID_TPM_CERTIFY "2.23.133.20.1" /* tcg-attest-tpm-certify */
#define KB_EVIDENCE_PEM_LABEL "KEYBOUND TPM EVIDENCE"

/* Every buffer is raw bytes (no TPM2B size prefix). kb_evidence_encode only reads the
 * struct, so the caller may point at its own buffers; kb_evidence_decode allocates each
 * one and kb_evidence_free releases them. */
struct kb_evidence {
    unsigned char *attest; /* TPMS_ATTEST as signed */
    size_t attest_len;
    unsigned char *signature; /* marshalled TPMT_SIGNATURE */
    size_t signature_len;
    unsigned char *key_public; /* the certified key's TPMT_PUBLIC */
    size_t key_public_len;
    unsigned char *ak_public; /* the AK's TPMT_PUBLIC */
    size_t ak_public_len;
    unsigned char *nonce; /* the qualifyingData Certify was given */
    size_t nonce_len;
    unsigned char *certs[KB_EVIDENCE_MAX_CERTS]; /* [0] the EK certificate (DER), then its chain */
    size_t cert_lens[KB_EVIDENCE_MAX_CERTS];
    size_t ncerts;
    uint32_t ek_index; /* the NV index the EK certificate was read from (0x01C00002) */
};

/* DER of ev in *der (malloc'd, the caller frees it). */
int kb_evidence_encode(const struct kb_evidence *ev, unsigned char **der, size_t *der_len,
                       kb_err *err);
/* Fills ev from der (ev is zeroed first; on failure it holds nothing to free). */
int kb_evidence_decode(const unsigned char *der, size_t der_len, struct kb_evidence *ev,
                       kb_err *err);
void kb_evidence_free(struct kb_evidence *ev);

/* Where the AttestationBundle lies inside der ([*start, *end) in bytes): it goes verbatim
 * into a CSR attribute. */
int kb_evidence_bundle_span(const unsigned char *der, size_t der_len, size_t *start, size_t *end,
                            kb_err *err);

#endif
