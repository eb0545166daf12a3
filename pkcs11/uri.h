/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 7512 pkcs11: URIs.
 *
 * Parsing is p11-kit's; keybound adds what a tool needs around it: an attribute p11-kit
 * does not know is an error (a typo must not widen a match to everything), pin-value is
 * refused unless the caller says the URI did not come from argv, and a URI printed in
 * a message never shows a pin-value. */
#ifndef KB_URI_H
#define KB_URI_H

#include <p11-kit/uri.h>
#include <stdbool.h>

#include "src/util/err.h"

struct kb_module;
struct kb_token;

enum {
    /* The URI comes from a file, not the command line: pin-value may stand in it. */
    KB_URI_ALLOW_PIN_VALUE = 1 << 0,
};

int kb_uri_parse(const char *text, unsigned flags, P11KitUri **out, kb_err *err);

/* A copy of text with any pin-value replaced by "redacted"; NULL only without memory. */
char *kb_uri_redact(const char *text);

bool kb_uri_match_module(P11KitUri *uri, const struct kb_module *m);
bool kb_uri_match_token(P11KitUri *uri, const struct kb_token *t);

/* The URI names an object (id, object label or type). */
bool kb_uri_has_object(P11KitUri *uri);

/* "pkcs11:model=...;manufacturer=...;serial=...;token=..." plus, when label or id are
 * given, ";id=...;object=...;type=TYPE". Returns malloc'd text. */
char *kb_uri_for(const struct kb_token *t, const char *type, const char *label,
                 const unsigned char *id, size_t id_len);

#endif
