/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/attrs.h"
#include "pkcs11/objects.h"
#include "src/attest/attest.h"
#include "pkcs11/tpmblobs.h"
#include "policy/facts.h"
#include "policy/policy.h"
#include "src/attest/evidence.h"
#include "src/attest/verify.h"
#include "src/tls/certjson.h"

static const char help[] =
    "usage: keybound attest --key URI [--nonce HEX] [-o FILE] [OPTIONS]\n"
    "       keybound attest --verify FILE --nonce HEX (--key URI | --pubkey FILE)\n"
    "                       [--policy FILE] [OPTIONS]\n\n"
    "Has the TPM certify the key with keybound's attestation key and writes the evidence\n"
    "(DER; PEM when FILE ends in .pem): the EK certificate, the attestation key's public\n"
    "area, TPMS_ATTEST, its signature, the key's public area and the nonce. tpm2-pkcs11\n"
    "tokens only, through a resource manager (/dev/tpmrm0 or tpm2-abrmd).\n\n"
    "  --key URI         the key (one private key)\n"
    "  --nonce HEX       the verifier's nonce, 1 to 64 bytes (default: 32 random bytes)\n"
    "  -o, --output FILE write the evidence there ('-': stdout, not a terminal)\n"
    "  --verify FILE     verify evidence (DER or PEM) made with --nonce HEX, as a remote\n"
    "                    verifier: the policy's tpm-ca, the key's public key from the token\n"
    "                    (--key) or a PEM file (--pubkey); no TPM is used. Exit 0 verified,\n"
    "                    1 refused, 2 an error\n"
    "  --pubkey FILE     with --verify: the public key the attested key must have (PEM)\n"
    "  --policy FILE     with --verify: the policy whose tpm-ca are trusted (default\n"
    "                    " KB_DEFAULT_POLICY ")\n" KB_COMMON_HELP;

enum { OPT_KEY = KB_OPT_FIRST_LOCAL, OPT_NONCE, OPT_VERIFY, OPT_PUBKEY, OPT_POLICY };

/* Evidence is a few KiB (an EK certificate, two public areas, a signature): a file much
 * larger is not evidence, and is not read whole. */
#define EVIDENCE_MAX (64 * 1024)

/* Reads path whole into buf (at most max bytes); -1 with err set when it cannot or when
 * it is larger. */
static int read_bounded(const char *path, const char *what, unsigned char *buf, size_t max,
                        size_t *len, kb_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return kb_err_set(err, "cannot read %s %s: %s", what, path, strerror(errno));
    *len = fread(buf, 1, max, f);
    int more = fgetc(f) != EOF, bad = ferror(f);
    fclose(f);
    if (bad)
        return kb_err_set(err, "cannot read %s %s", what, path);
    if (more)
        return kb_err_set(err, "%s %s is larger than %zu bytes: not %s", what, path, max, what);
    return 0;
}

/* The key URI names, found on its token: what both modes hold while they use it. */
struct opened {
    P11KitUri *uri;
    kb_p11 *p;
    kb_token_list tokens;
    kb_objects objs;
    kb_key *key;
};

static int open_key(struct kb_cli *c, const char *key_uri, struct opened *o, kb_err *err)
{
    return kb_cli_uri(c, key_uri, &o->uri, err) == 0 && kb_cli_load(c, o->uri, &o->p, err) == 0 &&
                   kb_objects_one_key(o->p, o->uri, key_uri, &c->pin, &o->tokens, &o->objs, &o->key,
                                      err) == 0
               ? 0
               : -1;
}

static void close_key(struct opened *o)
{
    kb_objects_free(&o->objs);
    kb_token_list_free(&o->tokens);
    kb_p11_close(o->p);
    if (o->uri)
        p11_kit_uri_free(o->uri);
}

/* The public key the attested key must have: the key's on its token, read as
 * kb_attest_prove reads it (a login, then the key's public key object or attributes). */
static int token_pubkey(struct kb_cli *c, const char *key_uri, gnutls_pubkey_t *out, kb_err *err)
{
    struct opened o = {0};
    kb_session s = {0};
    CK_OBJECT_HANDLE h;
    int rc = -1;
    if (open_key(c, key_uri, &o, err) == 0 && kb_session_open(o.key->token, false, &s, err) == 0 &&
        kb_session_login(&s, &c->pin, err) == 0 && kb_tpm_key_find(&s, o.key, &h, err) == 0 &&
        kb_key_pubkey(&s, h, o.key, out, err) == 0)
        rc = 0;
    if (s.token != NULL)
        kb_session_close(&s);
    close_key(&o);
    return rc;
}

static int file_pubkey(const char *path, gnutls_pubkey_t *out, kb_err *err)
{
    unsigned char buf[16384];
    size_t len;
    *out = NULL;
    if (read_bounded(path, "public key file", buf, sizeof buf, &len, err) != 0)
        return -1;
    gnutls_datum_t d = {buf, (unsigned)len};
    if (gnutls_pubkey_init(out) < 0 || gnutls_pubkey_import(*out, &d, GNUTLS_X509_FMT_PEM) < 0) {
        if (*out)
            gnutls_pubkey_deinit(*out);
        *out = NULL;
        return kb_err_set(err, "%s is not a PEM public key", path);
    }
    return 0;
}

/* keybound attest --verify: what a verifier elsewhere does with evidence made with its
 * nonce. No challenge was activated, so kb_attest_verify_nonce says the AK's binding to
 * the EK rests on the TPM's qualifiedSigner, and this prints that as a fact. */
static int verify_file(struct kb_cli *c, const char *file, const char *key_uri, const char *pubkey,
                       const char *policy_path, const unsigned char *nonce, size_t nonce_len)
{
    static unsigned char buf[EVIDENCE_MAX];
    unsigned char *der = buf;
    size_t len = 0;
    gnutls_datum_t pem = {NULL, 0};
    gnutls_pubkey_t expected = NULL;
    kb_policy *pol = NULL;
    struct kb_attest_anchors anchors = {0};
    struct kb_attest_facts f;
    kb_err err = {{0}};
    int rc = KB_EXIT_ERROR;
    if (read_bounded(file, "evidence", buf, sizeof buf, &len, &err) != 0)
        goto fail;
    if (len > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
        gnutls_datum_t d = {buf, (unsigned)len};
        if (gnutls_pem_base64_decode2(KB_EVIDENCE_PEM_LABEL, &d, &pem) < 0) {
            kb_err_set(
                &err, "%s is not keybound evidence (PEM without a " KB_EVIDENCE_PEM_LABEL " block)",
                file);
            goto fail;
        }
        der = pem.data;
        len = pem.size;
    }
    /* Not evidence is bad input (exit 2), not a refusal of a device. */
    struct kb_evidence ev;
    kb_err derr = {{0}};
    if (kb_evidence_decode(der, len, &ev, &derr) != 0) {
        kb_err_set(&err, "%s is not keybound evidence: %s", file, derr.msg);
        goto fail;
    }
    kb_evidence_free(&ev);
    if (kb_cli_policy(policy_path, &pol, &err) != 0)
        goto fail;
    if (pol->n_tpm_ca == 0) {
        kb_err_set(&err, "the policy names no tpm-ca: no EK issuer to verify against");
        goto fail;
    }
    if ((pubkey ? file_pubkey(pubkey, &expected, &err)
                : token_pubkey(c, key_uri, &expected, &err)) != 0)
        goto fail;
    if (kb_attest_anchors_load((const char *const *)pol->tpm_ca, pol->n_tpm_ca, &anchors) != 0) {
        kb_err_set(&err, "%s", anchors.error);
        goto fail;
    }
    if (kb_attest_verify_nonce(der, len, &anchors, nonce, nonce_len, expected,
                               (long long)time(NULL), &f) != 0) {
        rc = kb_cli_refuse("%s: not attested: %s", file, f.reason);
        goto out;
    }
    if (!c->quiet) {
        printf("evidence:      %s\n", file);
        printf("attested:      yes (fixedTPM fixedParent sensitiveDataOrigin)\n");
        printf("TPM:           %s %s %s\n", f.tpm_manufacturer, f.tpm_model, f.tpm_version);
        printf("EK issuer:     %s\n", f.ek_issuer);
        printf("AK activated:  %s\n", f.ak_activated ? "yes" : "no: " KB_ATTEST_NOT_ACTIVATED);
    }
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    kb_attest_anchors_free(&anchors);
    if (expected)
        gnutls_pubkey_deinit(expected);
    kb_policy_free(pol);
    gnutls_free(pem.data);
    return rc;
}

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
                                             {"verify", required_argument, NULL, OPT_VERIFY},
                                             {"pubkey", required_argument, NULL, OPT_PUBKEY},
                                             {"policy", required_argument, NULL, OPT_POLICY},
                                             KB_COMMON_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    const char *key_uri = NULL, *output = NULL, *verify = NULL, *pubkey = NULL, *policy_path = NULL;
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
        case OPT_VERIFY:
            verify = optarg;
            break;
        case OPT_PUBKEY:
            pubkey = optarg;
            break;
        case OPT_POLICY:
            policy_path = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("attest", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("attest", "unexpected argument '%s'", argv[optind]);
    if (verify != NULL) {
        if (nonce_len == 0)
            return kb_cli_usage("attest", "--verify needs --nonce HEX, the nonce the evidence "
                                          "was made with");
        if ((key_uri == NULL) == (pubkey == NULL))
            return kb_cli_usage("attest", "--verify needs one of --key URI or --pubkey FILE");
        if (output != NULL)
            return kb_cli_usage("attest", "--verify writes no evidence: -o is not used");
        if (kb_cli_json())
            return kb_cli_usage("attest", "--verify has no --json output");
        return verify_file(&c, verify, key_uri, pubkey, policy_path, nonce, nonce_len);
    }
    if (pubkey != NULL || policy_path != NULL)
        return kb_cli_usage("attest", "--pubkey and --policy go with --verify");
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

    struct opened o = {0};
    unsigned char *der = NULL;
    size_t der_len = 0;
    gnutls_datum_t pem = {NULL, 0};
    int rc = KB_EXIT_ERROR;
    if (open_key(&c, key_uri, &o, &err) != 0 ||
        kb_attest_evidence(o.p, o.key, &c.pin, nonce, nonce_len, &der, &der_len, &err) != 0)
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
        print_json(o.key, output, len, nonce, nonce_len, der, der_len);
    else if (!c.quiet && !to_stdout)
        fprintf(stderr, "keybound: evidence for key '%s' on token '%s' in %s (%zu bytes)\n",
                o.key->facts.label, o.key->token->facts.label, output, len);
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    free(der);
    gnutls_free(pem.data);
    close_key(&o);
    return rc;
}
