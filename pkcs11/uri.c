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
    if (p11_kit_uri_any_unrecognized(uri)) {
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

char *kb_uri_redact(const char *text)
{
    static const char key[] = "pin-value=";
    size_t n = strlen(text), k = sizeof key - 1;
    /* Each redaction replaces a value by "***": at most 3 bytes more per occurrence. */
    char *out = malloc(2 * n + 4), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        bool at_name = i == 0 || strchr("?&;", text[i - 1]) != NULL;
        if (at_name && strncmp(text + i, key, k) == 0) {
            memcpy(o, "pin-value=***", k + 3);
            o += k + 3;
            i += k + strcspn(text + i + k, "&;");
        } else {
            *o++ = text[i++];
        }
    }
    *o = '\0';
    return out;
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
