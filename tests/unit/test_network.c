/* SPDX-License-Identifier: Apache-2.0 */
/* 802.1X profiles (src/network/profile.h, registry.h): both formats as wpa_supplicant and
 * NetworkManager read them, odd PINs and SSIDs quoted so that they stay one value, the pin
 * line read back and removed, the registry written and read back, and NAME's rules. */
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

#include "policy/policy.h"
#include "src/network/profile.h"
#include "src/network/registry.h"

static struct kb_net_profile base(enum kb_net_format f, bool wired)
{
    return (struct kb_net_profile){
        .name = wired ? "wired" : "corp",
        .format = f,
        .wired = wired,
        .ssid = wired ? NULL : "Corp WiFi",
        .identity = "laptop-1",
        .server_name = "radius.example.com",
        .ca_file = "/etc/wpa_supplicant/keybound-corp-ca.pem",
        .cert_file = "/etc/wpa_supplicant/keybound-corp-cert.pem",
        .key_uri = "pkcs11:token=dev;id=%01%02;type=private",
        .engine_path = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so",
        .module_path = "/usr/lib/softhsm/libsofthsm2.so",
        .uuid = "e9e7049e-15c2-82e7-b217-301e53bed6f3",
        .min_tls = 12,
        .pin = "1234",
    };
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static void wpa_wired(void **state)
{
    (void)state;
    struct kb_net_profile p = base(KB_NET_WPA, true);
    kb_err err;
    char *t = kb_net_render(&p, &err);
    assert_non_null(t);
    assert_true(has_line(t, "pkcs11_engine_path=/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"));
    assert_true(has_line(t, "pkcs11_module_path=/usr/lib/softhsm/libsofthsm2.so"));
    assert_true(has_line(t, "network={"));
    assert_true(has_line(t, "\tkey_mgmt=IEEE8021X"));
    assert_true(has_line(t, "\teapol_flags=0"));
    assert_true(has_line(t, "\teap=TLS"));
    assert_true(has_line(t, "\tidentity=\"laptop-1\""));
    assert_true(has_line(t, "\tca_cert=\"/etc/wpa_supplicant/keybound-corp-ca.pem\""));
    assert_true(has_line(t, "\tdomain_match=\"radius.example.com\""));
    assert_true(has_line(t, "\tprivate_key=\"pkcs11:token=dev;id=%01%02;type=private\""));
    assert_true(has_line(t, "\tpin=\"1234\""));
    assert_true(has_line(
        t, "\tphase1=\"tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_3=0\""));
    assert_null(strstr(t, "ssid"));
    assert_null(strstr(t, "pin-value"));
    assert_true(has_line(t, "}"));
    kb_net_text_free(t);
}

static void wpa_wifi_tls13(void **state)
{
    (void)state;
    struct kb_net_profile p = base(KB_NET_WPA, false);
    p.min_tls = 13;
    p.pin = NULL;
    kb_err err;
    char *t = kb_net_render(&p, &err);
    assert_non_null(t);
    assert_true(has_line(t, "\tssid=\"Corp WiFi\""));
    assert_true(has_line(t, "\tkey_mgmt=WPA-EAP"));
    assert_null(strstr(t, "pin="));
    assert_non_null(strstr(t, "tls_disable_tlsv1_2=1"));
    kb_net_text_free(t);
}

/* What cannot stand between quotes goes as hex: a quote, a newline, a non-ASCII byte. */
static void wpa_quoting(void **state)
{
    (void)state;
    struct kb_net_profile p = base(KB_NET_WPA, false);
    p.ssid = "a\"b";
    p.pin = "12\n\"34";
    kb_err err;
    char *t = kb_net_render(&p, &err);
    assert_non_null(t);
    assert_true(has_line(t, "\tssid=612262"));
    assert_true(has_line(t, "\tpin=31320a223334"));
    kb_secret *s = kb_secret_new();
    assert_int_equal(kb_net_pin_read(t, strlen(t), KB_NET_WPA, "x", s, &err), 1);
    assert_string_equal(s->buf, "12\n\"34");
    kb_net_text_free(t);
    /* '#' and blanks are fine between quotes: the reader cuts comments outside them only. */
    p.pin = " #1 ";
    t = kb_net_render(&p, &err);
    assert_true(has_line(t, "\tpin=\" #1 \""));
    assert_int_equal(kb_net_pin_read(t, strlen(t), KB_NET_WPA, "x", s, &err), 1);
    assert_string_equal(s->buf, " #1 ");
    kb_net_text_free(t);
    kb_secret_free(s);
    /* A value that would end the global line is refused, not written. */
    p.module_path = "/x\nnetwork={";
    assert_null(kb_net_render(&p, &err));
    p = base(KB_NET_WPA, false);
    p.ssid = "";
    assert_null(kb_net_render(&p, &err));
    p.ssid = "123456789012345678901234567890123";
    assert_null(kb_net_render(&p, &err));
}

static void nm_keyfile(void **state)
{
    (void)state;
    struct kb_net_profile p = base(KB_NET_NM, false);
    kb_err err;
    char *t = kb_net_render(&p, &err);
    assert_non_null(t);
    assert_true(has_line(t, "[connection]"));
    assert_true(has_line(t, "id=keybound-corp"));
    assert_true(has_line(t, "uuid=e9e7049e-15c2-82e7-b217-301e53bed6f3"));
    assert_true(has_line(t, "type=wifi"));
    assert_true(has_line(t, "ssid=Corp WiFi"));
    assert_true(has_line(t, "key-mgmt=wpa-eap"));
    assert_true(has_line(t, "eap=tls;"));
    assert_true(has_line(t, "identity=laptop-1"));
    assert_true(has_line(t, "domain-match=radius.example.com"));
    assert_true(has_line(t, "private-key=pkcs11:token=dev;id=%01%02;type=private"));
    assert_true(has_line(t, "private-key-password-flags=4"));
    assert_true(has_line(t, "pin=1234"));
    assert_true(has_line(t, "pin-flags=0"));
    assert_true(has_line(t, "phase1-auth-flags=259"));
    assert_null(strstr(t, "pin-value"));
    kb_net_text_free(t);
    p = base(KB_NET_NM, true);
    p.min_tls = 13;
    t = kb_net_render(&p, &err);
    assert_true(has_line(t, "type=ethernet"));
    assert_true(has_line(t, "[ethernet]"));
    assert_null(strstr(t, "[wifi"));
    assert_true(has_line(t, "phase1-auth-flags=263"));
    kb_net_text_free(t);
}

/* As NetworkManager itself writes them (nmcli --offline): GKeyFile's escapes, ';' in an
 * SSID as "\\;", anything but printable ASCII in an SSID as bytes. */
static void nm_quoting(void **state)
{
    (void)state;
    struct kb_net_profile p = base(KB_NET_NM, false);
    p.ssid = "Corp;Wi Fi";
    p.pin = " a\\b;c#d";
    kb_err err;
    char *t = kb_net_render(&p, &err);
    assert_true(has_line(t, "ssid=Corp\\\\;Wi Fi"));
    assert_true(has_line(t, "pin=\\sa\\\\b;c#d"));
    kb_secret *s = kb_secret_new();
    assert_int_equal(kb_net_pin_read(t, strlen(t), KB_NET_NM, "x", s, &err), 1);
    assert_string_equal(s->buf, " a\\b;c#d");
    kb_net_text_free(t);
    p.ssid = "caf\xc3\xa9\n";
    p.pin = "1\n2\t3\r";
    t = kb_net_render(&p, &err);
    assert_true(has_line(t, "ssid=99;97;102;195;169;10;"));
    assert_true(has_line(t, "pin=1\\n2\\t3\\r"));
    assert_int_equal(kb_net_pin_read(t, strlen(t), KB_NET_NM, "x", s, &err), 1);
    assert_string_equal(s->buf, "1\n2\t3\r");
    kb_net_text_free(t);
    kb_secret_free(s);
}

static void pin_remove(void **state)
{
    (void)state;
    kb_err err;
    kb_secret *s = kb_secret_new();
    for (int f = KB_NET_NM; f <= KB_NET_WPA; f++) {
        struct kb_net_profile p = base((enum kb_net_format)f, false);
        char *t = kb_net_render(&p, &err);
        char *rest = kb_net_pin_remove(t, strlen(t), (enum kb_net_format)f);
        assert_non_null(rest);
        assert_int_equal(kb_net_pin_read(rest, strlen(rest), (enum kb_net_format)f, "x", s, &err),
                         0);
        /* Only the pin line goes. */
        assert_int_equal(strlen(t) - strlen(rest),
                         strlen(f == KB_NET_WPA ? "\tpin=\"1234\"\n" : "pin=1234\n"));
        if (f == KB_NET_NM)
            assert_true(has_line(rest, "pin-flags=0"));
        kb_net_text_free(rest);
        kb_net_text_free(t);
    }
    /* NetworkManager's keys elsewhere and blanks around '=' (a hand edit). */
    const char nm[] = "[wifi]\npin=not-this\n[802-1x]\npin = 42\n";
    assert_int_equal(kb_net_pin_read(nm, strlen(nm), KB_NET_NM, "x", s, &err), 1);
    assert_string_equal(s->buf, "42");
    char *rest = kb_net_pin_remove(nm, strlen(nm), KB_NET_NM);
    assert_string_equal(rest, "[wifi]\npin=not-this\n[802-1x]\n");
    kb_net_text_free(rest);
    /* Two pin lines, a bad escape, an open quote: not what keybound writes. */
    const char *bad[] = {"network={\n\tpin=\"1\"\n\tpin=\"2\"\n}\n", "network={\n\tpin=\"12\n}\n",
                         "network={\n\tpin=P\"12\"\n}\n", "network={\n\tpin=1\n}\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kb_net_pin_read(bad[i], strlen(bad[i]), KB_NET_WPA, "f.conf", s, &err),
                         -1);
        assert_non_null(strstr(err.msg, "f.conf"));
        assert_int_equal(s->len, 0);
    }
    const char kf[] = "[802-1x]\npin=a\\qb\n";
    assert_int_equal(kb_net_pin_read(kf, strlen(kf), KB_NET_NM, "x", s, &err), -1);
    /* pin2 and pinned are other keys. */
    const char other[] = "network={\n\tpin2=\"1\"\n\tpinned=\"2\"\n}\n";
    assert_int_equal(kb_net_pin_read(other, strlen(other), KB_NET_WPA, "x", s, &err), 0);
    kb_secret_free(s);
}

static struct kb_net_entry entry(void)
{
    struct kb_net_entry e = {
        .format = KB_NET_WPA, .wired = false, .min_tls = 13, .pin_stored = true};
    strcpy(e.name, "corp");
    strcpy(e.profile, "/etc/wpa_supplicant/keybound-corp.conf");
    strcpy(e.certificate, "/etc/wpa_supplicant/keybound-corp-cert.pem");
    strcpy(e.ca, "/etc/wpa_supplicant/keybound-corp-ca.pem");
    strcpy(e.key_uri, "pkcs11:token=dev;id=%01;type=private");
    strcpy(e.token_serial, "ac2b6f970f137505");
    memset(e.spki_sha256, 'a', 64);
    strcpy(e.server_name, "radius.example.com");
    strcpy(e.ssid, "Corp \"WiFi\"");
    strcpy(e.identity, "laptop-1");
    return e;
}

static void registry(void **state)
{
    (void)state;
    struct kb_net_entry a = entry(), b;
    kb_err err;
    char *text = kb_net_entry_format(&a);
    assert_non_null(text);
    assert_null(strstr(text, "1234"));
    assert_int_equal(kb_net_entry_parse(text, strlen(text), "r.json", &b, &err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    free(text);
    a.wired = true;
    memset(a.ssid, 0, sizeof a.ssid);
    a.format = KB_NET_NM;
    a.min_tls = 12;
    strcpy(a.policy, "/etc/keybound/policy.conf");
    strcpy(a.dropin, "/etc/systemd/system/wpa_supplicant.service.d/keybound-corp.conf");
    text = kb_net_entry_format(&a);
    assert_non_null(strstr(text, "\"ssid\": null"));
    assert_int_equal(kb_net_entry_parse(text, strlen(text), "r.json", &b, &err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    free(text);

    /* Saved and loaded through the state directory, 0600, listed by name. */
    char dir[] = "/tmp/kb-net-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(kb_net_entry_save(dir, &a, &err), 0);
    strcpy(a.name, "b-second");
    assert_int_equal(kb_net_entry_save(dir, &a, &err), 0);
    char path[64];
    snprintf(path, sizeof path, "%s/network-corp.json", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(kb_net_entry_load(dir, "corp", &b, &err), 0);
    assert_string_equal(b.name, "corp");
    assert_int_equal(kb_net_entry_load(dir, "none", &b, &err), 1);
    struct kb_net_entry *v;
    size_t n;
    assert_int_equal(kb_net_entry_list(dir, &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, "b-second");
    assert_string_equal(v[1].name, "corp");
    free(v);
    unlink(path);
    snprintf(path, sizeof path, "%s/network-b-second.json", dir);
    unlink(path);
    rmdir(dir);
}

static void registry_bad(void **state)
{
    (void)state;
    struct kb_net_entry a = entry(), b;
    kb_err err;
    char *good = kb_net_entry_format(&a);
    struct {
        const char *from, *to;
    } edits[] = {
        {"\"schema\": 1", "\"schema\": 2"},
        {"\"format\": \"wpa\"", "\"format\": \"ini\""},
        {"\"name\": \"corp\"", "\"name\": \"../x\""},
        {"\"min_tls\": \"1.3\"", "\"min_tls\": 13"},
        {"\"wired\": false", "\"wired\": true"},
        {"\"pin_stored\": true", "\"pin_stored\": 1"},
        {"\"profile\": \"/etc", "\"profile\": \"etc"},
        {"\"key_spki_sha256\": \"a", "\"key_spki_sha256\": \"A"},
        {"\"identity\": \"laptop-1\"", "\"identity\": \"\""},
        {"\"server_name\"", "\"server\""},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char text[8192];
        const char *at = strstr(good, edits[i].from);
        assert_non_null(at);
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, edits[i].to,
                 at + strlen(edits[i].from));
        assert_int_equal(kb_net_entry_parse(text, strlen(text), "r.json", &b, &err), -1);
        assert_non_null(strstr(err.msg, "r.json"));
    }
    const char *whole[] = {"", "[]", "{} {}", "{\"schema\": 1}", "nul\0l"};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        assert_int_equal(
            kb_net_entry_parse(whole[i], i == 4 ? 6 : strlen(whole[i]), "r.json", &b, &err), -1);
    free(good);
}

static void names(void **state)
{
    (void)state;
    const char *good[] = {"wired", "Corp-WiFi", "a", "eduroam_5.GHz",
                          "0123456789012345678901234567890123456789012345678901234567890123"};
    const char *bad[] = {"",
                         ".",
                         "..",
                         "a/b",
                         "a b",
                         "Corp;WiFi",
                         "caf\xc3\xa9",
                         "x\n",
                         "01234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(kb_network_name_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(kb_network_name_valid(bad[i]));
    char file[128];
    kb_net_profile_file("corp", KB_NET_NM, file, sizeof file);
    assert_string_equal(file, "keybound-corp.nmconnection");
    kb_net_profile_file("corp", KB_NET_WPA, file, sizeof file);
    assert_string_equal(file, "keybound-corp.conf");
    kb_net_entry_file("corp", file, sizeof file);
    assert_string_equal(file, "network-corp.json");
    assert_int_equal(kb_net_format_parse("nm"), KB_NET_NM);
    assert_int_equal(kb_net_format_parse("wpa"), KB_NET_WPA);
    assert_int_equal(kb_net_format_parse("NM"), -1);
}

/* [network "NAME"] in the policy. */
static void policy_section(void **state)
{
    (void)state;
    const char text[] =
        "[admission]\nallow-unlisted-endpoints = no\n"
        "[network \"Corp-WiFi\"]\nserver-name = Radius.Example.com\nmin-tls = 1.3\n";
    FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
    kb_policy *pol;
    kb_err err;
    assert_int_equal(kb_policy_parse(f, "/etc/keybound/p.conf", &pol, &err), 0);
    fclose(f);
    const struct kb_network_rule *r = kb_policy_network(pol, "Corp-WiFi");
    assert_non_null(r);
    assert_string_equal(r->server_name, "Radius.Example.com");
    assert_int_equal(r->min_tls, 13);
    assert_null(r->ca);
    assert_null(kb_policy_network(pol, "corp-wifi"));
    kb_policy_free(pol);
    const char *bad[] = {
        "[network \"a b\"]\n", "[network corp]\n", "[network \"x\"]\n[network \"x\"]\n",
        "[network \"x\"]\npriority = NORMAL\n", "[network \"x\"]\nmin-tls = 1.1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fmemopen((void *)bad[i], strlen(bad[i]), "r");
        assert_int_equal(kb_policy_parse(f, "p.conf", &pol, &err), -1);
        assert_non_null(strstr(err.msg, "p.conf:"));
        fclose(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wpa_wired),   cmocka_unit_test(wpa_wifi_tls13),
        cmocka_unit_test(wpa_quoting), cmocka_unit_test(nm_keyfile),
        cmocka_unit_test(nm_quoting),  cmocka_unit_test(pin_remove),
        cmocka_unit_test(registry),    cmocka_unit_test(registry_bad),
        cmocka_unit_test(names),       cmocka_unit_test(policy_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
