/* SPDX-License-Identifier: Apache-2.0 */
/* The settings of enroll and renew: their command lines, and renew's [renew] file.
 *
 * kb_enroll_options is the one list: renew's long options and the keys of its file are the
 * same entries, parsed and checked by the same code whichever way a value came (as
 * keybound.conf and `keybound tunnel` share src/tunnel/settings.h); enroll takes the entries
 * marked so. A value is checked where it is given (a URL, a URI, a fingerprint, a number),
 * so that a mistake in the file is refused with its line before the token or the network
 * is touched. The file is read first and the command line applied over it. No key holds a
 * PIN: the file names where the PIN comes from (pin-file, pin-env), and options that weaken
 * a check (--force, --insecure-pin-file) are the command line's only. */
#ifndef KB_ENROLL_SETTINGS_H
#define KB_ENROLL_SETTINGS_H

#include <stdbool.h>
#include <stdio.h>

#include "pkcs11/pin.h"
#include "src/enroll/flow.h"
#include "src/util/err.h"

#define KB_ENROLL_N_OPTIONS 16

struct kb_enroll_settings {
    struct kb_enroll_spec spec; /* the EST server and renew's own settings */
    const char *policy;         /* the policy file; NULL: the default */
    const char *module, *modules;
    kb_pin_opts pin; /* file and env only */
    bool json;
    /* Kept by kb_enroll_set. */
    unsigned long long given;        /* the options set from the source being read */
    char *kept[KB_ENROLL_N_OPTIONS]; /* each option's value, copied */
};

struct kb_enroll_option {
    const char *name; /* --NAME; the key in a [renew] file */
    const char *arg;  /* the value in help; NULL: yes or no, a bare --NAME on the command line */
    bool enroll;      /* enroll takes it too (renew takes them all) */
    int excludes;     /* the index of the option it does not go with, or -1 */
    /* what: the option as the user wrote it ("max-wait", "--max-wait"), for the message. */
    int (*parse)(struct kb_enroll_settings *s, const char *what, const char *value, kb_err *err);
};

extern const struct kb_enroll_option kb_enroll_options[KB_ENROLL_N_OPTIONS];

/* Every setting at its default (600 s of waiting, renew whatever is left). */
void kb_enroll_settings_init(struct kb_enroll_settings *s);
void kb_enroll_settings_free(struct kb_enroll_settings *s);

/* Sets option i from value (copied), what naming it as the user wrote it. A later value
 * replaces an earlier one; two options that exclude each other from the same source are an
 * error, from the command line over the file the later wins. */
int kb_enroll_set(struct kb_enroll_settings *s, size_t i, const char *what, const char *value,
                  kb_err *err);

/* Reads a [renew] file (named name in messages) into s; errors are "NAME:LINE: what". */
int kb_renew_conf_parse(FILE *f, const char *name, struct kb_enroll_settings *s, kb_err *err);

/* The same from a path, opened as a file keybound trusts (src/util/trustfile.h). */
int kb_renew_conf_load(const char *path, struct kb_enroll_settings *s, kb_err *err);

/* renew has what it needs (a key and an EST URL); config: the file read, or NULL. */
int kb_renew_settings_check(const struct kb_enroll_settings *s, const char *config, kb_err *err);

#endif
