/* What enroll and renew share around the EST client: the enrolment credential, the
 * request for a key, the checks on what came back, and the report.
 *
 * Nothing is written to the token before the reply has been parsed and its certificate
 * matched to the key; a key generated for a request that then failed is removed again. */
#ifndef KB_FLOW_H
#define KB_FLOW_H

#include "src/enroll/csr.h"
#include "src/enroll/est.h"
#include "src/tls/device.h"

/* "user:password" from a file or the systemd credential keybound.secret; NULL path and
 * no credential: *out stays NULL. */
int kb_enroll_secret(const char *path, kb_secret **out, kb_err *err);

/* Signs a request for key k with spec (plus what /csrattrs asked) and submits it to op. */
enum kb_est_state kb_enroll_request(kb_est *e, const char *op, kb_signer *signer, const kb_key *k,
                                    struct kb_csr_spec *spec, const struct kb_csrattrs *attrs,
                                    gnutls_x509_crt_t **certs, unsigned *n, kb_err *err);

/* The subject and subject alternative names of crt as a request spec; text holds the
 * strings (at least 4 KiB). */
int kb_spec_from_cert(gnutls_x509_crt_t crt, struct kb_csr_spec *spec, char *text, size_t len,
                      kb_err *err);

/* Writes the CA certificates to path as PEM. */
int kb_save_certs(const char *path, gnutls_x509_crt_t *certs, unsigned n, kb_err *err);

#endif
