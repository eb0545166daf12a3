/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "pkcs11/objects.h"
#include "pkcs11/store.h"
#include "src/enroll/install.h"

static const char help[] =
    "usage: keybound import-cert --key URI [--chain FILE] FILE [OPTIONS]\n\n"
    "Stores an issued certificate on the token next to its key (the key's own CKA_ID and\n"
    "label), after checking that it is for that key. FILE is PEM or DER, the device\n"
    "certificate first; of the further certificates in it and in --chain FILE (any\n"
    "order), only the certificate's issuer path is stored: its issuing CA, that CA's\n"
    "issuer and so on, at most 8, without the self-signed root. Others are left out.\n\n"
    "  --key URI         the key the certificate was issued for\n"
    "  --chain FILE      intermediate and CA certificates to build the path from\n" KB_TOKEN_HELP;

enum { OPT_KEY = KB_OPT_FIRST_LOCAL, OPT_CHAIN };

int kb_cmd_import_cert(int argc, char **argv)
{
    static const struct option longopts[] = {{"key", required_argument, NULL, OPT_KEY},
                                             {"chain", required_argument, NULL, OPT_CHAIN},
                                             KB_TOKEN_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    const char *key_uri = NULL, *chain = NULL;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        if (opt == 'h') {
            fputs(help, stdout);
            return KB_EXIT_OK;
        } else if (opt == OPT_KEY) {
            key_uri = optarg;
        } else if (opt == OPT_CHAIN) {
            chain = optarg;
        } else if (!kb_cli_common(&c, opt, optarg)) {
            return kb_cli_usage("import-cert", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (key_uri == NULL || argc - optind != 1)
        return kb_cli_usage("import-cert", "needs --key URI and one certificate FILE");
    const char *file = argv[optind];

    kb_err err;
    gnutls_x509_crt_t *certs = NULL, *more = NULL;
    unsigned n = 0, n_more = 0;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_key *key = NULL;
    struct kb_install_result r;
    int rc = KB_EXIT_ERROR;
    /* Every file is read and checked before the token is touched. */
    if (kb_load_certs(file, &certs, &n, &err) != 0 ||
        (chain && kb_load_certs(chain, &more, &n_more, &err) != 0))
        goto fail;
    if (n_more > 0) {
        gnutls_x509_crt_t *all = gnutls_realloc(certs, (n + n_more) * sizeof *all);
        if (all == NULL) {
            kb_err_set(&err, "out of memory");
            goto fail;
        }
        certs = all;
        for (unsigned i = 0; i < n_more; i++)
            certs[n++] = more[i];
        n_more = 0;
    }
    if (kb_cli_uri(&c, key_uri, &uri, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_objects_one_key(p, uri, key_uri, &c.pin, &tokens, &objs, &key, &err) != 0)
        goto fail;
    if (kb_cert_matches_key(certs[0], key, file, &err) != 0 ||
        kb_install_cert(key, certs, n, &c.pin, &r, &err) != 0)
        goto fail;
    printf("%s certificate for key '%s' on token '%s'", r.stored ? "stored" : "already had the",
           key->facts.label, key->token->facts.label);
    if (n > 1) {
        printf(", issuer path of %u certificate%s (%u new)", r.chain_len,
               r.chain_len == 1 ? "" : "s", r.chain_new);
        if (r.left_out > 0)
            printf("; %u other certificate%s not stored", r.left_out, r.left_out == 1 ? "" : "s");
    }
    printf("\n");
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    kb_free_certs(certs, n);
    gnutls_free(more);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}
