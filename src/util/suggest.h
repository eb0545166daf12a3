/* SPDX-License-Identifier: Apache-2.0 */
/* Did-you-mean: the closest of a set of names to one a user mistyped.
 *
 * Close means at most two edits (insert, delete, replace, swap two neighbours) for names
 * of five or more characters, one for shorter ones; the first closest wins. NULL when
 * none is close, so that a wild guess is never offered. */
#ifndef KB_SUGGEST_H
#define KB_SUGGEST_H

#include <stddef.h>

/* names: n strings, or NULL-terminated when n is 0. */
const char *kb_suggest(const char *typed, const char *const *names, size_t n);

#endif
