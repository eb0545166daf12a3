/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "secret.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void kb_memzero(void *p, size_t n)
{
#ifdef HAVE_EXPLICIT_BZERO
    explicit_bzero(p, n);
#else
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
#endif
}

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

size_t kb_secret_capacity(void)
{
    return page_size();
}

kb_secret *kb_secret_new(void)
{
    kb_secret *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    size_t ps = page_size();
    void *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(s);
        return NULL;
    }
    /* mlock may fail under a small RLIMIT_MEMLOCK; the page is still kept out of core
     * files and zeroised, which is what matters most. */
    (void)mlock(p, ps);
#ifdef MADV_DONTDUMP
    (void)madvise(p, ps, MADV_DONTDUMP);
#endif
    s->buf = p;
    return s;
}

void kb_secret_wipe(kb_secret *s)
{
    kb_memzero(s->buf, page_size());
    s->len = 0;
}

void kb_secret_free(kb_secret *s)
{
    if (s == NULL)
        return;
    size_t ps = page_size();
    kb_secret_wipe(s);
    munlock(s->buf, ps);
    munmap(s->buf, ps);
    free(s);
}
