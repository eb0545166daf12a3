/* SPDX-License-Identifier: Apache-2.0 */
/* Signatures per second on a token key, in one process, for the TPM benchmark. Two ways that
 * sign the same thing with the same mechanism, so that their ratio is what keybound's signing
 * path costs on top of what the token does:
 *
 *   signbench kb  MODULE PINFILE KEY-URI COUNT [pss]       through the library's kb_signer,
 *                                                          as a handshake or a CSR signs
 *   signbench raw MODULE PINFILE TOKEN LABEL COUNT [pss]   bare PKCS#11: one session, one
 *                                                          login, C_SignInit + C_Sign each time
 *
 * Both hash a short message in software and have the token sign the hash: ECDSA with SHA-256
 * (P-256) or SHA-384 (P-384), RSA PKCS#1 v1.5 with SHA-256, or with "pss" RSA-PSS SHA-256 (what
 * TLS 1.3 client authentication uses). The first signature (the key loaded into the token) is
 * timed apart from the COUNT after it. One line on stdout: "first_ms X sig_per_s Y count N".
 */
#include "config.h"

#include <dlfcn.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkcs11/pin.h"
#include "pkcs11/signer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const gnutls_datum_t msg = {(unsigned char *)"keybound signing benchmark", 26};

static void report(double first, double start, int count)
{
    printf("first_ms %.2f sig_per_s %.1f count %d\n", first * 1000, count / (now() - start), count);
}

static int bench_kb(char **argv, int count, bool pss)
{
    kb_pin_opts pin = {.file = argv[3], .no_tty = true};
    kb_err err;
    kb_p11 *p = NULL;
    kb_signer *s = NULL;
    int pk = 0, rc = 2;
    unsigned bits = 0;
    if (kb_p11_open(&p, argv[2], &err) != 0 || kb_gnutls_pkcs11_init(p, &err) != 0)
        goto fail;
    kb_pin_install_gnutls(&pin);
    if (kb_signer_open(argv[4], &s, &err) != 0 || kb_signer_info(s, &pk, &bits, &err) != 0)
        goto fail;
    gnutls_sign_algorithm_t algo =
        pk != GNUTLS_PK_RSA ? (bits > 256 ? GNUTLS_SIGN_ECDSA_SHA384 : GNUTLS_SIGN_ECDSA_SHA256)
        : pss               ? GNUTLS_SIGN_RSA_PSS_SHA256
                            : GNUTLS_SIGN_RSA_SHA256;
    double start = 0, first = 0;
    for (int i = 0; i <= count; i++) {
        if (i == 0)
            start = now();
        gnutls_datum_t sig = {NULL, 0};
        if (kb_signer_sign_data2(s, algo, 0, &msg, &sig, &err) != 0)
            goto fail;
        gnutls_free(sig.data);
        if (i == 0) {
            first = now() - start;
            start = now();
        }
    }
    report(first, start, count);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "signbench: %s\n", err.msg);
out:
    kb_signer_free(s);
    kb_p11_close(p);
    return rc;
}

#define CK(call)                                                                                   \
    do {                                                                                           \
        CK_RV rv_ = (call);                                                                        \
        if (rv_ != CKR_OK) {                                                                       \
            fprintf(stderr, "signbench: %s: 0x%lx\n", #call, (unsigned long)rv_);                  \
            return 2;                                                                              \
        }                                                                                          \
    } while (0)

static int bench_raw(char **argv, int count, bool pss)
{
    void *dl = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList get = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
    CK_FUNCTION_LIST_PTR f = NULL;
    if (get == NULL || get(&f) != CKR_OK) {
        fprintf(stderr, "signbench: %s: not a PKCS#11 module\n", argv[2]);
        return 2;
    }
    char pin[256] = "";
    FILE *pf = fopen(argv[3], "r");
    if (pf == NULL || fgets(pin, sizeof pin, pf) == NULL) {
        fprintf(stderr, "signbench: %s: no PIN\n", argv[3]);
        return 2;
    }
    fclose(pf);
    pin[strcspn(pin, "\n")] = '\0';
    CK_C_INITIALIZE_ARGS init = {.flags = CKF_OS_LOCKING_OK};
    CK(f->C_Initialize(&init));
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64, i;
    CK(f->C_GetSlotList(CK_TRUE, slots, &n));
    CK_TOKEN_INFO ti;
    size_t want = strlen(argv[4]);
    for (i = 0; i < n; i++) {
        CK(f->C_GetTokenInfo(slots[i], &ti));
        size_t len = sizeof ti.label;
        while (len > 0 && ti.label[len - 1] == ' ')
            len--;
        if (len == want && memcmp(ti.label, argv[4], len) == 0)
            break;
    }
    if (i == n) {
        fprintf(stderr, "signbench: no token labelled %s\n", argv[4]);
        return 2;
    }
    CK_SESSION_HANDLE h;
    CK(f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &h));
    CK(f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, argv[5], strlen(argv[5])}};
    CK_OBJECT_HANDLE key;
    CK_ULONG found = 0;
    CK(f->C_FindObjectsInit(h, tmpl, 2));
    CK(f->C_FindObjects(h, &key, 1, &found));
    CK(f->C_FindObjectsFinal(h));
    if (found != 1) {
        fprintf(stderr, "signbench: no private key labelled %s\n", argv[5]);
        return 2;
    }
    CK_KEY_TYPE kt;
    unsigned char params[64];
    CK_ATTRIBUTE a[] = {{CKA_KEY_TYPE, &kt, sizeof kt}, {CKA_EC_PARAMS, params, sizeof params}};
    if (f->C_GetAttributeValue(h, key, a, 2) != CKR_OK)
        CK(f->C_GetAttributeValue(h, key, a, 1));
    /* The OIDs' last bytes: secp384r1 is 1.3.132.0.34, prime256v1 1.2.840.10045.3.1.7. */
    bool p384 = kt == CKK_EC && a[1].ulValueLen == 7 && params[6] == 34;
    gnutls_digest_algorithm_t dig = p384 ? GNUTLS_DIG_SHA384 : GNUTLS_DIG_SHA256;
    /* PKCS#1 v1.5 signs DigestInfo(SHA-256, hash), as GnuTLS hands it to the token. */
    static const unsigned char sha256_info[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                  0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                  0x01, 0x05, 0x00, 0x04, 0x20};
    CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    if (kt == CKK_RSA && pss)
        mech = (CK_MECHANISM){CKM_RSA_PKCS_PSS, &pp, sizeof pp};
    else if (kt == CKK_RSA)
        mech = (CK_MECHANISM){CKM_RSA_PKCS, NULL, 0};
    double start = 0, first = 0;
    for (int k = 0; k <= count; k++) {
        if (k == 0)
            start = now();
        unsigned char in[19 + 64], sig[1024];
        size_t off = kt == CKK_RSA && !pss ? sizeof sha256_info : 0;
        memcpy(in, sha256_info, off);
        gnutls_hash_fast(dig, msg.data, msg.size, in + off);
        CK_ULONG sig_len = sizeof sig;
        CK(f->C_SignInit(h, &mech, key));
        CK(f->C_Sign(h, in, off + gnutls_hash_get_len(dig), sig, &sig_len));
        if (k == 0) {
            first = now() - start;
            start = now();
        }
    }
    report(first, start, count);
    f->C_Logout(h);
    f->C_CloseSession(h);
    f->C_Finalize(NULL);
    return 0;
}

int main(int argc, char **argv)
{
    gnutls_global_init();
    int rc = 2;
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "kb") == 0)
        rc = bench_kb(argv, atoi(argv[5]), argc == 7 && strcmp(argv[6], "pss") == 0);
    else if ((argc == 7 || argc == 8) && strcmp(argv[1], "raw") == 0)
        rc = bench_raw(argv, atoi(argv[6]), argc == 8 && strcmp(argv[7], "pss") == 0);
    else
        fprintf(stderr, "usage: see the comment at the top of signbench.c\n");
    gnutls_global_deinit();
    return rc;
}
