/* SPDX-License-Identifier: Apache-2.0 */
/* Retiring what a renewal replaced: the old key of a rekey, expired certificates.
 *
 * Both run on a read-write, logged-in session and only after the replacement is stored
 * and admitted; a failure here leaves the old objects in place (they are reported, never
 * half removed: the private key goes first, and without it nothing else is touched). */
#ifndef KB_LIFECYCLE_H
#define KB_LIFECYCLE_H

#include "objects.h"

/* Removes the old key pair and its certificates (by CKA_ID) and gives fresh the old
 * label. Returns 0, or -1 with err saying what stays; *relabelled says whether fresh has
 * the old label now (a leftover public key or certificate does not undo that). */
int kb_key_supersede(kb_session *s, const kb_key *old, const kb_key *fresh, bool *relabelled,
                     kb_err *err);

/* Removes a key pair and its certificates (by CKA_ID): a new key that is not admitted. */
int kb_key_remove(kb_session *s, const kb_key *k, kb_err *err);

/* Removes the certificates of objs->keys[key] that expired before now; says each. */
void kb_prune_expired(kb_session *s, const kb_objects *objs, const kb_key *k, long long now);

#endif
