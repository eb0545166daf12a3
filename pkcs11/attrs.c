/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "attrs.h"

#include <stdio.h>
#include <string.h>

enum kb_tri kb_attr_tri(const void *value, CK_ULONG len)
{
    if (value == NULL || len != sizeof(CK_BBOOL))
        return KB_TRI_UNKNOWN;
    return *(const CK_BBOOL *)value ? KB_TRI_TRUE : KB_TRI_FALSE;
}

/* Reads a DER tag and definite length at *p; returns the content length or -1. */
static long der_header(const unsigned char **p, const unsigned char *end, unsigned char tag)
{
    if (end - *p < 2 || (*p)[0] != tag)
        return -1;
    const unsigned char *q = *p + 1;
    size_t len;
    if (*q < 0x80) {
        len = *q++;
    } else {
        unsigned n = *q++ & 0x7f;
        if (n == 0 || n > 3 || (size_t)(end - q) < n)
            return -1;
        len = 0;
        while (n--)
            len = (len << 8) | *q++;
        if (len < 0x80)
            return -1; /* not minimal: not DER */
    }
    if ((size_t)(end - q) < len)
        return -1;
    *p = q;
    return (long)len;
}

static const struct {
    const unsigned char *oid;
    size_t len;
    const char *name;
    unsigned bits;
} curves[] = {
    {(const unsigned char *)"\x2a\x86\x48\xce\x3d\x03\x01\x07", 8, "P-256", 256},
    {(const unsigned char *)"\x2b\x81\x04\x00\x22", 5, "P-384", 384},
    {(const unsigned char *)"\x2b\x81\x04\x00\x23", 5, "P-521", 521},
    {(const unsigned char *)"\x2b\x65\x70", 3, "Ed25519", 256},
    {(const unsigned char *)"\x2b\x65\x71", 3, "Ed448", 456},
};

static const struct {
    const char *text;
    const char *name;
    unsigned bits;
} curve_strings[] = {
    {"edwards25519", "Ed25519", 256},
    {"edwards448", "Ed448", 456},
};

bool kb_ec_params_curve(const unsigned char *der, size_t len, char *name, size_t name_len,
                        unsigned *bits)
{
    const unsigned char *p = der, *end = der + len;
    long n;
    if (len > 0 && der[0] == 0x06) {
        if ((n = der_header(&p, end, 0x06)) < 0 || p + n != end)
            return false;
        for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
            if ((size_t)n == curves[i].len && memcmp(p, curves[i].oid, (size_t)n) == 0) {
                snprintf(name, name_len, "%s", curves[i].name);
                *bits = curves[i].bits;
                return true;
            }
        }
        return false;
    }
    if (len > 0 && der[0] == 0x13) {
        if ((n = der_header(&p, end, 0x13)) < 0 || p + n != end)
            return false;
        for (size_t i = 0; i < sizeof curve_strings / sizeof curve_strings[0]; i++) {
            if ((size_t)n == strlen(curve_strings[i].text) &&
                memcmp(p, curve_strings[i].text, (size_t)n) == 0) {
                snprintf(name, name_len, "%s", curve_strings[i].name);
                *bits = curve_strings[i].bits;
                return true;
            }
        }
    }
    return false;
}

bool kb_ec_point_raw(const unsigned char *in, size_t len, const unsigned char **out,
                     size_t *out_len)
{
    const unsigned char *p = in;
    long n;
    /* PKCS#11 says DER OCTET STRING, but some tokens hand out the bare point. A bare
     * uncompressed point starts with 0x04 too, so only a wrapper whose length fills the
     * attribute exactly counts as one. */
    if (len >= 2 && in[0] == 0x04 && (n = der_header(&p, in + len, 0x04)) >= 0 &&
        p + n == in + len) {
        *out = p;
        *out_len = (size_t)n;
        return true;
    }
    if (len == 0)
        return false;
    *out = in;
    *out_len = len;
    return true;
}

unsigned kb_bignum_bits(const unsigned char *n, size_t len)
{
    while (len > 0 && *n == 0) {
        n++;
        len--;
    }
    if (len == 0)
        return 0;
    unsigned bits = (unsigned)(len - 1) * 8;
    for (unsigned char top = *n; top; top >>= 1)
        bits++;
    return bits;
}

void kb_key_type_name(const struct kb_key_facts *k, char *out, size_t out_len)
{
    switch (k->type) {
    case KB_KEY_RSA:
        snprintf(out, out_len, "rsa-%u", k->bits);
        return;
    case KB_KEY_EC:
        if (strcmp(k->curve, "P-256") == 0 || strcmp(k->curve, "P-384") == 0 ||
            strcmp(k->curve, "P-521") == 0) {
            snprintf(out, out_len, "ec-p%s", k->curve + 2);
            return;
        }
        snprintf(out, out_len, "ec-unknown");
        return;
    case KB_KEY_EDDSA:
        snprintf(out, out_len, "%s", strcmp(k->curve, "Ed448") == 0 ? "ed448" : "ed25519");
        return;
    default:
        snprintf(out, out_len, "unknown");
    }
}

void kb_hex(const unsigned char *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

long kb_unhex(const char *s, size_t n, unsigned char *out, size_t max)
{
    if (n % 2 != 0 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}
