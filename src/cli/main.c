/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ev.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cli.h"
#include "src/util/suggest.h"

static const struct kb_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"tokens", kb_cmd_tokens, "list the tokens of the PKCS#11 modules"},
    {"keys", kb_cmd_keys, "list keys and certificates, with their protection"},
    {"keygen", kb_cmd_keygen, "generate a non-exportable key pair on a token"},
    {"check", kb_cmd_check, "evaluate the device-admission policy"},
    {"connect", kb_cmd_connect, "one mTLS handshake with the token's key; --stdio to pipe"},
    {"csr", kb_cmd_csr, "a PKCS#10 request signed on the token"},
    {"import-cert", kb_cmd_import_cert, "store an issued certificate next to its key"},
    {"enroll", kb_cmd_enroll, "key, request and certificate over EST, checked by the policy"},
    {"renew", kb_cmd_renew, "renew (or rekey) a certificate over EST before it expires"},
    {"status", kb_cmd_status, "per key: certificate, expiry, renewal, pending request, decision"},
    {"tunnel", kb_cmd_tunnel, "local plaintext listeners forwarded over mTLS"},
    {"network", kb_cmd_network, "802.1X EAP-TLS profiles on the token's key (profile, check)"},
    {"attest", kb_cmd_attest, "TPM evidence that the key was made in this TPM"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: keybound COMMAND [OPTIONS]\n\n"
                 "Keeps a device's key on its token and admits the device by policy.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'keybound COMMAND --help' shows a command's options; 'keybound --version' "
                 "the version.\n");
}

int main(int argc, char **argv)
{
    /* A core file or a debugger attached by another user could read a PIN out of the
     * process; neither is allowed. Sockets and remote modules must not kill us on a
     * closed peer. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        usage(stderr);
        return KB_EXIT_ERROR;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        /* The build's optional parts (config.h), so that users, bug reports and the tests
         * can tell what this binary does; then the libraries it runs with. */
        static const struct {
            const char *name;
            bool on;
        } features[] = {
#ifdef HAVE_SYSTEMD
            {"systemd", true},
#else
            {"systemd", false},
#endif
#ifdef HAVE_EXPLICIT_BZERO
            {"explicit_bzero", true},
#else
            {"explicit_bzero", false},
#endif
        };
        printf("keybound %s\nfeatures:", PACKAGE_VERSION);
        for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
            printf(" %c%s", features[i].on ? '+' : '-', features[i].name);
        printf("\nlibraries: GnuTLS %s, p11-kit, libev %d.%d, libmicrohttpd %s, json-c %s\n",
               gnutls_check_version(NULL), ev_version_major(), ev_version_minor(),
               MHD_get_version(), json_c_version());
        return KB_EXIT_OK;
    }
    /* "keybound help COMMAND" is "keybound COMMAND --help". */
    static char help_opt[] = "--help";
    char *help_argv[] = {argv[0], argc > 2 ? argv[2] : NULL, help_opt, NULL};
    if (strcmp(argv[1], "help") == 0 && argc > 2) {
        argc = 3;
        argv = help_argv;
    } else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
               strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return KB_EXIT_OK;
    }
    const char *names[sizeof commands / sizeof commands[0]];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        names[i] = commands[i].name;
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (gnutls_global_init() < 0) {
                fprintf(stderr, "keybound: error: GnuTLS failed to initialise\n");
                return KB_EXIT_ERROR;
            }
            /* Someone watches this terminal; a tunnel logs instead. */
            kb_signer_feedback(commands[i].run != kb_cmd_tunnel && isatty(STDERR_FILENO));
            /* The exit code (6 for a rejected PIN) and, with --json, the error document of
             * a command that printed none. */
            int rc = kb_cli_json_finish(commands[i].run(argc - 1, argv + 1));
            if (rc == KB_EXIT_OK || !kb_pin_rejection_seen())
                kb_pin_settle();
            kb_pin_forget_typed();
            gnutls_global_deinit();
            return rc;
        }
    }
    const char *close = kb_suggest(argv[1], names, sizeof names / sizeof names[0]);
    if (close != NULL)
        fprintf(stderr,
                "keybound: '%s' is not a command (did you mean '%s'?); see 'keybound --help'\n",
                argv[1], close);
    else
        fprintf(stderr, "keybound: '%s' is not a command; see 'keybound --help'\n", argv[1]);
    return KB_EXIT_ERROR;
}
