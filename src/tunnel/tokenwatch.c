/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include "pkcs11/recovery.h"
#include "src/util/log.h"

/* A worker's signature found the module lost (recovery.h): wake the control loop, which
 * alone makes and drops signers. */
static void on_lost_hook(void *arg)
{
    struct ctx *x = arg;
    ev_async_send(x->loop, &x->lost_w);
}

static void on_lost(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    if (!ev_is_active(&x->recover)) {
        kb_log(KB_LOG_INFO, "connections that need the token fail at once meanwhile; resumed "
                            "and established ones go on");
        ev_timer_again(loop, &x->recover);
    }
}

static void on_recover(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    kb_err err;
    if (kb_tun_token_recover(x, &err) == 0) {
        ev_timer_stop(loop, w);
        return;
    }
    kb_log(KB_LOG_DEBUG, "%s", err.msg);
}

int kb_tun_token_recover(struct ctx *x, kb_err *err)
{
    if (!kb_p11_any_lost(x->env->p11))
        return 0;
    if (kb_p11_recover(x->env->p11, x->env->pin, err) != 0)
        return -1;
    kb_log(KB_LOG_INFO, "the token is back: signing again");
    return 0;
}

void kb_tun_tokenwatch_start(struct ctx *x)
{
    ev_async_init(&x->lost_w, on_lost);
    ev_async_start(x->loop, &x->lost_w);
    /* Once a second: a TPM restarted by its resource manager is back within that. */
    ev_init(&x->recover, on_recover);
    x->recover.repeat = 1;
    kb_p11_set_lost_hook(on_lost_hook, x);
}

void kb_tun_tokenwatch_stop(struct ctx *x)
{
    kb_p11_set_lost_hook(NULL, NULL);
    ev_timer_stop(x->loop, &x->recover);
    ev_async_stop(x->loop, &x->lost_w);
}
