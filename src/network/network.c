/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "network.h"

#include <errno.h>
#include <stdarg.h>
#include <glob.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/attrs.h"
#include "pkcs11/uri.h"
#include "policy/render.h"
#include "src/attest/attester.h"
#include "src/tls/identity.h"
#include "src/util/hostport.h"
#include "src/util/log.h"
#include "src/util/statedir.h"
#include "src/util/trustfile.h"

#define CA_MAX (1024 * 1024)

int kb_net_plan(const kb_policy *pol, const struct kb_net_request *rq, struct kb_net_plan *plan,
                kb_err *err)
{
    memset(plan, 0, sizeof *plan);
    const char *name = rq->name ? rq->name : rq->wired ? "wired" : rq->ssid;
    if (!kb_network_name_valid(name))
        return kb_err_set(err,
                          "network name '%s' is not 1 to 64 letters, digits, '.', '_' or '-'; "
                          "give --name NAME",
                          name);
    snprintf(plan->name, sizeof plan->name, "%s", name);
    const struct kb_network_rule *rule = kb_policy_network(pol, name);
    if (rule == NULL && !pol->allow_unlisted_endpoints && pol->mode == KB_MODE_ENFORCE) {
        kb_err_set(err,
                   "denied: the policy has no [network \"%s\"] section (network.listed); the "
                   "device identity is not presented there",
                   name);
        return 1;
    }
    char given[PATH_MAX], fixed[PATH_MAX];
    if (rule != NULL && rule->ca != NULL && rq->ca != NULL &&
        (realpath(rule->ca, fixed) == NULL || realpath(rq->ca, given) == NULL ||
         strcmp(fixed, given) != 0))
        return kb_err_set(err,
                          "the policy fixes the CA for network %s (%s); --ca cannot override it",
                          name, rule->ca);
    char norm[KB_HOST_MAX + 1] = "";
    if (rq->server_name != NULL &&
        kb_server_name_norm("--server-name", rq->server_name, norm, sizeof norm, err) != 0)
        return -1;
    if (rule != NULL && rule->server_name != NULL && *norm &&
        strcasecmp(rule->server_name, norm) != 0)
        return kb_err_set(err,
                          "the policy fixes the server name for network %s (%s); --server-name "
                          "cannot override it",
                          name, rule->server_name);
    const char *ca = rule && rule->ca ? rule->ca : rq->ca;
    const char *server = rule && rule->server_name ? rule->server_name : norm;
    if (ca == NULL)
        return kb_err_set(err,
                          "network %s needs the CA that issued the RADIUS server's certificate: "
                          "give --ca FILE or ca in the policy's [network \"%s\"]",
                          name, name);
    if (*server == '\0')
        return kb_err_set(err,
                          "network %s needs the RADIUS server's name: give --server-name NAME or "
                          "server-name in the policy's [network \"%s\"]",
                          name, name);
    if (realpath(ca, plan->ca) == NULL)
        return kb_err_set(err, "CA file %s cannot be used: %s", ca, strerror(errno));
    snprintf(plan->server_name, sizeof plan->server_name, "%s", server);
    plan->min_tls = rule && rule->min_tls ? rule->min_tls : 12;
    return 0;
}

/* ---- files ---- */

/* Writes data to the absolute path through a temporary file beside it, 0600. */
static int write_at(const char *path, const void *data, size_t len, kb_err *err)
{
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    return kb_state_write(dirname(a), basename(b), data, len, err);
}

/* Makes dir and its missing parents (0755), dir itself with mode. */
static int make_dir(const char *dir, mode_t mode, kb_err *err)
{
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s", dir) >= sizeof p)
        return kb_err_set(err, "directory %s: the name is too long", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return kb_err_set(err, "directory %s cannot be made: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        return kb_err_set(err, "directory %s cannot be made: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return kb_err_set(err, "%s is not a directory", p);
    return 0;
}

/* The CA file as given: read as a trusted file, and holding certificates GnuTLS reads. */
static int read_ca(const char *path, char **text, size_t *len, kb_err *err)
{
    FILE *f = kb_trustfile_fopen(path, "CA file", 0, err);
    if (f == NULL)
        return -1;
    char *buf = malloc(CA_MAX + 1);
    size_t n = buf ? fread(buf, 1, CA_MAX + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (buf == NULL)
        return kb_err_set(err, "out of memory");
    gnutls_x509_crt_t *certs = NULL;
    unsigned count = 0;
    gnutls_datum_t d = {(unsigned char *)buf, (unsigned)n};
    if (bad || n > CA_MAX ||
        gnutls_x509_crt_list_import2(&certs, &count, &d, GNUTLS_X509_FMT_PEM, 0) < 0 ||
        count == 0) {
        free(buf);
        return kb_err_set(err, "CA file %s holds no PEM certificate keybound can read", path);
    }
    for (unsigned i = 0; i < count; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* The certificate, then its issuer path from the token (no anchor), as PEM. */
static int cert_pem(const kb_device *dev, const kb_objects *objs, char **out, size_t *len,
                    kb_err *err)
{
    const kb_cert *path[KB_CHAIN_MAX + 1];
    unsigned n = 0;
    path[0] = dev->cert;
    if (kb_identity_path(dev->cert, objs, path + 1, &n, err) != 0)
        return -1;
    char *text = NULL;
    size_t used = 0;
    for (unsigned i = 0; i <= n; i++) {
        gnutls_datum_t der = {path[i]->der, (unsigned)path[i]->der_len}, pem = {0};
        if (gnutls_pem_base64_encode2("CERTIFICATE", &der, &pem) < 0) {
            free(text);
            return kb_err_set(err, "certificate '%s' cannot be written as PEM", path[i]->label);
        }
        char *grown = realloc(text, used + pem.size + 1);
        if (grown == NULL) {
            gnutls_free(pem.data);
            free(text);
            return kb_err_set(err, "out of memory");
        }
        text = grown;
        memcpy(text + used, pem.data, pem.size);
        used += pem.size;
        text[used] = '\0';
        gnutls_free(pem.data);
    }
    *out = text;
    *len = used;
    return 0;
}

/* libp11's OpenSSL engine, where Debian and others put it. */
static int engine_path(char *out, size_t len, kb_err *err)
{
    static const char *const where[] = {
        "/usr/lib/*/engines-3/pkcs11.so",   "/usr/lib64/engines-3/pkcs11.so",
        "/usr/lib/engines-3/pkcs11.so",     "/usr/lib/*/engines-1.1/pkcs11.so",
        "/usr/lib64/engines-1.1/pkcs11.so", "/usr/lib/engines-1.1/pkcs11.so",
    };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        glob_t g;
        if (glob(where[i], 0, NULL, &g) == 0 && g.gl_pathc > 0) {
            snprintf(out, len, "%s", g.gl_pathv[0]);
            globfree(&g);
            return 0;
        }
        globfree(&g);
    }
    return kb_err_set(err,
                      "wpa_supplicant needs libp11's PKCS#11 engine for OpenSSL, and it is not "
                      "installed: install libengine-pkcs11-openssl");
}

/* "CN" of the certificate's subject. */
static int subject_cn(const kb_cert *c, char *out, size_t len, kb_err *err)
{
    gnutls_x509_crt_t crt = kb_cert_x509(c);
    size_t n = len;
    int rc =
        crt ? gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &n) : -1;
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (rc < 0 || n == 0)
        return kb_err_set(err,
                          "certificate '%s' has no subject common name to use as the EAP "
                          "identity; give --identity ID",
                          c->label);
    return 0;
}

/* A stable UUID for the connection, from its name: writing the profile again replaces the
 * connection instead of adding one. */
static void name_uuid(const char *name, char *out, size_t len)
{
    unsigned char h[32];
    char text[128];
    snprintf(text, sizeof text, "keybound network %s", name);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: made by its own rule */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    char hex[65];
    kb_hex(h, 16, hex);
    snprintf(out, len, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* One Environment= line; quoted when the value holds a blank. */
static void env_line(char *out, size_t len, const char *var, const char *value)
{
    size_t n = strlen(out);
    bool quote = strpbrk(value, " \t\"\\") != NULL;
    snprintf(out + n, len - n, quote ? "Environment=\"%s=%s\"\n" : "Environment=%s=%s\n", var,
             value);
}

/* tpm2-pkcs11's store and TCTI as this process sees them, for wpa_supplicant.service. */
static char *tpm_dropin(void)
{
    const char *store = getenv("TPM2_PKCS11_STORE"), *tcti = getenv("TPM2_PKCS11_TCTI");
    const char *home = getenv("HOME");
    char fallback[PATH_MAX];
    struct stat st;
    if (store == NULL || *store == '\0') {
        /* Where tpm2-pkcs11 looks next: /etc/tpm2_pkcs11, then $HOME. */
        if (stat("/etc/tpm2_pkcs11", &st) == 0 || home == NULL) {
            store = "/etc/tpm2_pkcs11";
        } else {
            snprintf(fallback, sizeof fallback, "%s/.tpm2_pkcs11", home);
            store = fallback;
        }
    }
    size_t len = 2 * PATH_MAX + 512;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    snprintf(out, len,
             "# Written by keybound network profile: the TPM token's store and TCTI, as "
             "keybound used them.\n[Service]\n");
    env_line(out, len, "TPM2_PKCS11_STORE", store);
    if (tcti != NULL && *tcti)
        env_line(out, len, "TPM2_PKCS11_TCTI", tcti);
    else
        snprintf(out + strlen(out), len - strlen(out),
                 "# TPM2_PKCS11_TCTI was not set: tpm2-pkcs11 tries the TSS's default TCTIs.\n");
    return out;
}

/* Runs argv (no shell); 0 when it exits 0. */
static int run(char *const argv[], kb_err *err)
{
    pid_t pid = fork();
    if (pid < 0)
        return kb_err_set(err, "%s cannot be run: %s", argv[0], strerror(errno));
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return kb_err_set(err, "%s: %s", argv[0], strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return kb_err_set(err, "'%s %s' failed (exit %d)", argv[0], argv[1],
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

/* ---- profile ---- */

struct layout {
    char dir[PATH_MAX], profile[PATH_MAX], cert[PATH_MAX], ca[PATH_MAX], dropin[PATH_MAX];
};

/* A path from its parts; false when it does not fit. */
static bool join(char *out, size_t len, const char *fmt, ...) KB_PRINTF(3, 4);
static bool join(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

static int place(const struct kb_net_request *rq, const char *name, bool tpm, struct layout *l,
                 kb_err *err)
{
    char file[128], d[PATH_MAX], abs[PATH_MAX];
    const char *root = getenv("KEYBOUND_INSTALL_ROOT");
    bool nm = rq->format == KB_NET_NM, fits = true;
    memset(l, 0, sizeof *l);
    root = root ? root : "";
    if (rq->install) {
        fits = join(l->dir, sizeof l->dir, "%s/etc/%s", root,
                    nm ? "NetworkManager/system-connections" : "wpa_supplicant") &&
               join(d, sizeof d, "%s/etc/systemd/system/wpa_supplicant.service.d", root);
        if (!fits || make_dir(l->dir, nm ? 0700 : 0755, err) != 0 ||
            (tpm && make_dir(d, 0755, err) != 0))
            goto fail;
        fits = !tpm || join(l->dropin, sizeof l->dropin, "%s/keybound-%s.conf", d, name);
    } else {
        if (make_dir(rq->out_dir, 0700, err) != 0)
            return -1;
        if (realpath(rq->out_dir, abs) == NULL)
            return kb_err_set(err, "directory %s: %s", rq->out_dir, strerror(errno));
        fits = join(l->dir, sizeof l->dir, "%s", abs) &&
               (!tpm || join(l->dropin, sizeof l->dropin, "%s/keybound-%s-wpa_supplicant.conf",
                             l->dir, name));
    }
    kb_net_profile_file(name, rq->format, file, sizeof file);
    fits = fits && join(l->profile, sizeof l->profile, "%s/%s", l->dir, file) &&
           join(l->cert, sizeof l->cert, "%s/keybound-%s-cert.pem", l->dir, name) &&
           join(l->ca, sizeof l->ca, "%s/keybound-%s-ca.pem", l->dir, name);
    if (fits)
        return 0;
fail:
    if (!fits)
        kb_err_set(err, "directory %s: the name is too long", rq->install ? root : rq->out_dir);
    return -1;
}

/* The key named by its token and CKA_ID: what the profile's private_key and renew use. */
static char *key_uri_of(const kb_key *k)
{
    return kb_uri_for(k->token, "private", NULL, k->facts.id, k->facts.id_len);
}

/* The device as kb_device_choose picks it for key: 0 admitted, 1 refused (err), -1 err. */
static int choose(const kb_objects *objs, const kb_key *key, const kb_policy *pol,
                  const kb_trust *trust, long long now, kb_device *dev, kb_verdict *v,
                  char *warning, size_t warning_len, kb_err *err)
{
    int rc = kb_device_choose(objs, key, pol, trust, now, NULL, dev, v, err);
    if (rc < 0)
        return -1;
    char summary[512];
    kb_verdict_summary(v, summary, sizeof summary);
    if (rc == 1) {
        kb_err_set(
            err, "key '%s' on token '%s' is not admitted: %s; 'keybound check --key URI' shows why",
            key->facts.label, key->token->facts.label, summary);
        return 1;
    }
    if (warning != NULL)
        snprintf(warning, warning_len, "%s", v->would_deny ? summary : "");
    return 0;
}

/* The profile for entry e on key (whose URI and SPKI e then holds), with pin (or none). */
static int render_entry(struct kb_net_entry *e, const kb_key *key, const char *pin, char **out,
                        kb_err *err)
{
    char engine[PATH_MAX] = "", uuid[40];
    const char *module = key->token->module->path;
    *out = NULL;
    if (e->format == KB_NET_WPA) {
        if (engine_path(engine, sizeof engine, err) != 0)
            return -1;
        if (module == NULL || module[0] != '/')
            return kb_err_set(err,
                              "the path of the PKCS#11 module of token '%s' is not known "
                              "(p11-kit names it '%s'); give --module PATH",
                              key->token->facts.label, module ? module : "?");
        /* Debian's wpa_supplicant (since the CVE-2024-5290 fix) loads engines and modules
         * only from under /usr/lib/, by their real path: say so rather than write a profile
         * that silently cannot load its key there. */
        char real[PATH_MAX];
        if (realpath(module, real) != NULL && strncmp(real, "/usr/lib/", 9) != 0)
            kb_log(KB_LOG_WARN,
                   "the PKCS#11 module %s is not under /usr/lib/: Debian's wpa_supplicant "
                   "refuses to load modules from elsewhere (\"Not in trusted path\")",
                   real);
    }
    char *key_uri = key_uri_of(key);
    if (key_uri == NULL)
        return kb_err_set(err, "out of memory");
    snprintf(e->key_uri, sizeof e->key_uri, "%s", key_uri);
    free(key_uri);
    snprintf(e->token_serial, sizeof e->token_serial, "%s", key->token->facts.serial);
    kb_hex(key->spki_sha256, 32, e->spki_sha256);
    name_uuid(e->name, uuid, sizeof uuid);
    struct kb_net_profile prof = {
        .name = e->name,
        .format = e->format,
        .wired = e->wired,
        .ssid = e->ssid,
        .identity = e->identity,
        .server_name = e->server_name,
        .ca_file = e->ca,
        .cert_file = e->certificate,
        .key_uri = e->key_uri,
        .engine_path = engine,
        .module_path = module,
        .uuid = uuid,
        .min_tls = e->min_tls,
        .pin = pin,
    };
    return (*out = kb_net_render(&prof, err)) != NULL ? 0 : -1;
}

int kb_net_profile_write(kb_p11 *p, const kb_pin_opts *pin, const kb_policy *pol,
                         const struct kb_net_request *rq, const struct kb_net_plan *plan,
                         struct kb_net_written *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    P11KitUri *uri = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_trust *trust = NULL;
    kb_attester *attester = NULL;
    kb_key *key = NULL;
    kb_secret *accepted = NULL;
    char *ca_text = NULL, *cert_text = NULL, *profile_text = NULL, *dropin = NULL;
    size_t ca_len = 0, cert_len = 0;
    int rc = -1;
    /* The PIN the token accepts at this login is the one the profile gets. */
    kb_pin_opts login = *pin;
    login.accepted = &accepted;
    if (read_ca(plan->ca, &ca_text, &ca_len, err) != 0 ||
        kb_uri_parse(rq->key_uri, 0, &uri, err) != 0 ||
        kb_objects_one_key(p, uri, rq->key_uri, &login, &tokens, &objs, &key, err) != 0)
        goto out;
    /* Writing a profile admits the key for the network: attested, under such a policy. */
    if ((trust = kb_trust_load(pol)) == NULL ||
        kb_attester_attach(trust, pol, p, &login, 0, &attester, err) != 0) {
        if (trust == NULL)
            kb_err_set(err, "out of memory");
        goto out;
    }
    kb_device dev;
    kb_verdict v;
    rc = choose(&objs, key, pol, trust, (long long)time(NULL), &dev, &v, out->warning,
                sizeof out->warning, err);
    if (rc != 0)
        goto out;
    rc = -1;
    if (dev.cert == NULL || !dev.cert_valid) {
        kb_err_set(err, "key '%s' has no valid certificate for the profile", key->facts.label);
        goto out;
    }
    char identity[256];
    if (rq->identity != NULL)
        snprintf(identity, sizeof identity, "%s", rq->identity);
    else if (subject_cn(dev.cert, identity, sizeof identity, err) != 0)
        goto out;
    struct layout l;
    if (cert_pem(&dev, &objs, &cert_text, &cert_len, err) != 0 ||
        place(rq, plan->name, key->token->module->tpm, &l, err) != 0)
        goto out;
    struct kb_net_entry *e = &out->entry;
    snprintf(e->name, sizeof e->name, "%s", plan->name);
    e->format = rq->format;
    snprintf(e->profile, sizeof e->profile, "%s", l.profile);
    snprintf(e->certificate, sizeof e->certificate, "%s", l.cert);
    snprintf(e->ca, sizeof e->ca, "%s", l.ca);
    snprintf(e->dropin, sizeof e->dropin, "%s", l.dropin);
    snprintf(e->server_name, sizeof e->server_name, "%s", plan->server_name);
    e->wired = rq->wired;
    snprintf(e->ssid, sizeof e->ssid, "%s", rq->wired ? "" : rq->ssid);
    snprintf(e->identity, sizeof e->identity, "%s", identity);
    e->min_tls = plan->min_tls;
    e->pin_stored = accepted != NULL;
    if (rq->policy_path != NULL && realpath(rq->policy_path, e->policy) == NULL)
        e->policy[0] = '\0';
    if (render_entry(e, key, accepted ? accepted->buf : NULL, &profile_text, err) != 0)
        goto out;
    if (l.dropin[0] && (dropin = tpm_dropin()) == NULL) {
        kb_err_set(err, "out of memory");
        goto out;
    }
    /* Every check passed: the files, the profile last, so that it never names a file that
     * is not there yet. */
    if (write_at(l.ca, ca_text, ca_len, err) != 0 ||
        write_at(l.cert, cert_text, cert_len, err) != 0 ||
        (dropin && write_at(l.dropin, dropin, strlen(dropin), err) != 0) ||
        write_at(l.profile, profile_text, strlen(profile_text), err) != 0)
        goto out;

    char dir[PATH_MAX];
    struct kb_net_entry before;
    kb_err why;
    if (kb_state_dir(dir, sizeof dir, true, err) != 0)
        goto out;
    /* One profile per name: check and renew follow the newest one only. */
    if (kb_net_entry_load(dir, e->name, &before, &why) == 0 &&
        strcmp(before.profile, e->profile) != 0)
        kb_log(KB_LOG_WARN,
               "network profile %s was written to %s before; check and renew now follow %s only",
               e->name, before.profile, e->profile);
    if (kb_net_entry_save(dir, e, err) != 0)
        goto out;
    if ((out->cert_der = malloc(dev.cert->der_len)) != NULL) {
        memcpy(out->cert_der, dev.cert->der, dev.cert->der_len);
        out->cert_der_len = dev.cert->der_len;
    }
    if (rq->install && rq->reload) {
        if (rq->format == KB_NET_NM) {
            char *argv[] = {"nmcli", "connection", "load", l.profile, NULL};
            if (run(argv, err) != 0)
                goto out;
        } else if (dropin != NULL) {
            char *argv[] = {"systemctl", "daemon-reload", NULL};
            if (run(argv, err) != 0)
                goto out;
        }
    }
    rc = 0;
out:
    kb_net_text_free(profile_text);
    free(dropin);
    free(cert_text);
    free(ca_text);
    kb_secret_free(accepted);
    kb_trust_free(trust);
    kb_attester_free(attester);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}

void kb_net_written_free(struct kb_net_written *w)
{
    free(w->cert_der);
    memset(w, 0, sizeof *w);
}

/* ---- check ---- */

/* The first certificate of a PEM file, as DER (malloc'd). */
static int first_cert(const char *path, unsigned char **der, size_t *len, kb_err *err)
{
    char *text = NULL;
    size_t n = 0;
    int rc = kb_state_read(path, CA_MAX, &text, &n, err);
    if (rc == 1)
        return kb_err_set(err, "certificate file %s is missing", path);
    if (rc != 0)
        return -1;
    gnutls_datum_t pem = {(unsigned char *)text, (unsigned)n}, out = {0};
    rc = gnutls_pem_base64_decode2("CERTIFICATE", &pem, &out);
    free(text);
    if (rc < 0)
        return kb_err_set(err, "certificate file %s holds no PEM certificate", path);
    *der = malloc(out.size);
    if (*der != NULL)
        memcpy(*der, out.data, out.size);
    *len = out.size;
    gnutls_free(out.data);
    return *der ? 0 : kb_err_set(err, "out of memory");
}

/* The profile without its PIN, and the registry saying so. */
static int forget_pin(const char *dir, struct kb_net_entry *e, const char *text, size_t len,
                      kb_err *err)
{
    char *rest = kb_net_pin_remove(text, len, e->format);
    if (rest == NULL)
        return kb_err_set(err, "out of memory");
    int rc = write_at(e->profile, rest, strlen(rest), err);
    kb_net_text_free(rest);
    e->pin_stored = false;
    if (rc == 0)
        rc = kb_net_entry_save(dir, e, err);
    return rc;
}

static bool any_rejected(kb_p11 *p, P11KitUri *uri)
{
    kb_token_list tokens;
    bool seen = false;
    if (kb_p11_tokens(p, uri, KB_TOKENS_INITIALIZED, &tokens, NULL) != 0)
        return false;
    for (size_t i = 0; i < tokens.n && !seen; i++)
        seen = kb_pin_was_rejected(tokens.v[i].facts.label);
    kb_token_list_free(&tokens);
    return seen;
}

static void say(struct kb_net_check *r, const char *fmt, ...) KB_PRINTF(2, 3);
static void say(struct kb_net_check *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

static void check_one(kb_p11 *p, const kb_pin_opts *base, const char *policy_path, const char *dir,
                      struct kb_net_entry *e, struct kb_net_check *r)
{
    char *text = NULL;
    size_t len = 0;
    kb_secret *stored = kb_secret_new(), *accepted = NULL;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    kb_trust *trust = NULL;
    kb_attester *attester = NULL;
    kb_key *key = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    kb_err err = {0};
    bool baseline;
    snprintf(r->name, sizeof r->name, "%s", e->name);
    snprintf(r->profile, sizeof r->profile, "%s", e->profile);
    r->pin = "none";
    r->exit_code = 2;
    int got =
        stored == NULL ? -1 : kb_state_read(e->profile, KB_NET_REGISTRY_MAX, &text, &len, &err);
    if (got == 1)
        kb_err_set(&err,
                   "network profile %s is missing; write it again with 'keybound network profile'",
                   e->profile);
    if (got != 0)
        goto out;
    int has_pin = kb_net_pin_read(text, len, e->format, e->profile, stored, &err);
    if (has_pin < 0)
        goto out;
    /* The profile's PIN is the only one tried: the options' sources do not apply. */
    kb_pin_opts pin = {.force = base->force, .no_tty = true, .accepted = &accepted};
    if (has_pin) {
        pin.stored_value = stored->buf;
        pin.stored_file = e->profile;
        r->pin = "accepted";
    }
    const char *pol_path = policy_path ? policy_path : e->policy[0] ? e->policy : NULL;
    if (kb_policy_load_or_baseline(pol_path, &pol, &baseline, &err) != 0 ||
        kb_uri_parse(e->key_uri, 0, &uri, &err) != 0)
        goto out;
    /* A token that rejected another profile's PIN in this run is not asked again: this
     * profile's PIN was not tried, and stays. */
    bool refused_before = any_rejected(p, uri);
    if (kb_objects_one_key(p, uri, e->key_uri, &pin, &tokens, &objs, &key, &err) != 0) {
        if (has_pin && !refused_before && any_rejected(p, uri)) {
            kb_err why;
            r->pin = "rejected";
            r->exit_code = 6;
            r->pin_removed = forget_pin(dir, e, text, len, &why) == 0;
            if (r->pin_removed)
                say(r,
                    "the token rejected the PIN stored in %s; it is removed from the "
                    "profile so that wpa_supplicant spends no more tries; write the profile "
                    "again with the right PIN ('keybound network profile')",
                    e->profile);
            else
                say(r,
                    "the token rejected the PIN stored in %s, and removing it failed: %s; "
                    "remove its pin line by hand",
                    e->profile, why.msg);
            goto done;
        }
        if (!has_pin) {
            r->exit_code = 1;
            say(r,
                "the profile stores no PIN, and without one the key cannot be checked (%s); "
                "write the profile again with the right PIN ('keybound network profile')",
                err.msg);
            goto done;
        }
        goto out;
    }
    if ((trust = kb_trust_load(pol)) == NULL ||
        kb_attester_attach(trust, pol, p, &pin, 0, &attester, &err) != 0) {
        if (trust == NULL)
            kb_err_set(&err, "out of memory");
        goto out;
    }
    kb_device dev;
    kb_verdict v;
    int chosen = choose(&objs, key, pol, trust, (long long)time(NULL), &dev, &v, NULL, 0, &err);
    if (chosen < 0)
        goto out;
    r->admitted = chosen == 0;
    if (first_cert(e->certificate, &der, &der_len, &err) != 0)
        goto out;
    r->certificate_current = dev.cert != NULL && dev.cert->der_len == der_len &&
                             memcmp(dev.cert->der, der, der_len) == 0;
    r->ok = r->admitted && r->certificate_current;
    r->exit_code = r->ok ? 0 : 1;
    if (!r->admitted)
        say(r, "%s", err.msg);
    else if (!r->certificate_current)
        say(r,
            "%s is no longer the certificate keybound would present for key '%s'; write "
            "the profile again ('keybound network profile') or run 'keybound renew'",
            e->certificate, key->facts.label);
    goto done;
out:
    say(r, "%s", err.msg);
done:
    free(der);
    kb_trust_free(trust);
    kb_attester_free(attester);
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    if (uri)
        p11_kit_uri_free(uri);
    kb_policy_free(pol);
    kb_secret_free(accepted);
    kb_secret_free(stored);
    if (text != NULL)
        kb_memzero(text, len); /* it held the PIN */
    free(text);
}

int kb_net_check_all(kb_p11 *p, const kb_pin_opts *pin, const char *policy_path, const char *name,
                     struct kb_net_check **out, size_t *n, kb_err *err)
{
    char dir[PATH_MAX];
    struct kb_net_entry *v = NULL;
    size_t count = 0;
    *out = NULL;
    *n = 0;
    if (name != NULL && !kb_network_name_valid(name))
        return kb_err_set(err, "network name '%s' is not 1 to 64 letters, digits, '.', '_' or '-'",
                          name);
    if (kb_state_dir(dir, sizeof dir, false, err) != 0)
        return -1;
    if (name != NULL) {
        if ((v = malloc(sizeof *v)) == NULL)
            return kb_err_set(err, "out of memory");
        int rc = kb_net_entry_load(dir, name, v, err);
        if (rc != 0) {
            free(v);
            if (rc == 1)
                kb_err_set(err,
                           "keybound wrote no network profile named '%s' (none in %s); "
                           "'keybound network profile' writes one",
                           name, dir);
            return -1;
        }
        count = 1;
    } else if (kb_net_entry_list(dir, &v, &count, err) != 0) {
        return -1;
    } else if (count == 0) {
        free(v);
        return kb_err_set(err,
                          "keybound wrote no network profile (none in %s); 'keybound network "
                          "profile' writes one",
                          dir);
    }
    if ((*out = calloc(count, sizeof **out)) == NULL) {
        free(v);
        return kb_err_set(err, "out of memory");
    }
    for (size_t i = 0; i < count; i++)
        check_one(p, pin, policy_path, dir, &v[i], &(*out)[i]);
    *n = count;
    free(v);
    return 0;
}

/* ---- renew and status ---- */

/* A profile of the key renewed (or of the key it replaced: then on the new key, with the
 * PIN the profile holds): its certificate file, and after a rekey its profile and registry
 * entry. */
static int follow(const char *dir, struct kb_net_entry *e, const kb_objects *objs,
                  const kb_key *key, bool rekeyed, const kb_policy *pol, const kb_trust *trust,
                  long long now, kb_err *err)
{
    kb_device dev;
    kb_verdict verdict;
    char *cert = NULL, *text = NULL, *profile = NULL;
    size_t cert_len = 0, len = 0;
    kb_secret *pin = NULL;
    int rc = -1;
    if (choose(objs, key, pol, trust, now, &dev, &verdict, NULL, 0, err) != 0)
        goto out;
    if (dev.cert == NULL) {
        kb_err_set(err, "key '%s' has no certificate", key->facts.label);
        goto out;
    }
    if (cert_pem(&dev, objs, &cert, &cert_len, err) != 0)
        goto out;
    if (rekeyed) {
        int found = 0;
        if ((pin = kb_secret_new()) == NULL) {
            kb_err_set(err, "cannot allocate locked memory for the PIN");
            goto out;
        }
        if (kb_state_read(e->profile, KB_NET_REGISTRY_MAX, &text, &len, err) != 0 ||
            (found = kb_net_pin_read(text, len, e->format, e->profile, pin, err)) < 0 ||
            render_entry(e, key, found ? pin->buf : NULL, &profile, err) != 0)
            goto out;
    }
    /* The certificate first: the profile names the new key only once its certificate is
     * there. */
    if (write_at(e->certificate, cert, cert_len, err) != 0 ||
        (profile && (write_at(e->profile, profile, strlen(profile), err) != 0 ||
                     kb_net_entry_save(dir, e, err) != 0)))
        goto out;
    rc = 0;
out:
    free(cert);
    if (text != NULL)
        kb_memzero(text, len); /* it held the PIN */
    free(text);
    kb_net_text_free(profile);
    kb_secret_free(pin);
    return rc;
}

void kb_net_follow_renewal(const kb_objects *objs, const kb_key *key, const unsigned char *was,
                           const kb_policy *pol, const kb_trust *trust, long long now)
{
    char dir[PATH_MAX], spki[65];
    struct kb_net_entry *v = NULL;
    size_t n = 0;
    kb_err err;
    if (!key->has_spki || kb_state_dir(dir, sizeof dir, false, &err) != 0 ||
        kb_net_entry_list(dir, &v, &n, &err) != 0)
        return;
    kb_hex(was ? was : key->spki_sha256, 32, spki);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].spki_sha256, spki) != 0)
            continue;
        if (follow(dir, &v[i], objs, key, was != NULL, pol, trust, now, &err) != 0)
            kb_log(KB_LOG_WARN, "network profile %s is not updated: %s", v[i].name, err.msg);
        else
            kb_log(KB_LOG_INFO, "network profile %s: %s now holds the renewed certificate%s",
                   v[i].name, v[i].certificate, was ? ", and the profile the new key" : "");
    }
    free(v);
}

void kb_net_profiles_of(const unsigned char spki[32], char ***names, size_t *n)
{
    char dir[PATH_MAX], hex[65];
    struct kb_net_entry *v = NULL;
    size_t count = 0;
    kb_err err;
    *names = NULL;
    *n = 0;
    if (kb_state_dir(dir, sizeof dir, false, &err) != 0 ||
        kb_net_entry_list(dir, &v, &count, &err) != 0)
        return;
    kb_hex(spki, 32, hex);
    for (size_t i = 0; i < count; i++) {
        if (strcmp(v[i].spki_sha256, hex) != 0)
            continue;
        char **grown = realloc(*names, (*n + 1) * sizeof *grown);
        if (grown == NULL || (grown[*n] = strdup(v[i].name)) == NULL) {
            *names = grown ? grown : *names;
            break;
        }
        *names = grown;
        (*n)++;
    }
    free(v);
}

void kb_net_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
