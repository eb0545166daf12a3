/* SPDX-License-Identifier: Apache-2.0 */
/* Did-you-mean: close names are offered, far ones never. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "src/util/suggest.h"

static const char *const commands[] = {"tokens",  "keys",   "keygen",      "check",
                                       "connect", "csr",    "import-cert", "enroll",
                                       "renew",   "tunnel", NULL};

static void typos_are_caught(void **state)
{
    (void)state;
    assert_string_equal(kb_suggest("tunel", commands, 0), "tunnel");
    assert_string_equal(kb_suggest("enrol", commands, 0), "enroll");
    assert_string_equal(kb_suggest("chekc", commands, 0), "check"); /* a swapped pair */
    assert_string_equal(kb_suggest("kesy", commands, 0), "keys");
    assert_string_equal(kb_suggest("import-certs", commands, 0), "import-cert");
}

static void far_names_get_nothing(void **state)
{
    (void)state;
    assert_null(kb_suggest("status", commands, 0));
    assert_null(kb_suggest("x", commands, 0));
    assert_null(kb_suggest("", commands, 0));
    /* Under five characters, one edit only: two would make most short words look alike. */
    assert_string_equal(kb_suggest("csx", commands, 0), "csr");
    assert_null(kb_suggest("cxx", commands, 0));
}

static void counted_and_long(void **state)
{
    (void)state;
    const char *names[] = {"pin-file", "pin-env"};
    assert_string_equal(kb_suggest("pin-fiel", names, 2), "pin-file");
    char longer[200];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_null(kb_suggest(longer, names, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(typos_are_caught),
        cmocka_unit_test(far_names_get_nothing),
        cmocka_unit_test(counted_and_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
