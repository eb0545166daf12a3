/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding what a token says into plain values.
 *
 * Pure functions over bytes: no session, no token. They are what the unit tests pin
 * down, since tokens differ in how they encode the same thing (an EC point wrapped in an
 * OCTET STRING or not, a curve named by OID or by printable string). */
#ifndef KB_ATTRS_H
#define KB_ATTRS_H

#include <p11-kit/pkcs11.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/facts.h"

/* CK_BBOOL attribute value to a tri-state: anything but one byte is unknown. */
enum kb_tri kb_attr_tri(const void *value, CK_ULONG len);

/* DER ECParameters (a named-curve OID, or a PrintableString such as "edwards25519") to
 * a curve name and its size in bits. Returns false for anything else. */
bool kb_ec_params_curve(const unsigned char *der, size_t len, char *name, size_t name_len,
                        unsigned *bits);

/* CKA_EC_POINT to the raw point: strips a DER OCTET STRING wrapper when the content
 * fills it exactly. Returns false when the length bytes are malformed. */
bool kb_ec_point_raw(const unsigned char *in, size_t len, const unsigned char **out,
                     size_t *out_len);

/* Bits in a big-endian unsigned integer (leading zero bytes ignored). */
unsigned kb_bignum_bits(const unsigned char *n, size_t len);

/* "ec-p256", "rsa-3072", "ed25519", or "unknown". */
void kb_key_type_name(const struct kb_key_facts *k, char *out, size_t out_len);

/* Lower-case hex of data into out (2*len+1 bytes). */
void kb_hex(const unsigned char *data, size_t len, char *out);

/* The n hex digits at s (either case) into out: the byte count, or -1 when n is odd, a
 * character is not a hex digit or the bytes would not fit in max. */
long kb_unhex(const char *s, size_t n, unsigned char *out, size_t max);

#endif
