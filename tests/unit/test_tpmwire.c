/* SPDX-License-Identifier: Apache-2.0 */
/* The TPM structure decoders and names (src/attest/tpmwire.h) on real bytes from swtpm:
 * every field where the TPM put it, the names the TPM computed, the AK's signature over
 * the TPMS_ATTEST verifying with the decoded key; and every prefix, an extra byte, an
 * oversized TPM2B and the wrong magic, type or algorithm refused. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "src/attest/tpmwire.h"
#include "tests/unit/attest_vectors.h"

static unsigned char buf[1024], buf2[1024];

static void key_public(void **state)
{
    size_t n = unhex(VEC_KEY_PUBLIC, buf);
    struct kb_tpm_public pub;
    kb_err err = {{0}};
    assert_int_equal(kb_tpm_public_decode(buf, n, &pub, &err), 0);
    assert_int_equal(pub.type, KB_TPM_ALG_ECC);
    assert_int_equal(pub.name_alg, KB_TPM_ALG_SHA256);
    assert_int_equal(pub.attributes, 0x00060072);
    assert_int_equal(pub.sym_alg, KB_TPM_ALG_NULL);
    assert_int_equal(pub.scheme, KB_TPM_ALG_NULL);
    assert_int_equal(pub.curve, KB_TPM_ECC_NIST_P256);
    assert_int_equal(pub.x_len, 32);
    assert_int_equal(pub.y_len, 32);
    assert_int_equal(pub.x[0], 0xe3);
    assert_int_equal(pub.y[31], 0xcf);

    n = unhex(VEC_AK_PUBLIC, buf);
    assert_int_equal(kb_tpm_public_decode(buf, n, &pub, &err), 0);
    assert_int_equal(pub.attributes, 0x00050072);
    assert_true(pub.attributes & KB_TPMA_RESTRICTED);
    assert_int_equal(pub.scheme, KB_TPM_ALG_ECDSA);
    assert_int_equal(pub.scheme_hash, KB_TPM_ALG_SHA256);
}

static void names(void **state)
{
    unsigned char name[KB_TPM_NAME_MAX], want[KB_TPM_NAME_MAX], qn[KB_TPM_NAME_MAX];
    size_t name_len, qn_len;
    kb_err err = {{0}};

    /* The key's Name from its public area, and from the PKCS#11 blob without its size. */
    size_t n = unhex(VEC_KEY_PUB_BLOB, buf);
    assert_int_equal(kb_tpm_name(buf + 2, n - 2, name, &name_len, &err), 0);
    assert_int_equal(unhex(VEC_KEY_NAME, want), name_len);
    assert_memory_equal(name, want, name_len);

    /* The EK rebuilt from template L-1 and the certificate's modulus has the TPM's Name. */
    size_t mod_len = unhex(VEC_EK_MODULUS, buf2);
    size_t ek_len;
    assert_int_equal(kb_tpm_ek_rsa_template(buf2, mod_len, buf, &ek_len, &err), 0);
    assert_int_equal(kb_tpm_name(buf, ek_len, name, &name_len, &err), 0);
    unhex(VEC_EK_NAME, want);
    assert_memory_equal(name, want, 34);

    /* QN(AK) = H(QN(EK) || Name(AK)), QN(EK) = H(TPM_RH_ENDORSEMENT || Name(EK)): what the
     * TPM wrote as qualifiedSigner. */
    unsigned char handle[4], ek_qn[KB_TPM_NAME_MAX], ak_name[KB_TPM_NAME_MAX];
    size_t ek_qn_len, ak_name_len;
    kb_tpm_handle_qn(KB_TPM_RH_ENDORSEMENT, handle);
    assert_int_equal(kb_tpm_qualified_name(handle, 4, name, name_len, ek_qn, &ek_qn_len, &err), 0);
    n = unhex(VEC_AK_PUBLIC, buf);
    assert_int_equal(kb_tpm_name(buf, n, ak_name, &ak_name_len, &err), 0);
    unhex(VEC_AK_NAME, want);
    assert_memory_equal(ak_name, want, 34);
    assert_int_equal(
        kb_tpm_qualified_name(ek_qn, ek_qn_len, ak_name, ak_name_len, qn, &qn_len, &err), 0);
    unhex(VEC_AK_QN, want);
    assert_int_equal(qn_len, 34);
    assert_memory_equal(qn, want, 34);

    /* A modulus that is not RSA-2048 has no L-1 EK; a name needs its algorithm. */
    assert_int_equal(kb_tpm_ek_rsa_template(buf2, 128, buf, &ek_len, &err), -1);
    assert_int_equal(kb_tpm_name(buf, 3, name, &name_len, &err), -1);
    buf[2] = 0x00, buf[3] = 0x04; /* SHA-1 */
    assert_int_equal(kb_tpm_name(buf, n, name, &name_len, &err), -1);
}

static void attest(void **state)
{
    size_t n = unhex(VEC_ATTEST, buf);
    struct kb_tpm_attest at;
    kb_err err = {{0}};
    unsigned char want[64];
    assert_int_equal(n, 173);
    assert_int_equal(kb_tpm_attest_decode(buf, n, &at, &err), 0);
    assert_int_equal(at.signer_len, 34);
    unhex(VEC_AK_QN, want);
    assert_memory_equal(at.signer, want, 34);
    assert_int_equal(unhex(VEC_ATTEST_EXTRA, want), at.extra_len);
    assert_memory_equal(at.extra, want, at.extra_len);
    assert_int_equal(at.clock, 0x136d08);
    assert_int_equal(at.reset_count, 2);
    assert_int_equal(at.restart_count, 0);
    assert_int_equal(at.safe, 1);
    assert_true(at.firmware_version == 0x2019102300163636ull);
    unhex(VEC_KEY_NAME, want);
    assert_int_equal(at.name_len, 34);
    assert_memory_equal(at.name, want, 34);
    assert_int_equal(at.qualified_name_len, 34);
}

/* The decoded signature and AK verify the TPMS_ATTEST with GnuTLS: the decoders hand out
 * the right bytes for the verifier. */
static void signature(void **state)
{
    static unsigned char ak[128], sig[128], att[256];
    size_t ak_len = unhex(VEC_AK_PUBLIC, ak), sig_len = unhex(VEC_SIGNATURE, sig);
    size_t att_len = unhex(VEC_ATTEST, att);
    struct kb_tpm_public pub;
    struct kb_tpm_signature s;
    kb_err err = {{0}};
    assert_int_equal(kb_tpm_public_decode(ak, ak_len, &pub, &err), 0);
    assert_int_equal(kb_tpm_signature_decode(sig, sig_len, &s, &err), 0);
    assert_int_equal(s.alg, KB_TPM_ALG_ECDSA);
    assert_int_equal(s.hash, KB_TPM_ALG_SHA256);
    assert_int_equal(s.r_len, 32);
    assert_int_equal(s.s_len, 32);

    gnutls_pubkey_t pk;
    gnutls_datum_t x = {(unsigned char *)pub.x, (unsigned)pub.x_len};
    gnutls_datum_t y = {(unsigned char *)pub.y, (unsigned)pub.y_len};
    gnutls_datum_t r = {(unsigned char *)s.r, (unsigned)s.r_len};
    gnutls_datum_t sv = {(unsigned char *)s.s, (unsigned)s.s_len};
    gnutls_datum_t der = {NULL, 0}, data = {att, (unsigned)att_len};
    assert_int_equal(gnutls_pubkey_init(&pk), 0);
    assert_int_equal(gnutls_pubkey_import_ecc_raw(pk, GNUTLS_ECC_CURVE_SECP256R1, &x, &y), 0);
    assert_int_equal(gnutls_encode_rs_value(&der, &r, &sv), 0);
    assert_int_equal(gnutls_pubkey_verify_data2(pk, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der), 0);
    att[att_len - 1] ^= 1;
    assert_true(gnutls_pubkey_verify_data2(pk, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der) < 0);
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pk);
}

static int decode(int which, const unsigned char *p, size_t len)
{
    struct kb_tpm_public pub;
    struct kb_tpm_attest at;
    struct kb_tpm_signature s;
    kb_err err = {{0}};
    int rc = which == 0   ? kb_tpm_public_decode(p, len, &pub, &err)
             : which == 1 ? kb_tpm_attest_decode(p, len, &at, &err)
                          : kb_tpm_signature_decode(p, len, &s, &err);
    if (rc < 0)
        assert_true(err.msg[0] != '\0');
    return rc;
}

/* Every prefix of each vector and the vector with one byte more are refused: no field
 * is read past the length, and nothing is left over. */
static void truncated_and_overlong(void **state)
{
    const char *vec[] = {VEC_KEY_PUBLIC, VEC_ATTEST, VEC_SIGNATURE};
    for (int w = 0; w < 3; w++) {
        size_t n = unhex(vec[w], buf);
        assert_int_equal(decode(w, buf, n), 0);
        for (size_t len = 0; len < n; len++) {
            /* A copy of exactly len bytes so that ASan sees any read past it. */
            unsigned char *p = malloc(len ? len : 1);
            memcpy(p, buf, len);
            assert_int_equal(decode(w, p, len), -1);
            free(p);
        }
        buf[n] = 0;
        assert_int_equal(decode(w, buf, n + 1), -1);
    }
}

static void refused(void **state)
{
    kb_err err = {{0}};
    struct kb_tpm_attest at;
    struct kb_tpm_public pub;
    size_t n = unhex(VEC_ATTEST, buf);

    buf[0] = 0xfe; /* magic */
    assert_int_equal(kb_tpm_attest_decode(buf, n, &at, &err), -1);
    assert_non_null(strstr(err.msg, "magic"));
    unhex(VEC_ATTEST, buf);
    buf[5] = 0x18; /* a quote, not a certify */
    assert_int_equal(kb_tpm_attest_decode(buf, n, &at, &err), -1);
    assert_non_null(strstr(err.msg, "0x8018"));
    unhex(VEC_ATTEST, buf);
    buf[6] = 0x01, buf[7] = 0x00; /* qualifiedSigner of 256 bytes: more than a name */
    assert_int_equal(kb_tpm_attest_decode(buf, n, &at, &err), -1);
    assert_non_null(strstr(err.msg, "qualifiedSigner"));

    n = unhex(VEC_KEY_PUBLIC, buf);
    buf[1] = 0x08; /* keyedhash */
    assert_int_equal(kb_tpm_public_decode(buf, n, &pub, &err), -1);
    unhex(VEC_KEY_PUBLIC, buf);
    buf[3] = 0x04; /* SHA-1 nameAlg */
    assert_int_equal(kb_tpm_public_decode(buf, n, &pub, &err), -1);
    assert_non_null(strstr(err.msg, "nameAlg"));

    struct kb_tpm_signature s;
    n = unhex(VEC_SIGNATURE, buf);
    buf[1] = 0x05; /* HMAC */
    assert_int_equal(kb_tpm_signature_decode(buf, n, &s, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_public),
        cmocka_unit_test(names),
        cmocka_unit_test(attest),
        cmocka_unit_test(signature),
        cmocka_unit_test(truncated_and_overlong),
        cmocka_unit_test(refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
