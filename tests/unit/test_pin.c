/* SPDX-License-Identifier: Apache-2.0 */
/* PIN sources: files, environment, URI, systemd credentials; never a terminal here. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pkcs11/pin.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kb-pin-test.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    unsetenv("CREDENTIALS_DIRECTORY");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Returns a path that stays valid for the next 15 calls. */
static const char *write_file(const char *name, const void *data, size_t len)
{
    static char paths[16][128];
    static unsigned next;
    char *path = paths[next++ % 16];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void expect_pin(const kb_pin_opts *o, const char *want, const char *source_has)
{
    kb_secret *s = NULL;
    char source[300];
    kb_err err = {{0}};
    assert_int_equal(kb_pin_get(o, "tok", &s, source, sizeof source, &err), 0);
    assert_int_equal(s->len, strlen(want));
    assert_memory_equal(s->buf, want, s->len);
    assert_non_null(strstr(source, source_has));
    assert_null(strstr(source, want));
    kb_secret_free(s);
}

static void expect_error(const kb_pin_opts *o, const char *msg_has)
{
    kb_secret *s = (kb_secret *)1;
    char source[300];
    kb_err err = {{0}};
    assert_int_equal(kb_pin_get(o, "tok", &s, source, sizeof source, &err), -1);
    assert_null(s);
    if (strstr(err.msg, msg_has) == NULL)
        fail_msg("error '%s' lacks '%s'", err.msg, msg_has);
}

static void file_loses_one_newline(void **state)
{
    (void)state;
    kb_pin_opts o = {.no_tty = true};
    o.file = write_file("a", "1234\n", 5);
    expect_pin(&o, "1234", "--pin-file");
    o.file = write_file("b", "1234", 4);
    expect_pin(&o, "1234", "--pin-file");
    o.file = write_file("c", "1234\r\n", 6);
    expect_pin(&o, "1234", "--pin-file");
    o.file = write_file("d", "1234\n\n", 6);
    expect_pin(&o, "1234\n", "--pin-file");
    o.file = write_file("e", " 12 34 ", 7);
    expect_pin(&o, " 12 34 ", "--pin-file");
}

static void file_errors(void **state)
{
    (void)state;
    kb_pin_opts o = {.no_tty = true};
    o.file = write_file("empty", "", 0);
    expect_error(&o, "is empty");
    o.file = write_file("nl", "\n", 1);
    expect_error(&o, "is empty");
    char big[KB_SECRET_MAX + 10];
    memset(big, 'x', sizeof big);
    o.file = write_file("big", big, sizeof big);
    expect_error(&o, "longer than");
    /* The longest PIN that fits, with and without its newline. */
    big[KB_SECRET_MAX - 1] = '\n';
    o.file = write_file("max", big, KB_SECRET_MAX);
    kb_secret *s;
    char src[300];
    assert_int_equal(kb_pin_get(&o, "tok", &s, src, sizeof src, NULL), 0);
    assert_int_equal(s->len, KB_SECRET_MAX - 1);
    kb_secret_free(s);
    o.file = "/nonexistent/pin";
    expect_error(&o, "PIN file /nonexistent/pin cannot be read");
    o.file = dir;
    expect_error(&o, "is not a regular file");
}

static void environment(void **state)
{
    (void)state;
    kb_pin_opts o = {.no_tty = true, .env = "KB_TEST_PIN"};
    setenv("KB_TEST_PIN", "5678", 1);
    expect_pin(&o, "5678", "--pin-env KB_TEST_PIN");
    unsetenv("KB_TEST_PIN");
    expect_error(&o, "KB_TEST_PIN (named by --pin-env) is not set");
    setenv("KB_TEST_PIN", "", 1);
    expect_error(&o, "is empty");
    unsetenv("KB_TEST_PIN");
}

static void uri_sources(void **state)
{
    (void)state;
    kb_pin_opts o = {.no_tty = true};
    const char *path = write_file("uri", "4321\n", 5);
    o.uri_source = path;
    expect_pin(&o, "4321", "pin-source");
    char form[200];
    snprintf(form, sizeof form, "file://%s", path);
    o.uri_source = form;
    expect_pin(&o, "4321", "pin-source");
    snprintf(form, sizeof form, "file:%s", path);
    expect_pin(&o, "4321", "pin-source");
    o.uri_value = "0000";
    expect_pin(&o, "0000", "pin-value");
}

static void credential(void **state)
{
    (void)state;
    kb_pin_opts o = {.no_tty = true};
    expect_error(&o, "needs a PIN; give --pin-file");
    write_file("keybound.pin", "8765\n", 5);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    expect_pin(&o, "8765", "systemd credential");
    assert_true(kb_pin_available(&o));
    unsetenv("CREDENTIALS_DIRECTORY");
    assert_false(kb_pin_available(&o));
}

static void order_of_sources(void **state)
{
    (void)state;
    /* An option on the command line wins over the URI and the credential. */
    kb_pin_opts o = {.no_tty = true};
    o.file = write_file("f", "1111", 4);
    o.env = "KB_TEST_PIN2";
    o.uri_source = write_file("u", "3333", 4);
    setenv("KB_TEST_PIN2", "2222", 1);
    expect_pin(&o, "1111", "--pin-file");
    o.file = NULL;
    expect_pin(&o, "2222", "--pin-env");
    o.env = NULL;
    expect_pin(&o, "3333", "pin-source");
    unsetenv("KB_TEST_PIN2");
}

static void source_path_forms(void **state)
{
    (void)state;
    assert_string_equal(kb_pin_source_path("/a/b"), "/a/b");
    assert_string_equal(kb_pin_source_path("file:///a/b"), "/a/b");
    assert_string_equal(kb_pin_source_path("file:/a/b"), "/a/b");
    assert_null(kb_pin_source_path(NULL));
}

static void secret_starts_empty_and_wipes(void **state)
{
    (void)state;
    kb_secret *s = kb_secret_new();
    assert_non_null(s);
    for (size_t i = 0; i <= KB_SECRET_MAX; i++)
        assert_int_equal(s->buf[i], 0);
    memset(s->buf, 'x', KB_SECRET_MAX + 1);
    s->len = KB_SECRET_MAX;
    kb_secret_wipe(s);
    assert_int_equal(s->len, 0);
    for (size_t i = 0; i <= KB_SECRET_MAX; i++)
        assert_int_equal(s->buf[i], 0);
    kb_secret_free(s);
}

static void rejected_pins_are_remembered(void **state)
{
    (void)state;
    assert_false(kb_pin_was_rejected("card"));
    kb_pin_rejected("card");
    assert_true(kb_pin_was_rejected("card"));
    assert_false(kb_pin_was_rejected("other"));
    /* More tokens than the list holds: the newest stay. */
    char label[16];
    for (int i = 0; i < 20; i++) {
        snprintf(label, sizeof label, "t%d", i);
        kb_pin_rejected(label);
    }
    assert_true(kb_pin_was_rejected("t19"));
    kb_pin_forget_rejections();
    assert_false(kb_pin_was_rejected("t19"));
    assert_false(kb_pin_was_rejected("card"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_loses_one_newline),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(environment),
        cmocka_unit_test(uri_sources),
        cmocka_unit_test(credential),
        cmocka_unit_test(order_of_sources),
        cmocka_unit_test(source_path_forms),
        cmocka_unit_test(secret_starts_empty_and_wipes),
        cmocka_unit_test(rejected_pins_are_remembered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
