/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pkcs11/attrs.h"
#include "pkcs11/objects.h"
#include "pkcs11/uri.h"

static const char help[] =
    "usage: keybound keys [OPTIONS] [URI]\n\n"
    "Lists the private keys on the tokens (or those matching a pkcs11: URI) with their\n"
    "protection attributes, and the certificates that belong to each key. Tokens that need a\n"
    "login are logged into when a PIN source is given or a terminal can ask for it.\n\n"
    "Options:\n" KB_COMMON_HELP;

/* A protection attribute as a word for each value: what a help-desk person reads. */
static const char *word(enum kb_tri v, const char *yes, const char *no, const char *unknown)
{
    return v == KB_TRI_TRUE ? yes : v == KB_TRI_FALSE ? no : unknown;
}

static size_t protection_words(const struct kb_key_facts *f, const char **w)
{
    size_t n = 0;
    w[n++] = word(f->sensitive, "sensitive", "NOT-SENSITIVE", "sensitive-unknown");
    w[n++] = word(f->extractable, "EXTRACTABLE", "not-extractable", "extractable-unknown");
    w[n++] = word(f->never_extractable, "never-extractable", "WAS-EXTRACTABLE",
                  "never-extractable-unknown");
    w[n++] = word(f->always_sensitive, "always-sensitive", "WAS-NOT-SENSITIVE",
                  "always-sensitive-unknown");
    w[n++] = word(f->local, "generated-on-token", "IMPORTED", "origin-unknown");
    w[n++] = word(f->private_obj, "private", "PUBLIC-OBJECT", "private-unknown");
    if (f->always_authenticate == KB_TRI_TRUE)
        w[n++] = "always-authenticate";
    if (f->sign != KB_TRI_TRUE)
        w[n++] = "CANNOT-SIGN";
    return n;
}

static void print_cert(const kb_cert *c, const char *indent)
{
    char nb[32], na[32], fp[65];
    if (!c->parsed) {
        printf("%scertificate '%s': not an X.509 certificate keybound can read\n", indent,
               c->label);
        return;
    }
    kb_cli_time(c->not_before, nb, sizeof nb);
    kb_cli_time(c->not_after, na, sizeof na);
    kb_hex(c->sha256, 32, fp);
    printf("%scertificate '%s'%s\n", indent, c->label,
           c->id_mismatch ? " (SAME ID, OTHER KEY)" : "");
    printf("%s  subject:  %s\n", indent, c->subject);
    printf("%s  issuer:   %s\n", indent, c->issuer);
    printf("%s  valid:    %s to %s\n", indent, nb, na);
    printf("%s  sha256:   %s\n", indent, fp);
    printf("%s  uri:      %s\n", indent, c->uri);
}

static void print_key(const kb_objects *o, size_t i)
{
    const kb_key *k = &o->keys[i];
    const struct kb_key_facts *f = &k->facts;
    char type[32], id[2 * KB_ID_MAX + 1];
    const char *w[10];
    kb_key_type_name(f, type, sizeof type);
    kb_hex(f->id, f->id_len, id);
    size_t n = protection_words(f, w);
    printf("Key '%s' (%s) on token '%s'\n", f->label, type, k->token->facts.label);
    printf("  uri:        %s\n", k->uri);
    printf("  id:         %s\n", id);
    printf("  protection: ");
    for (size_t j = 0; j < n; j++)
        printf("%s%s", j ? ", " : "", w[j]);
    putchar('\n');
    const char *note = kb_facts_source_note(k->token->module->facts_source);
    if (note != NULL)
        printf("  facts:      %s\n", note);
    size_t certs = 0;
    for (size_t j = 0; j < o->n_certs; j++)
        if (o->certs[j].key == (long)i) {
            print_cert(&o->certs[j], "  ");
            certs++;
        }
    if (certs == 0)
        printf("  no certificate\n");
}

static json_object *tri_json(enum kb_tri v)
{
    return v == KB_TRI_UNKNOWN ? NULL : json_object_new_boolean(v == KB_TRI_TRUE);
}

static json_object *cert_json(const kb_cert *c)
{
    json_object *o = kb_cli_cert_json(c);
    char id[2 * KB_ID_MAX + 1];
    kb_hex(c->id, c->id_len, id);
    json_object_object_add(o, "uri", json_object_new_string(c->uri));
    json_object_object_add(o, "token", json_object_new_string(c->token->facts.label));
    json_object_object_add(o, "label", json_object_new_string(c->label));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "parsed", json_object_new_boolean(c->parsed));
    json_object_object_add(o, "ca", c->parsed ? json_object_new_boolean(c->is_ca) : NULL);
    json_object_object_add(o, "id_matches_other_key", json_object_new_boolean(c->id_mismatch));
    return o;
}

static json_object *key_json(const kb_objects *o, size_t i)
{
    const kb_key *k = &o->keys[i];
    const struct kb_key_facts *f = &k->facts;
    json_object *j = json_object_new_object(), *certs = json_object_new_array();
    char type[32], id[2 * KB_ID_MAX + 1];
    kb_key_type_name(f, type, sizeof type);
    kb_hex(f->id, f->id_len, id);
    json_object_object_add(j, "uri", json_object_new_string(k->uri));
    json_object_object_add(j, "token", json_object_new_string(k->token->facts.label));
    json_object_object_add(j, "label", json_object_new_string(f->label));
    json_object_object_add(j, "id", json_object_new_string(id));
    json_object_object_add(j, "type", json_object_new_string(type));
    json_object_object_add(j, "bits", json_object_new_int((int)f->bits));
    json_object_object_add(j, "sensitive", tri_json(f->sensitive));
    json_object_object_add(j, "extractable", tri_json(f->extractable));
    json_object_object_add(j, "never_extractable", tri_json(f->never_extractable));
    json_object_object_add(j, "always_sensitive", tri_json(f->always_sensitive));
    json_object_object_add(j, "local", tri_json(f->local));
    json_object_object_add(j, "private", tri_json(f->private_obj));
    json_object_object_add(j, "always_authenticate", tri_json(f->always_authenticate));
    json_object_object_add(j, "sign", tri_json(f->sign));
    json_object_object_add(
        j, "facts_source",
        json_object_new_string(kb_facts_source_name(k->token->module->facts_source)));
    for (size_t c = 0; c < o->n_certs; c++)
        if (o->certs[c].key == (long)i)
            json_object_array_add(certs, cert_json(&o->certs[c]));
    json_object_object_add(j, "certificates", certs);
    return j;
}

static void print_objects(const kb_objects *o)
{
    if (kb_cli_json()) {
        json_object *root = json_object_new_object(), *keys = json_object_new_array(),
                    *other = json_object_new_array();
        for (size_t i = 0; i < o->n_keys; i++)
            json_object_array_add(keys, key_json(o, i));
        for (size_t i = 0; i < o->n_certs; i++)
            if (o->certs[i].key < 0)
                json_object_array_add(other, cert_json(&o->certs[i]));
        json_object_object_add(root, "keys", keys);
        json_object_object_add(root, "other_certificates", other);
        /* A script must not take a list without the private keys for the whole token. */
        json_object_object_add(root, "hidden_private_keys",
                               json_object_new_int64((int64_t)o->hidden_private));
        kb_cli_print_json(root);
        return;
    }
    for (size_t i = 0; i < o->n_keys; i++) {
        if (i)
            putchar('\n');
        print_key(o, i);
    }
    bool header = false;
    for (size_t i = 0; i < o->n_certs; i++) {
        if (o->certs[i].key >= 0)
            continue;
        if (!header)
            printf("%sCertificates without a key here (CA or chain certificates):\n",
                   o->n_keys ? "\n" : "");
        header = true;
        print_cert(&o->certs[i], "  ");
    }
}

int kb_cmd_keys(int argc, char **argv)
{
    struct kb_cli c = {0};
    const char *uri_text;
    int rc = kb_cli_parse_uri_only(&c, argc, argv, "keys", help, &uri_text);
    if (rc >= 0)
        return rc;

    kb_err err;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list tokens = {0};
    kb_objects objs = {0};
    rc = KB_EXIT_ERROR;
    if ((uri_text && kb_cli_uri(&c, uri_text, &uri, &err) != 0) ||
        kb_cli_load(&c, uri, &p, &err) != 0 ||
        kb_objects_collect(p, uri, &c.pin, true, &tokens, &objs, &err) != 0) {
        rc = kb_cli_fail(&err);
        goto out;
    }
    if (uri != NULL && tokens.n == 0) {
        rc = kb_cli_no_token(p, uri_text);
        goto out;
    }
    if (uri != NULL && kb_uri_has_object(uri) && objs.n_keys == 0 && objs.n_certs == 0) {
        char *shown = kb_uri_redact(uri_text);
        kb_err_set(&err,
                   "URI '%s' matches no key or certificate on %zu token%s (first: '%s'); "
                   "'keybound keys' without a URI lists what is there%s",
                   shown ? shown : "?", tokens.n, tokens.n == 1 ? "" : "s", tokens.v[0].facts.label,
                   kb_objects_hint(&objs));
        free(shown);
        rc = kb_cli_fail(&err);
        goto out;
    }
    print_objects(&objs);
    kb_cli_hidden_keys(objs.hidden_private, objs.pin_withheld ? kb_objects_hint(&objs) : NULL);
    rc = KB_EXIT_OK;
out:
    kb_objects_free(&objs);
    kb_token_list_free(&tokens);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}
