/* SPDX-License-Identifier: Apache-2.0 */
/* Key generation on the token.
 *
 * C_GenerateKeyPair with an explicit template (token object, private, sensitive, not
 * extractable, sign only, one random CKA_ID shared by both halves, the label), then
 * the attributes are read back: a token that did not honour the template gets its new
 * objects destroyed and the call fails. No key is ever made in software. */
#ifndef KB_KEYGEN_H
#define KB_KEYGEN_H

#include "objects.h"

/* Types by name: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519. */
bool kb_keygen_type_known(const char *name);

/* s must be a logged-in read-write session. On success k holds the new key. */
int kb_keygen(kb_session *s, const char *type, const char *label, kb_key *k, kb_err *err);

#endif
