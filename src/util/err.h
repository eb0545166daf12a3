/* SPDX-License-Identifier: Apache-2.0 */
/* Errors as one line of text.
 *
 * Every library call that can fail takes a kb_err and fills it with a single line that
 * names the object or file and says what to do; the CLI prints that line as it is. The
 * message never contains a PIN: callers format only names, paths and return codes. */
#ifndef KB_ERR_H
#define KB_ERR_H

#include <stddef.h>

typedef struct kb_err {
    char msg[768];
} kb_err;

#if defined(__GNUC__)
#define KB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KB_PRINTF(f, a)
#endif

/* Sets the message (replacing any earlier one) and returns -1 so callers can write
 * `return kb_err_set(err, ...)`. A NULL err is allowed. */
int kb_err_set(kb_err *err, const char *fmt, ...) KB_PRINTF(2, 3);

/* Copies at most n bytes of a blank-padded PKCS#11 text field into out (size n+1),
 * dropping the padding: the text ends at the first NUL, then trailing blanks go. The raw
 * field stays what URIs are made of (p11-kit matches URI values byte for byte). */
void kb_trim_field(char *out, const unsigned char *field, size_t n);

#endif
