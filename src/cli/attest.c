/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/attrs.h"
#include "pkcs11/objects.h"
#include "src/attest/attest.h"
#include "src/attest/evidence.h"
#include "src/tls/certjson.h"

static const char help[] =
    "usage: keybound attest --key URI [--nonce HEX] [-o FILE] [OPTIONS]\n\n"
    "Has the TPM certify the key with keybound's attestation key and writes the evidence\n"
    "(DER; PEM when FILE ends in .pem): the EK certificate, the attestation key's public\n"
    "area, TPMS_ATTEST, its signature, the key's public area and the nonce. tpm2-pkcs11\n"
    "tokens only, through a resource manager (/dev/tpmrm0 or tpm2-abrmd).\n\n"
    "  --key URI         the key (one private key)\n"
    "  --nonce HEX       the verifier's nonce, 1 to 64 bytes (default: 32 random bytes)\n"
    "  -o, --output FILE write the evidence there ('-': stdout, not a terminal)\n" KB_COMMON_HELP;

enum { OPT_KEY = KB_OPT_FIRST_LOCAL, OPT_NONCE };

static bool ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

static void print_json(const kb_key *key, const char *output, size_t bytes,
                       const unsigned char *nonce, size_t nonce_len, const unsigned char *der,
                       size_t der_len)
{
    char hex[129];
    struct kb_evidence ev;
    json_object *o = json_object_new_object();
    kb_hex(nonce, nonce_len, hex);
    json_object_object_add(o, "key_uri", json_object_new_string(key->uri));
    json_object_object_add(o, "token", json_object_new_string(key->token->facts.label));
    json_object_object_add(o, "file", json_object_new_string(output));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)bytes));
    json_object_object_add(o, "nonce", json_object_new_string(hex));
    if (kb_evidence_decode(der, der_len, &ev, NULL) == 0) {
        gnutls_datum_t d = {ev.certs[0], (unsigned)ev.cert_lens[0]};
        json_object_object_add(o, "ek_certificate", kb_cert_json(&d));
        kb_evidence_free(&ev);
    } else {
        json_object_object_add(o, "ek_certificate", NULL);
    }
    kb_cli_print_json(o);
}

int kb_cmd_attest(int argc, char **argv)
{
    static const struct option longopts[] = {{"key", required_argument, NULL, OPT_KEY},
                                             {"nonce", required_argument, NULL, OPT_NONCE},
                                             {"output", required_argument, NULL, 'o'},
                                             KB_COMMON_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    const char *key_uri = NULL, *output = NULL;
    unsigned char nonce[64];
    size_t nonce_len = 0;
    kb_err err;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, "o:" KB_COMMON_SHORTOPTS, longopts)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_KEY:
            key_uri = optarg;
            break;
        case OPT_NONCE: {
            long n = kb_unhex(optarg, strlen(optarg), nonce, sizeof nonce);
            if (n <= 0)
                return kb_cli_usage("attest", "--nonce takes 1 to 64 bytes in hex, not '%s'",
                                    optarg);
            nonce_len = (size_t)n;
            break;
        }
        case 'o':
            output = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("attest", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("attest", "unexpected argument '%s'", argv[optind]);
    if (key_uri == NULL)
        return kb_cli_usage("attest", "--key URI is required");
    bool to_stdout = output == NULL || strcmp(output, "-") == 0;
    if (to_stdout && kb_cli_json())
        return kb_cli_usage("attest", "--json prints the summary on stdout: give -o FILE");
    if (to_stdout && isatty(STDOUT_FILENO))
        return kb_cli_usage("attest", "the evidence is binary (DER): give -o FILE");
    if (nonce_len == 0) {
        nonce_len = 32;
        if (gnutls_rnd(GNUTLS_RND_NONCE, nonce, nonce_len) < 0) {
            kb_err_set(&err, "no random nonce to be had");
            return kb_cli_fail(&err);
        }
    }

    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_key *key = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    gnutls_datum_t pem = {NULL, 0};
    int rc = KB_EXIT_ERROR;
    if (kb_cli_uri(&c, key_uri, &uri, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_objects_one_key(p, uri, key_uri, &c.pin, &tokens, &objs, &key, &err) != 0 ||
        kb_attest_evidence(p, key, &c.pin, nonce, nonce_len, &der, &der_len, &err) != 0)
        goto fail;
    const void *data = der;
    size_t len = der_len;
    if (!to_stdout && ends_with(output, ".pem")) {
        gnutls_datum_t d = {der, (unsigned)der_len};
        if (gnutls_pem_base64_encode2(KB_EVIDENCE_PEM_LABEL, &d, &pem) < 0) {
            kb_err_set(&err, "the evidence cannot be encoded as PEM");
            goto fail;
        }
        data = pem.data;
        len = pem.size;
    }
    if (to_stdout) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            kb_err_set(&err, "cannot write the evidence to stdout");
            goto fail;
        }
    } else if (kb_cli_write_file(output, data, len, &err) != 0) {
        goto fail;
    }
    if (kb_cli_json())
        print_json(key, output, len, nonce, nonce_len, der, der_len);
    else if (!c.quiet && !to_stdout)
        fprintf(stderr, "keybound: evidence for key '%s' on token '%s' in %s (%zu bytes)\n",
                key->facts.label, key->token->facts.label, output, len);
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    free(der);
    gnutls_free(pem.data);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}
