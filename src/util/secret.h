/* SPDX-License-Identifier: Apache-2.0 */
/* Memory for secrets (PINs).
 *
 * A kb_secret lives in its own page, locked in RAM (never swapped) and excluded from
 * core dumps; kb_secret_free zeroises it before the page is returned. The length is
 * bounded: a PIN longer than KB_SECRET_MAX is refused by the readers. */
#ifndef KB_SECRET_H
#define KB_SECRET_H

#include <stddef.h>

#define KB_SECRET_MAX 256

typedef struct kb_secret {
    char *buf; /* KB_SECRET_MAX + 1 bytes, NUL-terminated */
    size_t len;
} kb_secret;

/* Returns NULL when the page cannot be had. */
kb_secret *kb_secret_new(void);
/* The usable size of a kb_secret's buffer (a page, at least KB_SECRET_MAX + 1), for secrets
 * made from secrets such as an HTTP Authorization line. */
size_t kb_secret_capacity(void);
/* Zeroises the whole buffer and sets len to 0; kb_secret_free does this first. */
void kb_secret_wipe(kb_secret *s);
void kb_secret_free(kb_secret *s);
void kb_memzero(void *p, size_t n);

#endif
