/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "profile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/attrs.h"

/* One fixed buffer: growing it would leave copies of the PIN in freed memory. */
#define TEXT_MAX (64 * 1024)

struct text {
    char *buf;
    size_t len;
    bool full;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->full || n >= TEXT_MAX - t->len) {
        t->full = true;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void puts_(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void putf(struct text *t, const char *fmt, ...) KB_PRINTF(2, 3);
static void putf(struct text *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        t->full = true;
    else
        put(t, line, (size_t)n);
}

const char *kb_net_format_name(enum kb_net_format f)
{
    return f == KB_NET_WPA ? "wpa" : "nm";
}

int kb_net_format_parse(const char *word)
{
    if (strcmp(word, "nm") == 0)
        return KB_NET_NM;
    if (strcmp(word, "wpa") == 0)
        return KB_NET_WPA;
    return -1;
}

void kb_net_profile_file(const char *name, enum kb_net_format f, char *out, size_t len)
{
    snprintf(out, len, "keybound-%s.%s", name, f == KB_NET_WPA ? "conf" : "nmconnection");
}

static bool plain(const char *v)
{
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '"')
            return false;
    return true;
}

/* wpa_supplicant's string: "v" where that reads back as v (its reader takes what stands
 * between the first and the last quote, and cuts a line at '#' outside quotes), else the
 * hex form, which every string setting takes. */
static void wpa_value(struct text *t, const char *key, const char *v)
{
    putf(t, "\t%s=", key);
    if (plain(v)) {
        put(t, "\"", 1);
        puts_(t, v);
        put(t, "\"", 1);
    } else {
        static const char hex[] = "0123456789abcdef";
        for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
            char two[2] = {hex[*c >> 4], hex[*c & 15]};
            put(t, two, 2);
        }
    }
    put(t, "\n", 1);
}

/* A GKeyFile string: its escapes, and "\;" where NetworkManager reads a list. */
static void kf_escaped(struct text *t, const char *v, bool semicolons)
{
    for (const char *c = v; *c; c++) {
        if (c == v && *c == ' ')
            puts_(t, "\\s");
        else if (*c == '\\')
            puts_(t, "\\\\");
        else if (*c == '\n')
            puts_(t, "\\n");
        else if (*c == '\t')
            puts_(t, "\\t");
        else if (*c == '\r')
            puts_(t, "\\r");
        else if (*c == ';' && semicolons)
            puts_(t, "\\\\;");
        else
            put(t, c, 1);
    }
}

static void kf_value(struct text *t, const char *key, const char *v)
{
    putf(t, "%s=", key);
    kf_escaped(t, v, false);
    put(t, "\n", 1);
}

/* NetworkManager writes an SSID of printable characters as text, with ';' as "\\;" (its
 * own escape, then GKeyFile's), and any other SSID as its bytes: "1;2;3;". */
static void kf_ssid(struct text *t, const char *ssid)
{
    bool text = true;
    for (const unsigned char *c = (const unsigned char *)ssid; *c; c++)
        text = text && *c >= 0x20 && *c <= 0x7e;
    puts_(t, "ssid=");
    if (text) {
        kf_escaped(t, ssid, true);
    } else {
        for (const unsigned char *c = (const unsigned char *)ssid; *c; c++)
            putf(t, "%u;", *c);
    }
    put(t, "\n", 1);
}

static const char header[] =
    "# Written by keybound network profile; keybound network check and renew keep it current.\n";

static void render_wpa(struct text *t, const struct kb_net_profile *p)
{
    puts_(t, header);
    /* Global settings take the rest of the line as it is. */
    putf(t, "pkcs11_engine_path=%s\n", p->engine_path);
    putf(t, "pkcs11_module_path=%s\n", p->module_path);
    puts_(t, "network={\n");
    if (p->wired) {
        puts_(t, "\tkey_mgmt=IEEE8021X\n\teapol_flags=0\n");
    } else {
        wpa_value(t, "ssid", p->ssid);
        puts_(t, "\tkey_mgmt=WPA-EAP\n");
    }
    puts_(t, "\teap=TLS\n");
    wpa_value(t, "identity", p->identity);
    wpa_value(t, "ca_cert", p->ca_file);
    wpa_value(t, "domain_match", p->server_name);
    wpa_value(t, "client_cert", p->cert_file);
    wpa_value(t, "private_key", p->key_uri);
    if (p->pin != NULL)
        wpa_value(t, "pin", p->pin);
    /* wpa_supplicant 2.10 leaves TLS 1.3 off for EAP-TLS unless asked; the keyfile's
     * phase1-auth-flags below ask the same. */
    putf(t, "\tphase1=\"tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1%s tls_disable_tlsv1_3=0\"\n",
         p->min_tls == 13 ? " tls_disable_tlsv1_2=1" : "");
    puts_(t, "}\n");
}

/* NM_SETTING_802_1X_AUTH_FLAGS: TLS_1_0_DISABLE 1, TLS_1_1_DISABLE 2, TLS_1_2_DISABLE 4,
 * TLS_1_3_ENABLE 256. */
static unsigned nm_auth_flags(int min_tls)
{
    return 1 | 2 | 256 | (min_tls == 13 ? 4 : 0);
}

static void render_nm(struct text *t, const struct kb_net_profile *p)
{
    puts_(t, header);
    puts_(t, "[connection]\n");
    putf(t, "id=keybound-%s\n", p->name);
    putf(t, "uuid=%s\n", p->uuid);
    putf(t, "type=%s\n", p->wired ? "ethernet" : "wifi");
    puts_(t, "autoconnect=true\n\n");
    if (p->wired) {
        puts_(t, "[ethernet]\n\n");
    } else {
        puts_(t, "[wifi]\nmode=infrastructure\n");
        kf_ssid(t, p->ssid);
        puts_(t, "\n[wifi-security]\nkey-mgmt=wpa-eap\n\n");
    }
    puts_(t, "[802-1x]\n");
    kf_value(t, "ca-cert", p->ca_file);
    kf_value(t, "client-cert", p->cert_file);
    kf_value(t, "domain-match", p->server_name);
    puts_(t, "eap=tls;\n");
    kf_value(t, "identity", p->identity);
    putf(t, "phase1-auth-flags=%u\n", nm_auth_flags(p->min_tls));
    if (p->pin != NULL)
        kf_value(t, "pin", p->pin);
    /* 0: the PIN is the system's, kept in this root-only file; NetworkManager hands it to
     * wpa_supplicant as pin=, never as ?pin-value= in the URI (which its log shows). */
    puts_(t, "pin-flags=0\n");
    kf_value(t, "private-key", p->key_uri);
    puts_(t, "private-key-password-flags=4\n\n");
    puts_(t, "[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n");
}

static bool one_line(const char *v)
{
    return v != NULL && strpbrk(v, "\n\r") == NULL;
}

char *kb_net_render(const struct kb_net_profile *p, kb_err *err)
{
    if (!p->wired && (p->ssid == NULL || p->ssid[0] == '\0' || strlen(p->ssid) > 32)) {
        kb_err_set(err, "the SSID must be 1 to 32 bytes");
        return NULL;
    }
    if (p->format == KB_NET_WPA && (!one_line(p->engine_path) || !one_line(p->module_path))) {
        kb_err_set(err, "the PKCS#11 engine or module path holds a line break");
        return NULL;
    }
    struct text t = {.buf = malloc(TEXT_MAX)};
    if (t.buf == NULL) {
        kb_err_set(err, "out of memory");
        return NULL;
    }
    t.buf[0] = '\0';
    if (p->format == KB_NET_WPA)
        render_wpa(&t, p);
    else
        render_nm(&t, p);
    if (t.full) {
        kb_net_text_free(t.buf);
        kb_err_set(err, "network profile %s is too long", p->name);
        return NULL;
    }
    return t.buf;
}

void kb_net_text_free(char *text)
{
    if (text == NULL)
        return;
    kb_memzero(text, strlen(text));
    free(text);
}

/* The lines of text, one at a time: [*start, *end) without the newline. */
static bool next_line(const char *text, size_t len, size_t *pos, size_t *start, size_t *end)
{
    if (*pos >= len)
        return false;
    *start = *pos;
    const char *nl = memchr(text + *pos, '\n', len - *pos);
    *end = nl ? (size_t)(nl - text) : len;
    *pos = *end + (nl ? 1 : 0);
    return true;
}

/* Is the line "KEY=..." (blanks allowed around), in the section that counts? *value: after
 * '=' and blanks. */
static bool is_pin_line(const char *line, size_t n, enum kb_net_format f, bool in_section,
                        size_t *value)
{
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (f == KB_NET_NM && (!in_section || i > 0))
        return false;
    if (n - i < 3 || memcmp(line + i, "pin", 3) != 0)
        return false;
    i += 3;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == n || line[i] != '=')
        return false;
    i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    *value = i;
    return true;
}

static bool section_line(const char *line, size_t n, bool *in_802_1x)
{
    if (n == 0 || line[0] != '[')
        return false;
    *in_802_1x = n == 8 && memcmp(line, "[802-1x]", 8) == 0;
    return true;
}

static bool add_byte(kb_secret *pin, int c)
{
    if (c == 0 || pin->len >= KB_SECRET_MAX)
        return false;
    pin->buf[pin->len++] = (char)c;
    pin->buf[pin->len] = '\0';
    return true;
}

static bool decode_wpa(const char *v, size_t n, kb_secret *pin)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    if (n >= 2 && v[0] == '"') {
        const char *last = v + n - 1;
        if (*last != '"')
            return false;
        for (const char *c = v + 1; c < last; c++)
            if (!add_byte(pin, (unsigned char)*c))
                return false;
        return pin->len > 0;
    }
    unsigned char *at = (unsigned char *)pin->buf + pin->len;
    long m = n == 0 ? -1 : kb_unhex(v, n, at, KB_SECRET_MAX - pin->len);
    /* A NUL cannot be part of a PIN (add_byte refuses it too). */
    if (m <= 0 || memchr(at, 0, (size_t)m) != NULL)
        return false;
    pin->len += (size_t)m;
    pin->buf[pin->len] = '\0';
    return true;
}

static bool decode_kf(const char *v, size_t n, kb_secret *pin)
{
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)v[i];
        if (c == '\\') {
            if (++i == n)
                return false;
            switch (v[i]) {
            case 's':
                c = ' ';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case '\\':
                c = '\\';
                break;
            default:
                return false;
            }
        }
        if (!add_byte(pin, c))
            return false;
    }
    return pin->len > 0;
}

int kb_net_pin_read(const char *text, size_t len, enum kb_net_format f, const char *name,
                    kb_secret *pin, kb_err *err)
{
    size_t pos = 0, start, end, value;
    bool in_section = false, found = false;
    kb_secret_wipe(pin);
    while (next_line(text, len, &pos, &start, &end)) {
        const char *line = text + start;
        size_t n = end - start;
        if (f == KB_NET_NM && section_line(line, n, &in_section))
            continue;
        if (!is_pin_line(line, n, f, in_section, &value))
            continue;
        kb_secret_wipe(pin);
        if (found || !(f == KB_NET_WPA ? decode_wpa(line + value, n - value, pin)
                                       : decode_kf(line + value, n - value, pin))) {
            kb_secret_wipe(pin);
            return kb_err_set(err,
                              "network profile %s: %s pin line is not one keybound writes; "
                              "write the profile again with 'keybound network profile'",
                              name, found ? "a second" : "its");
        }
        found = true;
    }
    return found ? 1 : 0;
}

char *kb_net_pin_remove(const char *text, size_t len, enum kb_net_format f)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t pos = 0, start, end, value, used = 0;
    bool in_section = false;
    while (next_line(text, len, &pos, &start, &end)) {
        const char *line = text + start;
        size_t n = end - start;
        if (!(f == KB_NET_NM && section_line(line, n, &in_section)) &&
            is_pin_line(line, n, f, in_section, &value))
            continue;
        memcpy(out + used, line, n);
        used += n;
        if (end < len)
            out[used++] = '\n';
    }
    out[used] = '\0';
    return out;
}
