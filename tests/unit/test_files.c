/* SPDX-License-Identifier: Apache-2.0 */
/* Files keybound trusts (src/util/trustfile.c) and its state directory (src/util/statedir.c). */
#include "config.h"

#include <fcntl.h>
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

#include "src/util/statedir.h"
#include "src/util/trustfile.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kb-files-test.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *file_in(const char *sub, const char *name, unsigned mode)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x\n", f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static void writer_modes(void **state)
{
    (void)state;
    assert_null(kb_trustfile_writer(0644, 1000, 0));
    assert_null(kb_trustfile_writer(0600, 0, 0));
    assert_string_equal(kb_trustfile_writer(0664, 1000, 0), "its group");
    assert_string_equal(kb_trustfile_writer(0646, 1000, 0), "every user");
    assert_string_equal(kb_trustfile_writer(0666, 0, 0), "every user");
    /* Directories: /tmp is fine, a sticky directory of another user is not. */
    assert_null(kb_trustfile_writer(01777, 0, 1));
    assert_null(kb_trustfile_writer(0755, 1000, 1));
    assert_string_equal(kb_trustfile_writer(01777, 1000, 1), "every user");
    assert_string_equal(kb_trustfile_writer(0777, 0, 1), "every user");
    assert_string_equal(kb_trustfile_writer(0775, 0, 1), "its group");
    /* Owners: root's and our own only. */
    assert_true(kb_trustfile_owner_ok(0, 1000));
    assert_true(kb_trustfile_owner_ok(1000, 1000));
    assert_false(kb_trustfile_owner_ok(1001, 1000));
    assert_true(kb_trustfile_owner_ok(0, 0));
    assert_false(kb_trustfile_owner_ok(65534, 0));
    /* A sticky bit on a file means nothing. */
    assert_string_equal(kb_trustfile_writer(01666, 0, 0), "every user");
}

static void open_checks(void **state)
{
    (void)state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/d", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    kb_err err;
    const char *p = file_in("d", "ok", 0644);
    int fd = kb_trustfile_open(p, "policy", 0, &err);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0); /* blocking again for reading */
    close(fd);

    p = file_in("d", "gw", 0664);
    assert_int_equal(kb_trustfile_open(p, "policy", 0, &err), -1);
    assert_non_null(strstr(err.msg, "is writable by its group; refusing it: chmod go-w"));

    p = file_in("d", "secret", 0640);
    assert_int_equal(kb_trustfile_open(p, "PIN file", KB_TF_SECRET, &err), -1);
    assert_non_null(strstr(err.msg, "can be read by other users; refusing it"));
    assert_non_null(strstr(err.msg, "--insecure-pin-file"));
    fd = kb_trustfile_open(p, "PIN file", KB_TF_SECRET | KB_TF_ALLOW_READABLE, &err);
    assert_true(fd >= 0);
    close(fd);

    char fifo[160];
    snprintf(fifo, sizeof fifo, "%s/d/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(kb_trustfile_open(fifo, "config", 0, &err), -1); /* and returns */
    assert_non_null(strstr(err.msg, "is not a regular file (a FIFO)"));

    chmod(sub, 0777);
    p = file_in("d", "in-open-dir", 0644);
    assert_int_equal(kb_trustfile_open(p, "config", 0, &err), -1);
    assert_non_null(strstr(err.msg, "which every user can write"));
    chmod(sub, 0755);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/d/missing", dir);
    assert_int_equal(kb_trustfile_check(missing, "trust file", KB_TF_MISSING_OK, &err), 0);
    assert_int_equal(kb_trustfile_check(missing, "trust file", 0, &err), -1);
    assert_non_null(strstr(err.msg, "cannot be opened"));
}

static void state_dir_choice(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(
        kb_state_dir_choose("/t/s", "/var/lib/keybound", true, "/x", "/h", out, sizeof out), 0);
    assert_string_equal(out, "/t/s");
    assert_int_equal(
        kb_state_dir_choose(NULL, "/var/lib/a:/var/lib/b", false, "/x", "/h", out, sizeof out), 0);
    assert_string_equal(out, "/var/lib/a");
    assert_int_equal(kb_state_dir_choose("", "", true, "/x", "/h", out, sizeof out), 0);
    assert_string_equal(out, "/var/lib/keybound");
    assert_int_equal(kb_state_dir_choose(NULL, NULL, false, "/x", "/h", out, sizeof out), 0);
    assert_string_equal(out, "/x/keybound");
    assert_int_equal(kb_state_dir_choose(NULL, NULL, false, "relative", "/h", out, sizeof out), 0);
    assert_string_equal(out, "/h/.local/state/keybound");
    assert_int_equal(kb_state_dir_choose(NULL, NULL, false, NULL, NULL, out, sizeof out), -1);
    assert_int_equal(kb_state_dir_choose("/a/long/path", NULL, false, NULL, NULL, out, 5), -1);
}

static void state_write(void **state)
{
    (void)state;
    char sd[160], path[200], buf[64];
    snprintf(sd, sizeof sd, "%s/state/deeper", dir);
    setenv("KEYBOUND_STATE_DIR", sd, 1);
    kb_err err;
    char got[256];
    assert_int_equal(kb_state_dir(got, sizeof got, true, &err), 0);
    assert_string_equal(got, sd);
    struct stat st;
    assert_int_equal(stat(sd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(kb_state_write(sd, "m", "one\n", 4, &err), 0);
    assert_int_equal(kb_state_write(sd, "m", "two\n", 4, &err), 0);
    snprintf(path, sizeof path, "%s/m", sd);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "two\n");
    unsetenv("KEYBOUND_STATE_DIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_modes),
        cmocka_unit_test(open_checks),
        cmocka_unit_test(state_dir_choice),
        cmocka_unit_test(state_write),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
