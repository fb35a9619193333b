/*
 * xfer.c - the mechanics of one request's transfers on its worker:
 * admission (the wait for a connection slot), the gates of each attempt
 * (its destination, its rate_limit slot), start, the watchdog, detach.
 * One guard timer per request serves as its watchdog, its wait in a queue
 * and its park (hac_req.park: a retry's backoff, a rate_limit slot).
 * How a transfer ends is end.c's.
 */
#include "internal.h"

#include <stdio.h>

/* ------------------------------------------------------------- watchdog */

/* the guard timer: a park over, a queue wait past max_queue_wait, or the
   deadline (libcurl can lose a transfer after a failed allocation: end it
   here so that every request gets a reply) */
static void guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
  struct hac_req *r = t->data;
  struct hac_worker *w = r->w;
  char msg[200];
  (void)revents;
  if(r->park == HAC_PARK_RETRY || r->park == HAC_PARK_RATE) {
    r->park = HAC_PARK_NONE;
    ev_timer_stop(loop, &r->guard);
    hac_xfer_enter(w, r); /* its rate_limit slot, if any, is now */
    return;
  }
  if(r->park == HAC_PARK_LATE) {
    hac_xfer_fail(w, r, HAC_R_TIMEOUT, "TIMEOUT: the deadline passed while "
                  "waiting for its origin's rate_limit slot");
    return;
  }
  if(r->waiting && r->max_queue_wait > 0 &&
     ev_now(loop) < r->deadline - 0.001) {
    snprintf(msg, sizeof(msg), "QUEUE_WAIT: no connection slot within "
             "max_queue_wait (%ld ms; max_connections %ld per worker): "
             "shed", r->max_queue_wait, w->c->cfg.max_connections);
    atomic_fetch_add_explicit(&w->n_shed, 1, memory_order_relaxed);
    hac_xfer_fail(w, r, 0, msg);
    return;
  }
  hac_xfer_fail(w, r, HAC_R_TIMEOUT, r->mux_waiting ?
                "TIMEOUT: the deadline passed while waiting for an HTTP/2 "
                "connection being opened" : r->waiting ?
                "TIMEOUT: the deadline passed while waiting for a "
                "connection slot (max_connections)" :
                "TIMEOUT: libcurl did not end the transfer by its deadline "
                "(watchdog)");
}

/* r waits or runs: cancel finds it (a hedge only once it races alone),
   its guard fires after s seconds */
static void guard(struct hac_worker *w, struct hac_req *r, double s)
{
  if(!r->in_table && !(r->is_hedge && r->twin)) {
    hac_table_add(w, r);
    r->in_table = true;
  }
  ev_timer_init(&r->guard, guard_cb, s, 0.);
  r->guard.data = r;
  ev_timer_start(w->loop, &r->guard);
}

static void unguard(struct hac_worker *w, struct hac_req *r)
{
  ev_timer_stop(w->loop, &r->guard);
  if(r->in_table) {
    hac_table_del(w, r);
    r->in_table = false;
  }
}

/* wait s seconds on the guard timer for kind (HAC_PARK_*) */
void hac_xfer_park(struct hac_worker *w, struct hac_req *r, double s,
                   uint8_t kind)
{
  r->park = kind;
  guard(w, r, s);
}

/* ---------------------------------------------------------------- start */

/* libcurl refused the request: "<text> (curl [multi ]error <code>)" */
static void fail_code(struct hac_worker *w, struct hac_req *r,
                      const char *text, const char *kind, int code)
{
  char msg[160];
  snprintf(msg, sizeof(msg), "%s (curl %serror %d)", text, kind, code);
  hac_xfer_fail(w, r, 0, msg);
}

/* the destination and the rate_limit slot of this attempt: true to go on,
   false when r was parked or failed */
static bool gates(struct hac_worker *w, struct hac_req *r, double left)
{
  char why[200];
  double rps, wait;
  if(r->is_dest && r->didx < 0 && hac_dest_pick(w, r, why, sizeof(why))) {
    hac_xfer_fail(w, r, 0, why);
    return false;
  }
  if(!w->c->nlimits || r->rl_done)
    return true;
  wait = hac_limit_take(w, r, left, (double)r->max_queue_wait / 1000.0,
                        &rps);
  if(wait == HAC_LIMIT_SHED) {
    snprintf(why, sizeof(why), "RATE_LIMITED: its origin's rate_limit "
             "(%g/s) has no slot within max_queue_wait (%ld ms): shed",
             rps, r->max_queue_wait);
    atomic_fetch_add_explicit(&w->n_shed, 1, memory_order_relaxed);
    hac_xfer_fail(w, r, 0, why);
    return false;
  }
  atomic_fetch_add_explicit(&w->n_rate_delayed, wait != 0.0,
                            memory_order_relaxed);
  if(wait == HAC_LIMIT_LATE) {
    hac_xfer_park(w, r, left, HAC_PARK_LATE);
    return false;
  }
  r->rl_done = true;
  if(wait > 0) {
    hac_xfer_park(w, r, wait, HAC_PARK_RATE);
    return false;
  }
  return true;
}

void hac_xfer_start(struct hac_worker *w, struct hac_req *r, bool promoted)
{
  CURLcode rc;
  CURLMcode mrc;
  double left = r->deadline - ev_now(w->loop);
  long hedge_ms;
  r->w = w;
  if(left <= 0.0) {
    hac_xfer_fail(w, r, HAC_R_TIMEOUT, r->restarts ?
                  "TIMEOUT: the deadline passed before the request could "
                  "be sent again on a new connection" :
                  "TIMEOUT: the deadline passed while waiting for a "
                  "connection slot (max_connections)");
    return;
  }
  if(!promoted && !gates(w, r, left))
    return;
  switch(hac_mux_gate(w, r, promoted)) {
  case HAC_GATE_GO:
    break;
  case HAC_GATE_WAIT: /* for an HTTP/2 connection being opened (mux.c) */
    guard(w, r, left);
    return;
  default:
    hac_xfer_fail(w, r, 0, "out of memory for an HTTP/2 origin");
    return;
  }
  r->run_ms = (long)(left * 1000.0);
  if(r->run_ms < 1)
    r->run_ms = 1;
  rc = hac_easy_attach(w, r);
  if(!r->easy) {
    hac_xfer_fail(w, r, 0, "out of memory for an easy handle");
    return;
  }
  if(rc) {
    if(hac_files_error(r))
      hac_xfer_fail(w, r, 0, hac_files_error(r));
    else
      fail_code(w, r, curl_easy_strerror(rc), "", (int)rc);
    return;
  }
  mrc = curl_multi_add_handle(w->multi, r->easy);
  if(mrc) {
    fail_code(w, r, curl_multi_strerror(mrc), "multi ", (int)mrc);
    return;
  }
  r->in_multi = true;
  w->active++;
  guard(w, r, (double)(r->run_ms + HAC_GRACE_MS) / 1000.0);
  r->res.attempts++;
  if(!r->started) {
    r->started = true;
    atomic_fetch_add_explicit(&w->n_started, 1, memory_order_relaxed);
  }
  if(r->hedge_after && (hedge_ms = hac_hedge_delay(w, r)) >= 0 &&
     (double)hedge_ms / 1000.0 < left) {
    ev_timer_init(&r->hedge_timer, hac_xfer_hedge_cb,
                  (double)hedge_ms / 1000.0, 0.);
    r->hedge_timer.data = r;
    ev_timer_start(w->loop, &r->hedge_timer);
  }
}

/* ------------------------------------------------------------ admission */

static void wait_unlink(struct hac_worker *w, struct hac_req *r)
{
  hac_queue_del(&w->wait, r);
  r->waiting = false;
  unguard(w, r);
}

/*
 * A new request: start it, or queue it while max_connections transfers
 * are in libcurl.  libcurl 7.88 handles a burst of many thousand transfers
 * badly (each pending one rescans the connection cache), so the excess
 * waits here, its deadline running, and is started as slots free up.
 */
void hac_xfer_enter(struct hac_worker *w, struct hac_req *r)
{
  double left = r->deadline - ev_now(w->loop);
  if(w->active < (size_t)w->c->cfg.max_connections && !w->wait.head) {
    hac_xfer_start(w, r, false);
    return;
  }
  r->waiting = true;
  hac_queue_add(&w->wait, r);
  if(r->max_queue_wait > 0 && (double)r->max_queue_wait / 1000.0 < left)
    left = (double)r->max_queue_wait / 1000.0;
  guard(w, r, left > 0 ? left : 0.);
}

void hac_xfer_admit(struct hac_worker *w, struct hac_req *r)
{
  long ms = r->timeout_ms > 0 ? (long)r->timeout_ms :
    r->timeout_ms == HAC_NO_DEADLINE ? HAC_FOREVER_MS :
    w->c->cfg.connection_timeout;
  r->w = w;
  hac_policy_load(w, r);
  hac_stream_attach(r);
  r->deadline = ev_now(w->loop) + (double)ms / 1000.0;
  hac_xfer_enter(w, r);
}

/* Start queued requests while slots are free, then the requests waiting
   for an HTTP/2 connection that can go now (once per loop iteration). */
void hac_xfer_promote(struct hac_worker *w)
{
  struct hac_origin *cur = NULL;
  struct hac_req *r;
  while(w->wait.head && w->active < (size_t)w->c->cfg.max_connections) {
    r = w->wait.head;
    wait_unlink(w, r);
    hac_xfer_start(w, r, false);
  }
  while((r = hac_mux_next(w, &cur))) {
    unguard(w, r);
    hac_xfer_start(w, r, true);
  }
}

/* ----------------------------------------------------------------- done */

/* Detach from libcurl or a wait, if in one, and recycle the easy handle. */
void hac_xfer_detach(struct hac_worker *w, struct hac_req *r)
{
  if(ev_is_active(&r->hedge_timer))
    ev_timer_stop(w->loop, &r->hedge_timer);
  r->park = HAC_PARK_NONE;
  if(r->waiting) {
    hac_queue_del(&w->wait, r);
    r->waiting = false;
  }
  (void)hac_mux_detach(w, r); /* out of its origin's queue, if waiting */
  unguard(w, r); /* whatever it waited on, its timer and table entry */
  if(!r->easy)
    return;
  if(r->in_multi) {
    w->active--;
    curl_multi_remove_handle(w->multi, r->easy);
    r->in_multi = false;
  }
  /* only a transfer that completed leaves its options for the next */
  hac_easy_put(w, r, (r->res.flags & HAC_R_OK) && !r->curl_resent);
}

/* Clear what one transfer left, for the next attempt. */
void hac_xfer_reset(struct hac_worker *w, struct hac_req *r)
{
  hac_xfer_detach(w, r);
  r->buf.len = 0;
  r->in_body = false;
  r->too_big = false;
  r->hdr_done = false;
  r->cl_seen = false;
  r->line_status = 0;
  r->bad = NULL;
  r->errbuf[0] = '\0';
  r->res.body_off = r->res.reason_off = r->res.reason_len = 0;
  /* a new transfer: libcurl counts its connections from 0 again */
  r->sent = r->responded = r->reused = false;
  r->abort = 0;
  r->nconnects = 0;
}
