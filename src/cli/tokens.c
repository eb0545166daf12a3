/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "pkcs11/uri.h"

static const char help[] =
    "usage: keybound tokens [OPTIONS] [URI]\n\n"
    "Lists the tokens of every PKCS#11 module registered with p11-kit (or of\n"
    "--module PATH), optionally only those matching a pkcs11: URI.\n\n"
    "Options:\n" KB_COMMON_HELP;

/* Token flags as words, in the order people look for them. */
static size_t flag_words(const struct kb_token_facts *f, const char **w)
{
    size_t n = 0;
    if (f->login_required)
        w[n++] = "login-required";
    if (f->protected_auth)
        w[n++] = "protected-auth-path";
    if (f->hw_slot)
        w[n++] = "hardware-slot";
    if (f->removable)
        w[n++] = "removable";
    if (f->rng)
        w[n++] = "rng";
    if (f->initialized)
        w[n++] = "initialized";
    if (f->write_protected)
        w[n++] = "write-protected";
    if (f->pin_count_low)
        w[n++] = "pin-count-low";
    if (f->pin_final_try)
        w[n++] = "pin-final-try";
    if (f->pin_locked)
        w[n++] = "pin-locked";
    if (f->pin_to_be_changed)
        w[n++] = "pin-to-be-changed";
    return n;
}

static void print_token(const kb_token *t)
{
    const struct kb_token_facts *f = &t->facts;
    const char *w[16];
    size_t n = flag_words(f, w);
    printf("Token '%s'%s\n", f->label, f->initialized ? "" : " (not initialized)");
    printf("  uri:          %s\n", t->uri);
    printf("  manufacturer: %s\n", f->manufacturer);
    printf("  model:        %s\n", f->model);
    printf("  serial:       %s\n", f->serial);
    printf("  module:       %s (%s)\n", t->module->name, t->module->path);
    printf("  flags:        ");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", w[i]);
    printf("%s\n", n ? "" : "none");
}

static json_object *token_json(const kb_token *t)
{
    const struct kb_token_facts *f = &t->facts;
    json_object *o = json_object_new_object(), *flags = json_object_new_array();
    const char *w[16];
    size_t n = flag_words(f, w);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(flags, json_object_new_string(w[i]));
    json_object_object_add(o, "uri", json_object_new_string(t->uri));
    json_object_object_add(o, "label", json_object_new_string(f->label));
    json_object_object_add(o, "manufacturer", json_object_new_string(f->manufacturer));
    json_object_object_add(o, "model", json_object_new_string(f->model));
    json_object_object_add(o, "serial", json_object_new_string(f->serial));
    json_object_object_add(o, "module", json_object_new_string(t->module->name));
    json_object_object_add(o, "module_path", json_object_new_string(t->module->path));
    json_object_object_add(o, "slot", json_object_new_uint64(t->slot));
    json_object_object_add(o, "flags", flags);
    return o;
}

int kb_cmd_tokens(int argc, char **argv)
{
    struct kb_cli c = {.pin.no_tty = true};
    const char *uri_text;
    int rc = kb_cli_parse_uri_only(&c, argc, argv, "tokens", help, &uri_text);
    if (rc >= 0)
        return rc;

    kb_err err;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    kb_token_list list = {0};
    rc = KB_EXIT_ERROR;
    if ((uri_text && kb_cli_uri(&c, uri_text, &uri, &err) != 0) ||
        kb_cli_load(&c, uri, &p, &err) != 0 || kb_p11_tokens(p, uri, 0, &list, &err) != 0) {
        rc = kb_cli_fail(&err);
        goto out;
    }
    /* A URI that matches nothing is a mistake, as for keys; no token at all is a fact. */
    if (uri != NULL && list.n == 0) {
        rc = kb_cli_no_token(p, uri_text);
        goto out;
    }
    if (kb_cli_json()) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < list.n; i++)
            json_object_array_add(arr, token_json(&list.v[i]));
        json_object *o = json_object_new_object();
        json_object_object_add(o, "tokens", arr);
        kb_cli_print_json(o);
    } else {
        for (size_t i = 0; i < list.n; i++) {
            if (i)
                putchar('\n');
            print_token(&list.v[i]);
        }
        if (list.n == 0)
            fprintf(stderr, "keybound: no token found\n");
    }
    rc = KB_EXIT_OK;
out:
    kb_token_list_free(&list);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    return rc;
}
