/* SPDX-License-Identifier: Apache-2.0 */
/* Which server name and CA a TLS peer gets from the policy's endpoint rule and the user,
 * and what the name looks like for an address. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "src/tls/client.h"

static kb_tls_peer peer_for(const char *host, unsigned port)
{
    kb_tls_peer p = {.port = port};
    snprintf(p.host, sizeof p.host, "%s", host);
    return p;
}

static void name_defaults_to_host(void **state)
{
    (void)state;
    kb_err err;
    kb_tls_peer p = peer_for("vpn.example.com", 443);
    assert_int_equal(kb_tls_peer_apply(&p, NULL, "ca.pem", NULL, &err), 0);
    assert_string_equal(p.server_name, "vpn.example.com");
    assert_string_equal(p.ca_file, "ca.pem");
    assert_int_equal(p.min_tls, 12);
    p = peer_for("10.0.0.1", 443);
    assert_int_equal(kb_tls_peer_apply(&p, NULL, "ca.pem", "vpn.example.com", &err), 0);
    assert_string_equal(p.server_name, "vpn.example.com");
}

static void rule_wins(void **state)
{
    (void)state;
    kb_err err;
    struct kb_endpoint_rule rule = {
        .ca = "policy-ca.pem", .server_name = "gw.example.com", .min_tls = 13};
    kb_tls_peer p = peer_for("10.0.0.1", 443);
    assert_int_equal(kb_tls_peer_apply(&p, &rule, "user-ca.pem", "other.example.com", &err), 0);
    assert_string_equal(p.ca_file, "policy-ca.pem");
    assert_string_equal(p.server_name, "gw.example.com");
    assert_int_equal(p.min_tls, 13);
}

/* A zone picks the interface; left in the name it would make the address look like a DNS
 * name, which goes out as SNI and matches no certificate. */
static void zone_is_not_part_of_the_name(void **state)
{
    (void)state;
    kb_err err;
    kb_tls_peer p = peer_for("fe80::1%eth0", 8443);
    assert_int_equal(kb_tls_peer_apply(&p, NULL, "ca.pem", NULL, &err), 0);
    assert_string_equal(p.server_name, "fe80::1");
    assert_string_equal(p.host, "fe80::1%eth0");
}

static void no_ca_names_the_section_to_write(void **state)
{
    (void)state;
    kb_err err;
    kb_tls_peer p = peer_for("::1", 8443);
    assert_int_equal(kb_tls_peer_apply(&p, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no CA to verify [::1]:8443"));
    assert_non_null(strstr(err.msg, "[endpoint \"[::1]\"]"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(name_defaults_to_host),
        cmocka_unit_test(rule_wins),
        cmocka_unit_test(zone_is_not_part_of_the_name),
        cmocka_unit_test(no_ca_names_the_section_to_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
