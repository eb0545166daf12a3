/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "pkcs11/attrs.h"
#include "pkcs11/keygen.h"

static const char help[] =
    "usage: keybound keygen --token URI --label NAME [--type TYPE] [OPTIONS]\n\n"
    "Generates a key pair on the token that URI names. The private key is sensitive, not\n"
    "extractable and sign-only; both halves share one random CKA_ID. Prints the new key's\n"
    "pkcs11: URI.\n\n"
    "  --token URI       the token (e.g. pkcs11:token=laptop)\n"
    "  --label NAME      the new key's label; must be new on the token\n"
    "  --type TYPE       ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096, "
    "ed25519\n" KB_COMMON_HELP;

enum { OPT_TOKEN = KB_OPT_FIRST_LOCAL, OPT_LABEL, OPT_TYPE };

int kb_cmd_keygen(int argc, char **argv)
{
    static const struct option longopts[] = {{"token", required_argument, NULL, OPT_TOKEN},
                                             {"label", required_argument, NULL, OPT_LABEL},
                                             {"type", required_argument, NULL, OPT_TYPE},
                                             KB_COMMON_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    const char *token_uri = NULL, *label = NULL, *type = "ec-p256";
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_TOKEN:
            token_uri = optarg;
            break;
        case OPT_LABEL:
            label = optarg;
            break;
        case OPT_TYPE:
            type = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("keygen", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("keygen", "unexpected argument '%s'", argv[optind]);
    if (token_uri == NULL || label == NULL)
        return kb_cli_usage("keygen", "--token URI and --label NAME are required");
    if (!kb_keygen_type_known(type))
        return kb_cli_usage("keygen",
                            "--type %s is unknown; use ec-p256, ec-p384, rsa-2048, "
                            "rsa-3072, rsa-4096 or ed25519",
                            type);

    kb_err err;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_token *t = NULL;
    kb_session s = {0};
    kb_key k = {0};
    int rc = KB_EXIT_ERROR;
    if (kb_cli_uri(&c, token_uri, &uri, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_p11_one_token(p, uri, token_uri, &tokens, &t, &err) != 0 ||
        kb_session_open(t, true, &s, &err) != 0 || kb_session_login(&s, &c.pin, &err) != 0 ||
        kb_keygen(&s, type, label, &k, &err) != 0) {
        rc = kb_cli_fail(&err);
        goto out;
    }
    if (kb_cli_json()) {
        char id[2 * KB_ID_MAX + 1];
        kb_hex(k.facts.id, k.facts.id_len, id);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "uri", json_object_new_string(k.uri));
        json_object_object_add(o, "token", json_object_new_string(t->facts.label));
        json_object_object_add(o, "label", json_object_new_string(k.facts.label));
        json_object_object_add(o, "type", json_object_new_string(type));
        json_object_object_add(o, "id", json_object_new_string(id));
        kb_cli_print_json(o);
    } else {
        puts(k.uri);
    }
    rc = KB_EXIT_OK;
out:
    kb_key_clear(&k);
    kb_session_close(&s);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}
