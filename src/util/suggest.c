/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "suggest.h"

#include <string.h>

#define LONGEST 64

/* Optimal string alignment distance (Damerau-Levenshtein without repeated edits of one
 * substring): a transposed pair is one typo, as users make them. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= LONGEST || lb >= LONGEST)
        return (size_t)-1;
    size_t d[LONGEST + 1][LONGEST + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *kb_suggest(const char *typed, const char *const *names, size_t n)
{
    size_t limit = strlen(typed) >= 5 ? 2 : 1, best = limit + 1;
    const char *found = NULL;
    for (size_t i = 0; n ? i < n : names[i] != NULL; i++) {
        size_t dist = distance(typed, names[i]);
        if (dist < best) {
            best = dist;
            found = names[i];
        }
    }
    return found;
}
