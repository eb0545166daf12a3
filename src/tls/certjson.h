/* SPDX-License-Identifier: Apache-2.0 */
/* A certificate as JSON output shows it (the tunnel's /status, the CLI's --json): structured
 * fields rather than one display string, so that scripts need not parse text.
 *
 * {"subject", "issuer" (RFC 4514 strings), "serial" (hex), "not_before", "not_after" (ISO
 * 8601 UTC), "sha256" (hex, of the DER)}; each null when the DER cannot be read, so that
 * the keys are always there (doc/keybound.1, JSON OUTPUT). */
#ifndef KB_CERTJSON_H
#define KB_CERTJSON_H

#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include <time.h>

json_object *kb_cert_json(const gnutls_datum_t *der);

/* t as JSON output and messages write times: "2027-01-31T12:00:00Z" (UTC). */
void kb_iso_time(time_t t, char *buf, size_t len);

#endif
