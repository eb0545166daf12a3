/* SPDX-License-Identifier: Apache-2.0 */
/* Which proxy an outbound HTTPS connection takes: the option, else $https_proxy unless
 * $no_proxy names the host (as libcurl reads them). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/util/proxy.h"

static void clear(void)
{
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
}

static void option_wins(void **state)
{
    (void)state;
    clear();
    setenv("https_proxy", "http://env:3128", 1);
    const char *from;
    assert_string_equal(kb_proxy_for("ca.example.com", "http://opt:8080", &from),
                        "http://opt:8080");
    assert_string_equal(from, "--proxy");
    assert_string_equal(kb_proxy_for("ca.example.com", NULL, &from), "http://env:3128");
    assert_string_equal(from, "https_proxy");
    clear();
    setenv("HTTPS_PROXY", "http://upper:3128", 1);
    assert_string_equal(kb_proxy_for("ca.example.com", NULL, &from), "http://upper:3128");
    assert_string_equal(from, "HTTPS_PROXY");
    clear();
    assert_null(kb_proxy_for("ca.example.com", NULL, &from));
}

static void no_proxy(void **state)
{
    (void)state;
    clear();
    setenv("https_proxy", "http://env:3128", 1);
    const char *from;
    struct {
        const char *no_proxy, *host;
        bool direct;
    } cases[] = {
        {"example.com", "ca.example.com", true},
        {".example.com", "ca.example.com", true},
        {"example.com", "example.com", true},
        {"example.com", "badexample.com", false},
        {"other.org, example.com ", "ca.example.com", true},
        {"*", "anything", true},
        {"10.0.0.1", "10.0.0.1", true},
        {"", "ca.example.com", false},
        {",,", "ca.example.com", false},
        {"EXAMPLE.COM", "ca.example.com", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("no_proxy", cases[i].no_proxy, 1);
        const char *p = kb_proxy_for(cases[i].host, NULL, &from);
        if (cases[i].direct)
            assert_null(p);
        else
            assert_non_null(p);
    }
    clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(option_wins),
        cmocka_unit_test(no_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
