/* SPDX-License-Identifier: Apache-2.0 */
/* A tunnel's settings in keybound.conf and on `keybound tunnel`'s command line: one table
 * (kb_tunnel_options), so a value gives the same tunnel, or the same error, either way. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/cli/cli.h"
#include "src/tunnel/settings.h"

#define CONF "/etc/keybound/keybound.conf"
#define LISTEN "127.0.0.1:8080"
#define CONNECT "localhost:443"

static kb_tunnel_conf from_file[KB_TUNNEL_MAX];
static kb_tunnel_conf from_argv;
static char long_alpn[KB_TUNNEL_ALPN_LEN + 2];

static const struct kb_tunnel_option *option(const char *name)
{
    for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++)
        if (strcmp(kb_tunnel_options[i].name, name) == 0)
            return &kb_tunnel_options[i];
    fail_msg("no option %s", name);
    return NULL;
}

/* The setting on line 2 of a [tunnel t] section, listen and connect after it unless it is
 * one of them; the file's own checks run too. */
static int file_set(const char *key, const char *value, const char *listen, kb_err *err)
{
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "[tunnel t]\n%s = %s\n", key, value);
    if (strcmp(key, "listen") != 0)
        n += (size_t)snprintf(text + n, sizeof text - n, "listen = %s\n", listen);
    if (strcmp(key, "connect") != 0)
        snprintf(text + n, sizeof text - n, "connect = %s\n", CONNECT);
    FILE *f = fmemopen(text, strlen(text), "r");
    assert_non_null(f);
    size_t got = 0;
    int rc = kb_tunnel_conf_parse(f, CONF, from_file, &got, NULL, err);
    fclose(f);
    assert_int_equal(got, rc == 0 ? 1 : 0);
    return rc;
}

/* keybound tunnel ARGS..., and the check kb_cmd_tunnel runs next. */
static int argv_run(struct kb_cli_tunnel *a, kb_err *err, int argc, char **argv)
{
    *a = (struct kb_cli_tunnel){.one = &from_argv};
    optind = 0; /* glibc: start afresh, as for a new process */
    int rc = kb_cli_tunnel_args(argc, argv, a, err);
    if (rc == 0 && a->config == NULL && kb_tunnel_conf_check(&from_argv, err) != 0)
        return -1;
    return rc;
}

/* The same setting as --KEY=VALUE (--KEY for a yes/no setting), --listen and --connect
 * added as in file_set. */
static int argv_set(const char *key, const char *value, const char *listen, kb_err *err)
{
    char opt[8192];
    if (option(key)->arg != NULL)
        snprintf(opt, sizeof opt, "--%s=%s", key, value);
    else
        snprintf(opt, sizeof opt, "--%s", key);
    char *argv[8] = {"tunnel", opt};
    int argc = 2;
    if (strcmp(key, "listen") != 0) {
        argv[argc++] = "--listen";
        argv[argc++] = (char *)listen;
    }
    if (strcmp(key, "connect") != 0) {
        argv[argc++] = "--connect";
        argv[argc++] = CONNECT;
    }
    struct kb_cli_tunnel a;
    return argv_run(&a, err, argc, argv);
}

/* Both tunnels, but for what only says where they came from. */
static void assert_same_tunnel(void)
{
    kb_tunnel_conf a = from_file[0], b = from_argv;
    memset(a.name, 0, sizeof a.name);
    memset(b.name, 0, sizeof b.name);
    a.line = b.line = 0;
    a.from_cli = b.from_cli = false;
    assert_memory_equal(&a, &b, sizeof a);
}

static void every_option_is_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++) {
        const struct kb_tunnel_option *o = &kb_tunnel_options[i];
        assert_non_null(o->name);
        assert_non_null(o->help);
        assert_non_null(o->parse);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(o->name, kb_tunnel_options[j].name);
        kb_tunnel_conf t;
        kb_err err = {{0}};
        memset(&t, 0, sizeof t);
        if (o->def != NULL && o->parse(&t, o->name, o->def, &err) != 0)
            fail_msg("%s's default '%s' is refused: %s", o->name, o->def, err.msg);
    }
    kb_tunnel_conf t;
    kb_tunnel_conf_defaults(&t);
    assert_int_equal(t.connect_timeout_s, 10);
    assert_int_equal(t.idle_timeout_s, 0);
    assert_int_equal(t.max_connections, 1000);
    assert_false(t.allow_remote);
}

static void same_value_same_tunnel(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *listen;
    } cases[] = {
        {"listen", "[::1]:8443", NULL},
        {"listen", "unix:/run/keybound/db.sock", NULL},
        {"connect", "db.example.com:5432", LISTEN},
        {"key", "pkcs11:token=dev;object=laptop", LISTEN},
        {"ca", "/etc/ssl/ca.pem", LISTEN},
        {"server-name", "[::1]", LISTEN},
        {"alpn", "h2, http/1.1", LISTEN},
        {"alpn", long_alpn, LISTEN},
        {"proxy", "http://proxy.example:3128", LISTEN},
        {"connect-timeout", "3600", LISTEN},
        {"idle-timeout", "604800", LISTEN},
        {"max-connections", "1", LISTEN},
        {"allow-remote", "yes", "0.0.0.0:8080"},
        {"allow-uid", "1000, 1001", "unix:/run/keybound/db.sock"},
    };
    memset(long_alpn, 'a', KB_TUNNEL_ALPN_LEN);
    long_alpn[KB_TUNNEL_ALPN_LEN] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kb_err err = {{0}};
        if (file_set(cases[i].key, cases[i].value, cases[i].listen, &err) != 0)
            fail_msg("keybound.conf %s = %s: %s", cases[i].key, cases[i].value, err.msg);
        if (argv_set(cases[i].key, cases[i].value, cases[i].listen, &err) != 0)
            fail_msg("--%s %s: %s", cases[i].key, cases[i].value, err.msg);
        assert_same_tunnel();
    }
    /* What the cases set, read back once. */
    kb_err err;
    assert_int_equal(file_set("alpn", "h2, http/1.1", LISTEN, &err), 0);
    assert_int_equal(from_file[0].n_alpn, 2);
    assert_string_equal(from_file[0].alpn[1], "http/1.1");
    assert_int_equal(argv_set("server-name", "[::1]", LISTEN, &err), 0);
    assert_string_equal(from_argv.server_name, "::1");
    assert_int_equal(argv_set("alpn", long_alpn, LISTEN, &err), 0);
    assert_string_equal(from_argv.alpn[0], long_alpn);
}

/* msg with every "--KEY" written "KEY": what the file says where the command line says
 * msg. */
static void as_in_file(const char *key, const char *msg, char *out, size_t len)
{
    char opt[64];
    snprintf(opt, sizeof opt, "--%s", key);
    size_t n = 0;
    for (const char *p = msg; *p != '\0' && n + 1 < len;)
        if (strncmp(p, opt, strlen(opt)) == 0)
            p += 2;
        else
            out[n++] = *p++;
    out[n] = '\0';
}

static void same_value_same_error(void **state)
{
    (void)state;
    static char too_long[KB_TUNNEL_ALPN_LEN + 2];
    memset(too_long, 'a', KB_TUNNEL_ALPN_LEN + 1);
    static const struct {
        const char *key, *value, *says;
    } cases[] = {
        {"key", "key.pem",
         "--key: URI 'key.pem' is not a valid pkcs11: URI: it does not "
         "start with pkcs11:"},
        {"key", "pkcs11:tokn=dev", "has an attribute keybound does not know"},
        {"proxy", "socks5://127.0.0.1:1080",
         "--proxy: proxy 'socks5://127.0.0.1:1080' must be http://HOST:PORT"},
        {"proxy", "http://proxy.example", "--proxy: 'proxy.example' is not HOST:PORT"},
        {"alpn", too_long, "--alpn: at most 8 protocols of 1 to 255 bytes"},
        {"alpn", "a b c d e f g h i", "--alpn: at most 8 protocols of 1 to 255 bytes"},
        {"alpn", ",", "--alpn: the value is empty"},
        {"ca", "", "--ca: the value is empty or longer than 4095 bytes"},
        {"server-name", "a b", "--server-name 'a b' is not a valid server name"},
        {"connect", "localhost", "--connect: 'localhost' is not HOST:PORT"},
        {"listen", "example.com:80", "listen 'example.com:80': write an IP address"},
        {"connect-timeout", "0", "--connect-timeout must be seconds from 1 to 3600, not '0'"},
        {"idle-timeout", "604801", "--idle-timeout must be seconds up to a week"},
        {"max-connections", "100001", "--max-connections must be from 1 to 100000"},
        {"allow-uid", "root", "--allow-uid takes up to 8 numeric user ids"},
        {"allow-uid", "1 2 3 4 5 6 7 8 9", "--allow-uid takes up to 8 numeric user ids"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *listen = strcmp(cases[i].key, "allow-uid") ? LISTEN : "unix:/run/kb.sock";
        kb_err file = {{0}}, cli = {{0}};
        if (argv_set(cases[i].key, cases[i].value, listen, &cli) == 0)
            fail_msg("--%s '%s' is taken", cases[i].key, cases[i].value);
        if (strstr(cli.msg, cases[i].says) == NULL)
            fail_msg("--%s '%s': '%s' does not say '%s'", cases[i].key, cases[i].value, cli.msg,
                     cases[i].says);
        if (file_set(cases[i].key, cases[i].value, listen, &file) == 0)
            fail_msg("keybound.conf %s = '%s' is taken", cases[i].key, cases[i].value);
        char want[sizeof file.msg + 64], plain[sizeof cli.msg];
        as_in_file(cases[i].key, cli.msg, plain, sizeof plain);
        snprintf(want, sizeof want, CONF ":2: %s", plain);
        assert_string_equal(file.msg, want);
    }
    /* A check across settings, after both. */
    kb_err file = {{0}}, cli = {{0}};
    assert_int_equal(file_set("allow-uid", "1000", LISTEN, &file), -1);
    assert_int_equal(argv_set("allow-uid", "1000", LISTEN, &cli), -1);
    assert_string_equal(file.msg, CONF ":1: tunnel 't': allow-uid needs a unix: listener");
    assert_string_equal(cli.msg, "--allow-uid needs a unix: listener");
}

static void lists_add_up_on_the_command_line(void **state)
{
    (void)state;
    kb_err err = {{0}};
    struct kb_cli_tunnel a;
    char *argv[] = {"tunnel", "--listen",  LISTEN,   "--connect",
                    CONNECT,  "--alpn=h2", "--alpn", "http/1.1"};
    assert_int_equal(argv_run(&a, &err, 8, argv), 0);
    assert_int_equal(file_set("alpn", "h2, http/1.1", LISTEN, &err), 0);
    assert_same_tunnel();
    /* Anything else given twice is refused, as a key set twice in the file. */
    char *twice[] = {"tunnel", "--listen", LISTEN, "--connect", CONNECT, "--ca", "a", "--ca=b"};
    assert_int_equal(argv_run(&a, &err, 8, twice), -1);
    assert_string_equal(err.msg, "--ca is given twice");
}

static void command_line_only(void **state)
{
    (void)state;
    kb_err err = {{0}};
    struct kb_cli_tunnel a;
    char *workers[] = {"tunnel", "--listen", LISTEN, "--connect", CONNECT, "--workers", NULL};
    static const char *const refused[] = {"0", "65", "1000", "4x", ""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        workers[6] = (char *)refused[i];
        assert_int_equal(argv_run(&a, &err, 7, workers), -1);
        char want[128];
        snprintf(want, sizeof want, "--workers must be from 1 to 64, not '%s'", refused[i]);
        assert_string_equal(err.msg, want);
    }
    workers[6] = "64";
    assert_int_equal(argv_run(&a, &err, 7, workers), 0);
    assert_int_equal(a.workers, 64);
    assert_int_equal(argv_run(&a, &err, 5, workers), 0);
    assert_int_equal(a.workers, 4);

    char *with_config[] = {"tunnel", "--config", CONF, "--connect-timeout", "5"};
    assert_int_equal(argv_run(&a, &err, 5, with_config), -1);
    assert_string_equal(err.msg, "--connect-timeout is a setting of one tunnel: with --config, "
                                 "write it in the file's [tunnel NAME] sections");
    assert_int_equal(argv_run(&a, &err, 3, with_config), 0);
    assert_string_equal(a.config, CONF);
    char *nothing[] = {"tunnel", "--workers", "2"};
    assert_int_equal(argv_run(&a, &err, 3, nothing), -1);
    assert_string_equal(err.msg, "give --listen and --connect, or --config FILE");
}

static void help_lists_every_option(void **state)
{
    (void)state;
    const char *dir = getenv("TMPDIR");
    char name[4096], buf[4096];
    snprintf(name, sizeof name, "%s/test_tunnel_opts.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    unlink(name);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    kb_err err;
    struct kb_cli_tunnel a;
    char *argv[] = {"tunnel", "--help"};
    int rc = argv_run(&a, &err, 2, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, 1);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++) {
        const struct kb_tunnel_option *o = &kb_tunnel_options[i];
        char line[256];
        snprintf(line, sizeof line, "\n  --%s%s%s ", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        if (strstr(buf, line) == NULL || strstr(buf, o->help) == NULL)
            fail_msg("--help does not list --%s:\n%s", o->name, buf);
    }
}

/* A file of the source tree, read whole. */
static const char *slurp(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/../%s", getenv("TESTS_SRCDIR"), rel);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* roff writes '-' as "\-"; the manuals are written by hand, the table is not. */
static void roff(const char *text, char *out, size_t len)
{
    size_t n = 0;
    for (; *text != '\0' && n + 2 < len; text++) {
        if (*text == '-')
            out[n++] = '\\';
        out[n++] = *text;
    }
    out[n] = '\0';
}

static void the_manuals_name_every_option(void **state)
{
    (void)state;
    /* How each writes a setting: '.BI "listen = "' and '\-\-listen'. */
    static const struct {
        const char *path, *before, *after;
    } manuals[] = {
        {"doc/keybound.conf.5", "\"", " = "},
        {"doc/keybound.1", " \\-\\-", ""},
    };
    if (getenv("TESTS_SRCDIR") == NULL)
        skip();
    for (size_t m = 0; m < sizeof manuals / sizeof manuals[0]; m++) {
        const char *text = slurp(manuals[m].path);
        for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++) {
            char name[64], want[80];
            roff(kb_tunnel_options[i].name, name, sizeof name);
            snprintf(want, sizeof want, "%s%s%s", manuals[m].before, name, manuals[m].after);
            if (strstr(text, want) == NULL)
                fail_msg("%s does not say %s", manuals[m].path, want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_option_is_whole),
        cmocka_unit_test(same_value_same_tunnel),
        cmocka_unit_test(same_value_same_error),
        cmocka_unit_test(lists_add_up_on_the_command_line),
        cmocka_unit_test(command_line_only),
        cmocka_unit_test(help_lists_every_option),
        cmocka_unit_test(the_manuals_name_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
