/* SPDX-License-Identifier: Apache-2.0 */
/* The command line: shared options and helpers for the subcommands.
 *
 * Each subcommand lives in its own file and exports one kb_cmd_NAME function, listed in
 * main.c's table. Options that every token-touching command takes are spelled the same
 * everywhere and parsed by kb_cli_common. Exit codes: 0 ok, 1 a refusal the user asked
 * about, 2 usage or runtime error (one line on stderr naming the object and what to
 * do), 6 the token rejected the PIN, or keybound refused to try a PIN the token rejected
 * before (main() maps a failing command's code to 6 then; the systemd units do not
 * restart on it). */
#ifndef KB_CLI_H
#define KB_CLI_H

#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>

#include "pkcs11/p11.h"
#include "pkcs11/pin.h"
#include "pkcs11/objects.h"
#include "pkcs11/signer.h"
#include "policy/policy.h"
#include "src/enroll/flow.h"
#include "src/enroll/settings.h"

enum { KB_EXIT_OK = 0, KB_EXIT_REFUSED = 1, KB_EXIT_ERROR = 2, KB_EXIT_PIN = 6 };

struct kb_cli {
    const char *module;
    const char *modules; /* --modules: names of registered modules */
    kb_pin_opts pin;
    int verbose;
    bool quiet; /* -q: errors and warnings only */
};

/* Long options shared by every token-touching command; append to a command's table. */
enum {
    KB_OPT_MODULE = 0x100,
    KB_OPT_PIN_FILE,
    KB_OPT_PIN_ENV,
    KB_OPT_FORCE,
    KB_OPT_INSECURE_PIN_FILE,
    KB_OPT_JSON,
    KB_OPT_MODULES,
    KB_OPT_FIRST_LOCAL, /* first code free for a command's own options */
};
/* KB_TOKEN_LONGOPTS: what csr, import-cert and tunnel take, whose output is no document
 * (PEM, one line, a long run); KB_COMMON_LONGOPTS adds --json for the others. */
#define KB_TOKEN_LONGOPTS                                                                          \
    {"module", required_argument, NULL, KB_OPT_MODULE},                                            \
        {"modules", required_argument, NULL, KB_OPT_MODULES},                                      \
        {"pin-file", required_argument, NULL, KB_OPT_PIN_FILE},                                    \
        {"pin-env", required_argument, NULL, KB_OPT_PIN_ENV},                                      \
        {"force", no_argument, NULL, KB_OPT_FORCE},                                                \
        {"insecure-pin-file", no_argument, NULL, KB_OPT_INSECURE_PIN_FILE},                        \
        {"verbose", no_argument, NULL, 'v'}, {"quiet", no_argument, NULL, 'q'},                    \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define KB_COMMON_LONGOPTS {"json", no_argument, NULL, KB_OPT_JSON}, KB_TOKEN_LONGOPTS
#define KB_COMMON_SHORTOPTS "vqh"
#define KB_TOKEN_HELP                                                                              \
    "  --module PATH     use only this PKCS#11 module (default: all registered with p11-kit)\n"    \
    "  --modules NAMES   use only these modules registered with p11-kit, e.g. 'softhsm2\n"         \
    "                    tpm2_pkcs11' (default: $KEYBOUND_MODULES, else all of them)\n"            \
    "  --pin-file FILE   read the PIN from FILE (one trailing newline is dropped)\n"               \
    "  --pin-env NAME    read the PIN from environment variable NAME\n"                            \
    "  --force           log in even when the token reports its final PIN try, or with a\n"        \
    "                    PIN it rejected before (exit 6 and a marker in the state directory)\n"    \
    "  --insecure-pin-file  use a PIN or secret file that other users can read\n"                  \
    "  -v, --verbose     more diagnostics\n"                                                       \
    "  -q, --quiet       errors and warnings only\n"                                               \
    "  -h, --help        this help\n"
#define KB_JSON_HELP "  --json            one JSON document on stdout, errors included\n"
#define KB_COMMON_HELP KB_JSON_HELP KB_TOKEN_HELP

/* Handles a shared option; returns 1 when it was one, 0 otherwise. */
int kb_cli_common(struct kb_cli *c, int opt, const char *arg);

/* Parses argv for a command that takes only the shared options and at most one URI.
 * Returns -1 to go on (*uri_text set or NULL), or the exit code (help, usage error). */
int kb_cli_parse_uri_only(struct kb_cli *c, int argc, char **argv, const char *cmd,
                          const char *help, const char **uri_text);

/* JSON output (doc/keybound.1, JSON OUTPUT). With --json, a command prints exactly one
 * document on stdout whatever happens: its result (kb_cli_print_json), or, when it ends
 * without one and not with 0, the error object that main prints (kb_cli_json_finish) from
 * the message kb_cli_fail, kb_cli_usage or kb_cli_refuse gave on stderr. */

/* getopt_long for a command's line, opterr off. Its first call for argv reads the whole
 * line for --json (or --json=VALUE) first, so that a usage error found before it is a
 * JSON document too. */
int kb_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Whether JSON was asked for: --json, or renew's json = yes. */
bool kb_cli_json(void);
void kb_cli_set_json(bool on);

/* Prints a result document to stdout, pretty, with "schema" first, and releases it. */
void kb_cli_print_json(json_object *o);

/* The exit code for a command's rc: 6 when a PIN was rejected and the command failed. */
int kb_cli_exit_code(int rc);

/* main, after the command: with JSON asked for, a failing command that printed no document
 * gets {"schema", "error", "exit"}. Returns kb_cli_exit_code(rc). */
int kb_cli_json_finish(int rc);

/* Prints "keybound: error: MSG" and returns KB_EXIT_ERROR. */
int kb_cli_fail(const kb_err *err);

/* A URI that named tokens and matched none: the error naming those present, exit 2. */
int kb_cli_no_token(kb_p11 *p, const char *uri_text);

/* Prints a usage error with the command's name and returns KB_EXIT_ERROR. */
int kb_cli_usage(const char *cmd, const char *fmt, ...) KB_PRINTF(2, 3);

/* Prints "keybound: MSG" (a refusal the user asked about) and returns KB_EXIT_REFUSED. */
int kb_cli_refuse(const char *fmt, ...) KB_PRINTF(1, 2);

/* What was wrong with the option of getopt's last '?', from the command's longopts:
 * unknown (with a did-you-mean), ambiguous (naming the candidates), a value missing, or a
 * value given to a flag. */
const char *kb_cli_bad_option(char **argv, const struct option *longopts);

/* A whole number from min to max given to an option (digits only). */
bool kb_cli_count(const char *arg, unsigned long min, unsigned long max, unsigned long *out);

/* Loads the modules: --module, else the URI's module-path, else p11-kit's registry:
 * the modules --modules names, else those in $KEYBOUND_MODULES, else the one the URI's
 * module-name names, else the default set (kb_p11_open_registered). */
int kb_cli_load(struct kb_cli *c, P11KitUri *uri, kb_p11 **out, kb_err *err);

/* Parses a URI from the command line and copies its pin-source into c->pin. */
int kb_cli_uri(struct kb_cli *c, const char *text, P11KitUri **out, kb_err *err);

#define KB_DEFAULT_POLICY KB_SYSCONFDIR "/keybound/policy.conf"

/* The policy at path; without a path, the default file, or the built-in baseline when
 * there is none (said once on stderr). */
int kb_cli_policy(const char *path, struct kb_policy **out, kb_err *err);

/* GnuTLS's PKCS#11 (manual mode, the loaded modules), the PIN callback, and a signer for k. */
int kb_cli_signer(kb_p11 *p, struct kb_cli *c, const struct kb_key *k, struct kb_signer **out,
                  kb_err *err);

/* Writes a file (0644), replacing it. */
int kb_cli_write_file(const char *path, const void *data, size_t len, kb_err *err);

/* What enroll and renew share: the options for the EST server, its trust and the policy
 * (src/enroll/settings.h, one parser for both commands and renew's file), the run and the
 * report. Their codes are KB_OPT_ENROLL_TABLE + the index in kb_enroll_options. */
enum { KB_OPT_ENROLL_TABLE = 0x200 };

struct kb_cli_est {
    struct kb_enroll_settings s;
    const char *secret_file; /* enroll */
};

/* Writes the long options of kb_enroll_options (for enroll: those it takes) to out, which
 * has room for KB_ENROLL_N_OPTIONS; returns how many. */
size_t kb_cli_enroll_longopts(struct option *out, bool enroll);

/* Applies one of them: 1 when opt was one, 0 when not, -1 when its value is wrong (the
 * usage line is printed; exit 2). */
int kb_cli_enroll_option(struct kb_enroll_settings *s, const char *cmd, int opt, const char *arg);

/* The outcome of enroll or renew: state, key, certificate and decision (or the error), and
 * the command's exit code. */
void kb_cli_est_report(const struct kb_enroll_outcome *o, int exit_code, const kb_err *err);

/* The tail both commands share: the secret (enroll without --auth-key; read first, so that
 * a bad secret file is the one line a user sees), the policy, the modules for uri_text,
 * the run and its report. Returns the exit code; the secret is zeroised whatever happens. */
int kb_cli_enroll_run(struct kb_cli *c, const char *uri_text, struct kb_cli_est *e);

/* The note that hidden tokens (a count) needed a login to show their private keys; hint is
 * kb_objects_hint's when a PIN was withheld, else NULL (the PIN options are named). */
void kb_cli_hidden_keys(size_t hidden, const char *hint);

/* A token's certificate as every document shows one (src/tls/certjson.h), for the caller
 * to add its own keys to. */
json_object *kb_cli_cert_json(const kb_cert *c);

/* "2027-01-31T12:00:00Z" */
void kb_cli_time(time_t t, char *buf, size_t len);

/* What `keybound tunnel`'s command line says: one tunnel, from the options keybound.conf
 * takes as keys (kb_tunnel_options, the same parsers and messages), or --config. */
struct kb_tunnel_conf;
struct kb_cli_tunnel {
    struct kb_cli c;
    struct kb_tunnel_conf *one; /* the caller's; reset to the defaults first */
    const char *config;
    const char *policy;
    unsigned workers;
    unsigned admission_recheck_s; /* 0: not given */
    const char *status;           /* --status ADDR, or NULL */
    bool check;                   /* --check: evaluate, listen on nothing */
};

/* 0: run it; 1: the help was printed; -1: err says what is wrong with the command line. */
int kb_cli_tunnel_args(int argc, char **argv, struct kb_cli_tunnel *a, kb_err *err);

int kb_cmd_tokens(int argc, char **argv);
int kb_cmd_keys(int argc, char **argv);
int kb_cmd_keygen(int argc, char **argv);
int kb_cmd_check(int argc, char **argv);
int kb_cmd_connect(int argc, char **argv);
int kb_cmd_csr(int argc, char **argv);
int kb_cmd_import_cert(int argc, char **argv);
int kb_cmd_enroll(int argc, char **argv);
int kb_cmd_renew(int argc, char **argv);
int kb_cmd_status(int argc, char **argv);
int kb_cmd_tunnel(int argc, char **argv);
int kb_cmd_network(int argc, char **argv);
int kb_cmd_attest(int argc, char **argv);

#endif
