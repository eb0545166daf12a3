/* SPDX-License-Identifier: Apache-2.0 */
/* Opening a file keybound trusts: the policy and the files it names, keybound.conf, the
 * PIN and secret files.
 *
 * Whoever can write such a file decides what keybound admits, where it connects or which
 * PIN it spends a token's try on; whoever can read a PIN file has the PIN. So the file is
 * opened without blocking (a FIFO in its place must not hang keybound), must be a regular
 * file (systemd credentials are), must not be writable by its group or by others, and its
 * directory (that of a symlink's target) must not be either, unless that directory is
 * sticky and owned by root (/tmp); the file and that directory must belong to root or to
 * the user keybound runs as (whoever owns them can change them).
 * A secret must not be readable by group or others unless the caller allows it (then a
 * warning). Every refusal is one line: "WHAT PATH is ...; refusing it: what to do". */
#ifndef KB_TRUSTFILE_H
#define KB_TRUSTFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

enum {
    KB_TF_SECRET = 1 << 0,         /* refuse a file group or others can read */
    KB_TF_ALLOW_READABLE = 1 << 1, /* with KB_TF_SECRET: only warn (--insecure-pin-file) */
    KB_TF_MISSING_OK = 1 << 2,     /* kb_trustfile_check: a file that cannot be opened passes
                                      (its loader reports that, as before) */
};

/* Opens path read-only (O_CLOEXEC, blocking mode restored) after the checks above, or
 * returns -1 with err set. what names the file in messages: "policy", "PIN file". */
int kb_trustfile_open(const char *path, const char *what, unsigned flags, kb_err *err);

/* The same as a stdio stream. */
FILE *kb_trustfile_fopen(const char *path, const char *what, unsigned flags, kb_err *err);

/* Checks a file that another library will open by name (GnuTLS's trust and CRL loaders):
 * 0 when it passes, -1 with err set. */
int kb_trustfile_check(const char *path, const char *what, unsigned flags, kb_err *err);

/* The pure part: whether a file or its directory with these modes and owner is unsafe.
 * Returns NULL when safe, or who can write it: "its group" or "every user". */
const char *kb_trustfile_writer(unsigned mode, unsigned uid, int is_dir);

/* Whether a file or directory owned by uid may be trusted by a process running as euid. */
bool kb_trustfile_owner_ok(unsigned uid, unsigned euid);

#endif
