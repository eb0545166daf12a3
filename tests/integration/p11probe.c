/* SPDX-License-Identifier: Apache-2.0 */
/* A probe for the integration tests: reads raw attributes of a key and signs through the
 * kb_signer contract, printing one line per result for the shell tests to check.
 *
 *   p11probe attr MODULE PINFILE TOKEN KEYLABEL CKA_NAME...
 *   p11probe sign MODULE PINFILE KEY-URI COUNT
 *   p11probe resolve MODULE PINFILE URI      (the one key a URI names, as --key will)
 *   p11probe reopen MODULE PINFILE KEY-URI COUNT
 *   p11probe setattr MODULE PINFILE TOKEN KEYLABEL CKA_NAME FILE  (on the one private key
 *            with that label: the attribute's value is FILE's bytes; prints the CKR code)
 */
#include "config.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/objects.h"
#include "pkcs11/pin.h"
#include "pkcs11/signer.h"
#include "pkcs11/uri.h"

static const struct {
    const char *name;
    CK_ATTRIBUTE_TYPE type;
} attrs[] = {
    {"CKA_SENSITIVE", CKA_SENSITIVE},
    {"CKA_EXTRACTABLE", CKA_EXTRACTABLE},
    {"CKA_NEVER_EXTRACTABLE", CKA_NEVER_EXTRACTABLE},
    {"CKA_ALWAYS_SENSITIVE", CKA_ALWAYS_SENSITIVE},
    {"CKA_LOCAL", CKA_LOCAL},
    {"CKA_PRIVATE", CKA_PRIVATE},
    {"CKA_TOKEN", CKA_TOKEN},
    {"CKA_SIGN", CKA_SIGN},
    {"CKA_VALUE", CKA_VALUE},
    {"CKA_PRIVATE_EXPONENT", CKA_PRIVATE_EXPONENT},
    {"CKA_MODULUS", CKA_MODULUS},
    {"CKA_PUBLIC_EXPONENT", CKA_PUBLIC_EXPONENT},
    {"CKA_EC_PARAMS", CKA_EC_PARAMS},
    {"CKA_EC_POINT", CKA_EC_POINT},
    {"CKA_PUBLIC_KEY_INFO", CKA_PUBLIC_KEY_INFO},
};

static int probe_attr(int argc, char **argv, bool set)
{
    kb_pin_opts pin = {.file = argv[3], .no_tty = true};
    kb_err err;
    kb_p11 *p = NULL;
    kb_token_list list = {0};
    kb_token *t;
    kb_session s = {0};
    char uri_text[300];
    snprintf(uri_text, sizeof uri_text, "pkcs11:token=%s", argv[4]);
    P11KitUri *uri = NULL;
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    int rc = 2;
    if (kb_uri_parse(uri_text, 0, &uri, &err) != 0 || kb_p11_open(&p, argv[2], &err) != 0 ||
        kb_p11_one_token(p, uri, uri_text, &list, &t, &err) != 0 ||
        kb_session_open(t, set, &s, &err) != 0 || kb_session_login(&s, &pin, &err) != 0 ||
        kb_find(&s, CKO_PRIVATE_KEY, CKA_LABEL, argv[5], strlen(argv[5]), &h, &n, &err) != 0) {
        fprintf(stderr, "p11probe: %s\n", err.msg);
        goto out;
    }
    if (n != 1) {
        fprintf(stderr, "p11probe: %zu keys labelled %s\n", n, argv[5]);
        goto out;
    }
    if (set) {
        unsigned char buf[8192];
        FILE *f = fopen(argv[7], "rb");
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++)
            if (strcmp(argv[6], attrs[a].name) == 0) {
                CK_ATTRIBUTE at = {attrs[a].type, buf, len};
                CK_RV rv = t->module->fn->C_SetAttributeValue(s.h, h[0], &at, 1);
                printf("%s\n", rv == CKR_OK ? "CKR_OK" : kb_ckr_name(rv));
            }
        argc = 0;
    }
    for (int i = 6; i < argc; i++) {
        for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++) {
            if (strcmp(argv[i], attrs[a].name) != 0)
                continue;
            unsigned char *v;
            CK_ULONG len;
            CK_RV rv = kb_attr_get(&s, h[0], attrs[a].type, &v, &len);
            if (rv != CKR_OK)
                printf("%s=%s\n", attrs[a].name, kb_ckr_name(rv));
            else if (len == 1)
                printf("%s=%s\n", attrs[a].name, v[0] ? "true" : "false");
            else
                printf("%s=readable(%lu bytes)\n", attrs[a].name, (unsigned long)len);
            if (rv == CKR_OK)
                free(v);
        }
    }
    rc = 0;
out:
    free(h);
    kb_session_close(&s);
    kb_token_list_free(&list);
    if (uri)
        p11_kit_uri_free(uri);
    kb_p11_close(p);
    return rc;
}

static int probe_sign(char **argv)
{
    kb_pin_opts pin = {.file = argv[3], .no_tty = true};
    kb_err err;
    kb_p11 *p = NULL;
    kb_signer *signer = NULL;
    if (kb_p11_open(&p, argv[2], &err) != 0 || kb_gnutls_pkcs11_init(p, &err) != 0) {
        fprintf(stderr, "p11probe: %s\n", err.msg);
        kb_p11_close(p);
        return 2;
    }
    kb_pin_install_gnutls(&pin);
    int rc = 2;
    if (kb_signer_open(argv[4], &signer, &err) != 0) {
        fprintf(stderr, "p11probe: %s\n", err.msg);
        goto out;
    }
    int count = atoi(argv[5]);
    gnutls_datum_t data = {(unsigned char *)"keybound probe", 14};
    for (int i = 1; i <= count; i++) {
        gnutls_datum_t sig = {NULL, 0};
        gnutls_sign_algorithm_t algo;
        gnutls_pubkey_t pub;
        if (kb_signer_sign(signer, &data, &sig, &algo, &err) != 0) {
            printf("sign %d: error: %s\n", i, err.msg);
            continue;
        }
        int v = -1;
        if (kb_signer_pubkey(signer, &pub, &err) == 0) {
            v = gnutls_pubkey_verify_data2(pub, algo, 0, &data, &sig);
            gnutls_pubkey_deinit(pub);
        }
        printf("sign %d: %s\n", i, v >= 0 ? "ok, verified" : "SIGNATURE DOES NOT VERIFY");
        gnutls_free(sig.data);
    }
    printf("imports=%u\n", kb_signer_imports(signer));
    rc = 0;
out:
    kb_signer_free(signer);
    kb_p11_close(p);
    return rc;
}

/* Opens the key N times, as a tunnel re-imports it after errors. */
static int probe_reopen(char **argv)
{
    kb_pin_opts pin = {.file = argv[3], .no_tty = true};
    kb_err err;
    kb_p11 *p = NULL;
    if (kb_p11_open(&p, argv[2], &err) != 0 || kb_gnutls_pkcs11_init(p, &err) != 0) {
        fprintf(stderr, "p11probe: %s\n", err.msg);
        kb_p11_close(p);
        return 2;
    }
    kb_pin_install_gnutls(&pin);
    for (int i = 1; i <= atoi(argv[5]); i++) {
        kb_signer *signer = NULL;
        if (kb_signer_open(argv[4], &signer, &err) != 0)
            printf("open %d: error: %s\n", i, err.msg);
        else
            printf("open %d: ok\n", i);
        kb_signer_free(signer);
    }
    kb_p11_close(p);
    return 0;
}

static int probe_resolve(char **argv)
{
    kb_pin_opts pin = {.file = argv[3], .no_tty = true};
    kb_err err;
    kb_p11 *p = NULL;
    P11KitUri *uri = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_key *key;
    int rc = 2;
    if (kb_uri_parse(argv[4], 0, &uri, &err) != 0 || kb_p11_open(&p, argv[2], &err) != 0 ||
        kb_objects_one_key(p, uri, argv[4], &pin, &tokens, &objs, &key, &err) != 0) {
        fprintf(stderr, "p11probe: %s\n", err.msg);
        goto out;
    }
    printf("%s\n", key->uri);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    rc = 0;
out:
    if (uri)
        p11_kit_uri_free(uri);
    kb_p11_close(p);
    return rc;
}

int main(int argc, char **argv)
{
    gnutls_global_init();
    int rc = 2;
    if (argc >= 7 && strcmp(argv[1], "attr") == 0)
        rc = probe_attr(argc, argv, false);
    else if (argc == 8 && strcmp(argv[1], "setattr") == 0)
        rc = probe_attr(argc, argv, true);
    else if (argc == 6 && strcmp(argv[1], "sign") == 0)
        rc = probe_sign(argv);
    else if (argc == 6 && strcmp(argv[1], "reopen") == 0)
        rc = probe_reopen(argv);
    else if (argc == 5 && strcmp(argv[1], "resolve") == 0)
        rc = probe_resolve(argv);
    else
        fprintf(stderr, "usage: p11probe attr MODULE PINFILE TOKEN KEYLABEL CKA_NAME...\n"
                        "       p11probe sign MODULE PINFILE KEY-URI COUNT\n"
                        "       p11probe resolve MODULE PINFILE URI\n"
                        "       p11probe reopen MODULE PINFILE KEY-URI COUNT\n"
                        "       p11probe setattr MODULE PINFILE TOKEN KEYLABEL CKA_NAME FILE\n");
    gnutls_global_deinit();
    return rc;
}
