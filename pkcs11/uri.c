/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "uri.h"

#include <stdlib.h>
#include <string.h>

#include "p11.h"

static const char *parse_error(int rv)
{
    switch (rv) {
    case P11_KIT_URI_BAD_SCHEME:
        return "it does not start with pkcs11:";
    case P11_KIT_URI_BAD_ENCODING:
        return "a %-escape in it is malformed";
    case P11_KIT_URI_BAD_SYNTAX:
        return "its syntax is wrong (attribute=value pairs separated by ';')";
    case P11_KIT_URI_BAD_VERSION:
        return "a library-version in it is malformed";
    default:
        return "p11-kit cannot parse it";
    }
}

/* p11-kit keeps a query attribute it does not know as a vendor query, silently: a typo
 * in ?pin-sourse= would send keybound looking for the PIN elsewhere. */
static bool query_names_known(const char *text)
{
    static const char *const known[] = {"pin-source", "pin-value", "module-name", "module-path"};
    const char *q = strchr(text, '?');
    while (q != NULL) {
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        size_t n = strcspn(q, "= \t&");
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || (n == strlen(known[i]) && strncmp(q, known[i], n) == 0);
        if (!ok && n > 0)
            return false;
        q = strchr(q, '&');
    }
    return true;
}

int kb_uri_parse(const char *text, unsigned flags, P11KitUri **out, kb_err *err)
{
    *out = NULL;
    char *shown = kb_uri_redact(text);
    if (shown == NULL)
        return kb_err_set(err, "out of memory");
    P11KitUri *uri = p11_kit_uri_new();
    int rv = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri);
    if (rv != P11_KIT_URI_OK) {
        kb_err_set(err,
                   "URI '%s' is not a valid pkcs11: URI: %s (RFC 7512; e.g. "
                   "pkcs11:token=NAME;object=LABEL)",
                   shown, parse_error(rv));
        goto fail;
    }
    if (p11_kit_uri_any_unrecognized(uri) || !query_names_known(text)) {
        kb_err_set(err,
                   "URI '%s' has an attribute keybound does not know; check its spelling "
                   "(known: token, manufacturer, model, serial, object, id, type, slot-id, "
                   "module-name, module-path, pin-source, pin-value)",
                   shown);
        goto fail;
    }
    if (p11_kit_uri_get_pin_value(uri) != NULL && !(flags & KB_URI_ALLOW_PIN_VALUE)) {
        kb_err_set(err,
                   "URI '%s' carries pin-value on the command line, where any user can "
                   "read it; use --pin-file FILE or pin-source=FILE instead",
                   shown);
        goto fail;
    }
    free(shown);
    *out = uri;
    return 0;
fail:
    free(shown);
    p11_kit_uri_free(uri);
    return -1;
}

/* Text-level redaction for URIs p11-kit cannot parse: everything after any "pin-value"
 * up to the next separator goes, whatever stands around it. */
static char *redact_text(const char *text)
{
    size_t n = strlen(text);
    /* Each "pin-value" (9 bytes) becomes 18 at most: the text can double, no more. */
    char *out = malloc(2 * n + 10), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        if (strncasecmp(text + i, "pin-value", 9) == 0) {
            memcpy(o, "pin-value=redacted", 18);
            o += 18;
            i += 9 + strcspn(text + i + 9, "&;");
        } else {
            *o++ = text[i++];
        }
    }
    *o = '\0';
    return out;
}

char *kb_uri_redact(const char *text)
{
    /* p11-kit accepts pin-value in the path and with blanks around it: let p11-kit find
     * it, and print p11-kit's own rendering without it. */
    P11KitUri *uri = p11_kit_uri_new();
    char *out = NULL;
    if (p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri) == P11_KIT_URI_OK) {
        if (p11_kit_uri_get_pin_value(uri) == NULL && strcasestr(text, "pin-value") == NULL) {
            out = strdup(text);
        } else {
            p11_kit_uri_set_pin_value(uri, "redacted");
            if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_ANY, &out) != P11_KIT_URI_OK)
                out = NULL;
        }
    }
    p11_kit_uri_free(uri);
    return out != NULL ? out : redact_text(text);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

bool kb_uri_match_module(P11KitUri *uri, const kb_module *m)
{
    CK_INFO info = m->info;
    if (!p11_kit_uri_match_module_info(uri, &info))
        return false;
    const char *want = p11_kit_uri_get_module_name(uri);
    if (want != NULL && strcmp(want, m->name) != 0)
        return false;
    want = p11_kit_uri_get_module_path(uri);
    if (want != NULL && strcmp(want, m->path) != 0 &&
        !(strchr(want, '/') == NULL && strcmp(want, base_name(m->path)) == 0))
        return false;
    return true;
}

bool kb_uri_match_token(P11KitUri *uri, const kb_token *t)
{
    if (!kb_uri_match_module(uri, t->module))
        return false;
    CK_SLOT_INFO si = t->slot_info;
    CK_TOKEN_INFO ti = t->info;
    if (!p11_kit_uri_match_slot_info(uri, &si) || !p11_kit_uri_match_token_info(uri, &ti))
        return false;
    CK_SLOT_ID want_slot = p11_kit_uri_get_slot_id(uri);
    return want_slot == (CK_SLOT_ID)-1 || want_slot == t->slot;
}

bool kb_uri_has_object(P11KitUri *uri)
{
    return p11_kit_uri_get_attribute(uri, CKA_ID) != NULL ||
           p11_kit_uri_get_attribute(uri, CKA_LABEL) != NULL ||
           p11_kit_uri_get_attribute(uri, CKA_CLASS) != NULL;
}

char *kb_uri_for(const kb_token *t, const char *type, const char *label, const unsigned char *id,
                 size_t id_len)
{
    P11KitUri *uri = p11_kit_uri_new();
    CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
    memcpy(ti->label, t->info.label, sizeof ti->label);
    memcpy(ti->manufacturerID, t->info.manufacturerID, sizeof ti->manufacturerID);
    memcpy(ti->model, t->info.model, sizeof ti->model);
    memcpy(ti->serialNumber, t->info.serialNumber, sizeof ti->serialNumber);
    int for_what = P11_KIT_URI_FOR_TOKEN;
    if (id != NULL && id_len > 0) {
        CK_ATTRIBUTE a = {CKA_ID, (void *)id, id_len};
        p11_kit_uri_set_attribute(uri, &a);
        for_what = P11_KIT_URI_FOR_OBJECT_ON_TOKEN;
    }
    if (label != NULL && *label) {
        CK_ATTRIBUTE a = {CKA_LABEL, (void *)label, strlen(label)};
        p11_kit_uri_set_attribute(uri, &a);
        for_what = P11_KIT_URI_FOR_OBJECT_ON_TOKEN;
    }
    if (type != NULL) {
        CK_OBJECT_CLASS cls = strcmp(type, "private") == 0  ? CKO_PRIVATE_KEY
                              : strcmp(type, "public") == 0 ? CKO_PUBLIC_KEY
                              : strcmp(type, "cert") == 0   ? CKO_CERTIFICATE
                                                            : CKO_DATA;
        CK_ATTRIBUTE a = {CKA_CLASS, &cls, sizeof cls};
        p11_kit_uri_set_attribute(uri, &a);
        for_what = P11_KIT_URI_FOR_OBJECT_ON_TOKEN;
    }
    char *s = NULL;
    if (p11_kit_uri_format(uri, for_what, &s) != P11_KIT_URI_OK)
        s = NULL;
    p11_kit_uri_free(uri);
    return s;
}
