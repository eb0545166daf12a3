/* SPDX-License-Identifier: Apache-2.0 */
/* The evidence's DER through libtasn1, from the table asn1Parser makes of evidence.asn.
 * Decoding is strict (ASN1_DECODE_FLAG_STRICT_DER), every byte of the input must be
 * consumed, and each field has a size limit well above what a TPM produces, so a file
 * cannot make keybound allocate much; the TPM structures inside are decoded later, by
 * tpmwire.c, and the certificates by GnuTLS. */
#include "config.h"

#include "src/attest/evidence.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libtasn1.h>

extern const asn1_static_node kb_evidence_asn1_tab[]; /* evidence_asn1_tab.c, generated */

/* Generous bounds: a TPMS_ATTEST of a certify is under 400 bytes, a public area under
 * 700, a signature under 520, a nonce at most 64, EK certificates 1-2 KiB. */
#define MAX_TPM_BLOB 2048
#define MAX_NONCE 64
#define MAX_CERT 16384

static int defs_load(asn1_node *defs, kb_err *err)
{
    char msg[ASN1_MAX_ERROR_DESCRIPTION_SIZE] = "";
    *defs = NULL;
    if (asn1_array2tree(kb_evidence_asn1_tab, defs, msg) != ASN1_SUCCESS)
        return kb_err_set(err, "evidence: the ASN.1 table does not load: %s", msg);
    return 0;
}

static int make_node(asn1_node defs, const char *type, asn1_node *node, kb_err *err)
{
    char full[128] = "KeyboundEvidence.";
    strcat(full, type);
    *node = NULL;
    if (asn1_create_element(defs, full, node) != ASN1_SUCCESS)
        return kb_err_set(err, "evidence: cannot create %s", type);
    return 0;
}

static int write_value(asn1_node node, const char *field, const void *v, size_t len, kb_err *err)
{
    int rc = asn1_write_value(node, field, v, (int)len);
    if (rc != ASN1_SUCCESS)
        return kb_err_set(err, "evidence: cannot write %s: %s", field, asn1_strerror(rc));
    return 0;
}

/* DER of node in a malloc'd buffer. */
static int der_of(asn1_node node, const char *what, unsigned char **der, size_t *der_len,
                  kb_err *err)
{
    char msg[ASN1_MAX_ERROR_DESCRIPTION_SIZE] = "";
    int len = 0;
    *der = NULL;
    if (asn1_der_coding(node, "", NULL, &len, msg) != ASN1_MEM_ERROR || len <= 0)
        return kb_err_set(err, "evidence: cannot encode %s: %s", what, msg);
    if (!(*der = malloc((size_t)len)))
        return kb_err_set(err, "evidence: out of memory");
    if (asn1_der_coding(node, "", *der, &len, msg) != ASN1_SUCCESS) {
        free(*der);
        *der = NULL;
        return kb_err_set(err, "evidence: cannot encode %s: %s", what, msg);
    }
    *der_len = (size_t)len;
    return 0;
}

static int put_uint(asn1_node node, const char *field, uint32_t v, kb_err *err)
{
    /* A leading zero keeps it positive; libtasn1 writes the minimal DER form. */
    unsigned char b[5] = {0, (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return write_value(node, field, b, sizeof(b), err);
}

int kb_evidence_encode(const struct kb_evidence *ev, unsigned char **der, size_t *der_len,
                       kb_err *err)
{
    asn1_node defs = NULL, stmt = NULL, top = NULL;
    unsigned char *stmt_der = NULL;
    size_t stmt_len = 0;
    int rc = -1;
    *der = NULL;
    if (ev->ncerts == 0 || ev->ncerts > KB_EVIDENCE_MAX_CERTS || !ev->key_public_len)
        return kb_err_set(err, "evidence: needs the EK certificate and the key's public area");
    if (defs_load(&defs, err) < 0)
        return -1;
    if (make_node(defs, "TcgAttestTpmCertify", &stmt, err) < 0 ||
        write_value(stmt, "tpmSAttest", ev->attest, ev->attest_len, err) < 0 ||
        write_value(stmt, "signature", ev->signature, ev->signature_len, err) < 0 ||
        write_value(stmt, "tpmTPublic", ev->key_public, ev->key_public_len, err) < 0 ||
        der_of(stmt, "the TPM statement", &stmt_der, &stmt_len, err) < 0)
        goto done;
    if (make_node(defs, "KeyboundTpmEvidence", &top, err) < 0 ||
        put_uint(top, "version", KB_EVIDENCE_VERSION, err) < 0 ||
        write_value(top, "bundle.attestations", "NEW", 1, err) < 0 ||
        write_value(top, "bundle.attestations.?LAST.type", KB_EVIDENCE_OID_TPM_CERTIFY, 1, err) <
            0 ||
        write_value(top, "bundle.attestations.?LAST.stmt", stmt_der, stmt_len, err) < 0)
        goto done;
    for (size_t i = 0; i < ev->ncerts; i++)
        if (write_value(top, "bundle.certs", "NEW", 1, err) < 0 ||
            write_value(top, "bundle.certs.?LAST", ev->certs[i], ev->cert_lens[i], err) < 0)
            goto done;
    if (write_value(top, "akPublic", ev->ak_public, ev->ak_public_len, err) < 0 ||
        write_value(top, "nonce", ev->nonce, ev->nonce_len, err) < 0 ||
        put_uint(top, "ekCertIndex", ev->ek_index, err) < 0 ||
        der_of(top, "the evidence", der, der_len, err) < 0)
        goto done;
    rc = 0;
done:
    free(stmt_der);
    asn1_delete_structure(&stmt);
    asn1_delete_structure(&top);
    asn1_delete_structure(&defs);
    return rc;
}

/* Strict DER of exactly len bytes into a fresh node of type. */
static int decode_strict(asn1_node defs, const char *type, const unsigned char *der, size_t len,
                         const char *what, asn1_node *node, kb_err *err)
{
    char msg[ASN1_MAX_ERROR_DESCRIPTION_SIZE] = "";
    if (len > (size_t)1 << 24)
        return kb_err_set(err, "%s: %zu bytes is too large", what, len);
    /* Said apart from "malformed": a file with something appended is a common mistake. */
    unsigned char cls;
    int tag_len = 0, len_len = 0;
    unsigned long tag;
    long content = -1;
    if (len > 1 && asn1_get_tag_der(der, (int)len, &cls, &tag_len, &tag) == ASN1_SUCCESS)
        content = asn1_get_length_der(der + tag_len, (int)len - tag_len, &len_len);
    if (content >= 0 && (size_t)(tag_len + len_len) + (size_t)content < len)
        return kb_err_set(err, "%s: %zu bytes left over after the DER", what,
                          len - (size_t)(tag_len + len_len) - (size_t)content);
    int used = (int)len;
    if (make_node(defs, type, node, err) < 0)
        return -1;
    if (asn1_der_decoding2(node, der, &used, ASN1_DECODE_FLAG_STRICT_DER, msg) != ASN1_SUCCESS)
        return kb_err_set(err, "%s is not valid DER: %s", what, msg[0] ? msg : "malformed");
    if ((size_t)used != len)
        return kb_err_set(err, "%s: %zu bytes left over after the DER", what, len - (size_t)used);
    /* libtasn1's strict flag still takes a length in a longer form than needed; DER has
     * one encoding per value, so encoding the result again must give the input back. */
    unsigned char *again = NULL;
    size_t again_len = 0;
    kb_err e2 = {{0}};
    if (der_of(*node, what, &again, &again_len, &e2) < 0)
        return kb_err_set(err, "%s is not valid DER: %s", what, e2.msg);
    bool canonical = again_len == len && memcmp(again, der, len) == 0;
    free(again);
    if (!canonical)
        return kb_err_set(err, "%s is not in DER's one form (BER lengths or ordering)", what);
    return 0;
}

/* A field's value, malloc'd; required fields that are absent, and anything above max,
 * are errors. */
static int read_alloc(asn1_node node, const char *field, const char *what, size_t max,
                      unsigned char **out, size_t *out_len, kb_err *err)
{
    int len = 0;
    int rc = asn1_read_value(node, field, NULL, &len);
    *out = NULL;
    *out_len = 0;
    if (rc == ASN1_ELEMENT_NOT_FOUND || rc == ASN1_VALUE_NOT_FOUND)
        return kb_err_set(err, "evidence: %s is missing", what);
    if (rc != ASN1_MEM_ERROR && rc != ASN1_SUCCESS)
        return kb_err_set(err, "evidence: %s cannot be read: %s", what, asn1_strerror(rc));
    if ((size_t)len > max)
        return kb_err_set(err, "evidence: %s is %d bytes, more than %zu", what, len, max);
    if (!(*out = malloc(len ? (size_t)len : 1)))
        return kb_err_set(err, "evidence: out of memory");
    if (len && asn1_read_value(node, field, *out, &len) != ASN1_SUCCESS) {
        free(*out);
        *out = NULL;
        return kb_err_set(err, "evidence: %s cannot be read", what);
    }
    *out_len = (size_t)len;
    return 0;
}

/* A non-negative INTEGER that fits 32 bits. */
static int read_uint(asn1_node node, const char *field, const char *what, uint32_t *v, kb_err *err)
{
    unsigned char b[8];
    int len = sizeof(b);
    if (asn1_read_value(node, field, b, &len) != ASN1_SUCCESS || len < 1)
        return kb_err_set(err, "evidence: %s is missing or too large", what);
    if (b[0] & 0x80)
        return kb_err_set(err, "evidence: %s is negative", what);
    /* libtasn1 keeps an INTEGER's bytes as read, so its own re-encoding does not catch a
     * leading zero that DER forbids: checked here */
    if (len > 1 && b[0] == 0 && !(b[1] & 0x80))
        return kb_err_set(err, "evidence: %s is not in DER's minimal form", what);
    int start = (len == 5 && b[0] == 0) ? 1 : 0;
    if (len - start > 4)
        return kb_err_set(err, "evidence: %s is too large", what);
    *v = 0;
    for (int i = start; i < len; i++)
        *v = *v << 8 | b[i];
    return 0;
}

int kb_evidence_decode(const unsigned char *der, size_t der_len, struct kb_evidence *ev,
                       kb_err *err)
{
    asn1_node defs = NULL, top = NULL, stmt = NULL;
    unsigned char *stmt_der = NULL, *oid = NULL;
    size_t stmt_len = 0, oid_len = 0;
    uint32_t version = 0;
    int n = 0, rc = -1;
    memset(ev, 0, sizeof(*ev));
    if (defs_load(&defs, err) < 0)
        return -1;
    if (decode_strict(defs, "KeyboundTpmEvidence", der, der_len, "evidence", &top, err) < 0 ||
        read_uint(top, "version", "the version", &version, err) < 0)
        goto done;
    if (version != KB_EVIDENCE_VERSION) {
        kb_err_set(err, "evidence: version %u is not %d", version, KB_EVIDENCE_VERSION);
        goto done;
    }
    if (asn1_number_of_elements(top, "bundle.attestations", &n) != ASN1_SUCCESS || n != 1) {
        kb_err_set(err, "evidence: %d attestation statements, not exactly one", n);
        goto done;
    }
    if (read_alloc(top, "bundle.attestations.?1.type", "the statement's type", 64, &oid, &oid_len,
                   err) < 0)
        goto done;
    /* libtasn1 gives the OID as dotted text with its NUL */
    if (strnlen((char *)oid, oid_len) != strlen(KB_EVIDENCE_OID_TPM_CERTIFY) ||
        memcmp(oid, KB_EVIDENCE_OID_TPM_CERTIFY, strlen(KB_EVIDENCE_OID_TPM_CERTIFY)) != 0) {
        kb_err_set(err, "evidence: the statement is not tcg-attest-tpm-certify (%s)",
                   KB_EVIDENCE_OID_TPM_CERTIFY);
        goto done;
    }
    if (read_alloc(top, "bundle.attestations.?1.stmt", "the TPM statement", 3 * MAX_TPM_BLOB,
                   &stmt_der, &stmt_len, err) < 0 ||
        decode_strict(defs, "TcgAttestTpmCertify", stmt_der, stmt_len, "the TPM statement", &stmt,
                      err) < 0 ||
        read_alloc(stmt, "tpmSAttest", "tpmSAttest", MAX_TPM_BLOB, &ev->attest, &ev->attest_len,
                   err) < 0 ||
        read_alloc(stmt, "signature", "the signature", MAX_TPM_BLOB, &ev->signature,
                   &ev->signature_len, err) < 0 ||
        read_alloc(stmt, "tpmTPublic", "the key's public area (tpmTPublic)", MAX_TPM_BLOB,
                   &ev->key_public, &ev->key_public_len, err) < 0)
        goto done;
    n = 0;
    if (asn1_number_of_elements(top, "bundle.certs", &n) != ASN1_SUCCESS || n < 1) {
        kb_err_set(err, "evidence: the EK certificate is missing");
        goto done;
    }
    if (n > KB_EVIDENCE_MAX_CERTS) {
        kb_err_set(err, "evidence: %d certificates, more than %d", n, KB_EVIDENCE_MAX_CERTS);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        char field[32];
        snprintf(field, sizeof(field), "bundle.certs.?%d", i + 1);
        if (read_alloc(top, field, "a certificate", MAX_CERT, &ev->certs[i], &ev->cert_lens[i],
                       err) < 0)
            goto done;
        ev->ncerts++;
    }
    if (read_alloc(top, "akPublic", "the AK's public area", MAX_TPM_BLOB, &ev->ak_public,
                   &ev->ak_public_len, err) < 0 ||
        read_alloc(top, "nonce", "the nonce", MAX_NONCE, &ev->nonce, &ev->nonce_len, err) < 0 ||
        read_uint(top, "ekCertIndex", "the EK certificate's index", &ev->ek_index, err) < 0)
        goto done;
    rc = 0;
done:
    free(oid);
    free(stmt_der);
    asn1_delete_structure(&stmt);
    asn1_delete_structure(&top);
    asn1_delete_structure(&defs);
    if (rc < 0)
        kb_evidence_free(ev);
    return rc;
}

void kb_evidence_free(struct kb_evidence *ev)
{
    free(ev->attest);
    free(ev->signature);
    free(ev->key_public);
    free(ev->ak_public);
    free(ev->nonce);
    for (size_t i = 0; i < KB_EVIDENCE_MAX_CERTS; i++)
        free(ev->certs[i]);
    memset(ev, 0, sizeof(*ev));
}

int kb_evidence_bundle_span(const unsigned char *der, size_t der_len, size_t *start, size_t *end,
                            kb_err *err)
{
    asn1_node defs = NULL, top = NULL;
    int s = 0, e = 0, rc = -1;
    if (defs_load(&defs, err) < 0)
        return -1;
    if (decode_strict(defs, "KeyboundTpmEvidence", der, der_len, "evidence", &top, err) < 0)
        goto done;
    if (asn1_der_decoding_startEnd(top, der, (int)der_len, "bundle", &s, &e) != ASN1_SUCCESS) {
        kb_err_set(err, "evidence: the attestation bundle cannot be found");
        goto done;
    }
    *start = (size_t)s;
    *end = (size_t)e + 1; /* libtasn1's end is the last byte */
    rc = 0;
done:
    asn1_delete_structure(&top);
    asn1_delete_structure(&defs);
    return rc;
}
