/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kb_err_set(kb_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* The message is printed as one line: a newline from a token label or a file name
     * must not start a second one. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

void kb_trim_field(char *out, const unsigned char *field, size_t n)
{
    /* PKCS#11 pads with blanks, but tpm2-pkcs11 copies the TPM's vendor strings into its
     * model NULs and all, some with bytes after a NUL. A NUL is never text: the field
     * ends at the first one, so that display, JSON and the policy all see one string. */
    const unsigned char *nul = memchr(field, '\0', n);
    if (nul != NULL)
        n = (size_t)(nul - field);
    memcpy(out, field, n);
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}
