/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/objects.h"
#include "src/enroll/csr.h"

static const char help[] =
    "usage: keybound csr --key URI --subject DN [--san KIND:VALUE ...] [-o FILE] [OPTIONS]\n\n"
    "Makes a PKCS#10 certificate request for the key, signed on the token, asking for the\n"
    "extended key usage clientAuth. PEM on stdout or in FILE.\n\n"
    "  --key URI         the key (one private key)\n"
    "  --subject DN      e.g. CN=laptop-17.example.com,O=Example\n"
    "  --san KIND:VALUE  dns:NAME, uri:URI, email:ADDRESS or ip:ADDRESS (repeatable)\n"
    "  -o, --output FILE write the request there\n" KB_TOKEN_HELP;

enum { OPT_KEY = KB_OPT_FIRST_LOCAL, OPT_SUBJECT, OPT_SAN };

int kb_cli_write_file(const char *path, const void *data, size_t len, kb_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kb_err_set(err, "cannot write %s: %s", path, strerror(errno));
    ssize_t w = write(fd, data, len);
    int e = errno;
    if (close(fd) != 0 || w != (ssize_t)len)
        return kb_err_set(err, "cannot write %s: %s", path, strerror(w < 0 ? e : EIO));
    return 0;
}

int kb_cmd_csr(int argc, char **argv)
{
    static const struct option longopts[] = {{"key", required_argument, NULL, OPT_KEY},
                                             {"subject", required_argument, NULL, OPT_SUBJECT},
                                             {"san", required_argument, NULL, OPT_SAN},
                                             {"output", required_argument, NULL, 'o'},
                                             KB_TOKEN_LONGOPTS,
                                             {0}};
    struct kb_cli c = {0};
    struct kb_csr_spec spec = {0};
    const char *key_uri = NULL, *output = NULL;
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
        case OPT_SUBJECT:
            spec.subject = optarg;
            break;
        case OPT_SAN:
            if (spec.n_sans == KB_SAN_MAX)
                return kb_cli_usage("csr", "at most %d --san", KB_SAN_MAX);
            if (kb_san_check(optarg, &err) != 0)
                return kb_cli_fail(&err);
            spec.sans[spec.n_sans++] = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("csr", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("csr", "unexpected argument '%s'", argv[optind]);
    if (key_uri == NULL || spec.subject == NULL)
        return kb_cli_usage("csr", "--key URI and --subject DN are required");

    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_key *key = NULL;
    kb_signer *signer = NULL;
    gnutls_datum_t der = {NULL, 0}, pem = {NULL, 0};
    int rc = KB_EXIT_ERROR;
    if (kb_cli_uri(&c, key_uri, &uri, &err) != 0 || kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_objects_one_key(p, uri, key_uri, &c.pin, &tokens, &objs, &key, &err) != 0 ||
        kb_cli_signer(p, &c, key, &signer, &err) != 0 ||
        kb_csr_make(signer, kb_key_lacks_pss(key), &spec, &der, &err) != 0)
        goto fail;
    if (gnutls_pem_base64_encode2("CERTIFICATE REQUEST", &der, &pem) < 0) {
        kb_err_set(&err, "the request cannot be encoded as PEM");
        goto fail;
    }
    if (output != NULL) {
        if (kb_cli_write_file(output, pem.data, pem.size, &err) != 0)
            goto fail;
    } else {
        fwrite(pem.data, 1, pem.size, stdout);
    }
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    gnutls_free(der.data);
    gnutls_free(pem.data);
    kb_signer_free(signer);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}
