/*
 * xfer.c - one request's transfer on its worker: admission (the wait for
 * a connection slot), start, the watchdog, starting again, and the end,
 * done or failed, onto the worker's finished list.
 */
#include "internal.h"

#include <stdio.h>

/* at most this many starts over per request, each within its deadline */
#define HAC_MAX_RESTARTS 3

/* ------------------------------------------------------------- watchdog */

/* libcurl did not end the transfer by its deadline (it can lose one after
   a failed allocation): end it here so that every request gets a reply */
static void guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
  struct hac_req *r = t->data;
  (void)loop;
  (void)revents;
  hac_xfer_fail(r->w, r, HAC_R_TIMEOUT, r->mux_waiting ?
                "TIMEOUT: the deadline passed while waiting for an HTTP/2 "
                "connection being opened" : r->waiting ?
                "TIMEOUT: the deadline passed while waiting for a "
                "connection slot (max_connections)" :
                "TIMEOUT: libcurl did not end the transfer by its deadline "
                "(watchdog)");
}

/* r waits or runs: cancel finds it, the watchdog ends it after s seconds */
static void guard(struct hac_worker *w, struct hac_req *r, double s)
{
  hac_table_add(w, r);
  ev_timer_init(&r->guard, guard_cb, s, 0.);
  r->guard.data = r;
  ev_timer_start(w->loop, &r->guard);
}

static void unguard(struct hac_worker *w, struct hac_req *r)
{
  ev_timer_stop(w->loop, &r->guard);
  hac_table_del(w, r);
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

static void start(struct hac_worker *w, struct hac_req *r, bool promoted)
{
  CURLcode rc;
  CURLMcode mrc;
  double left = r->deadline - ev_now(w->loop);
  r->w = w;
  if(left <= 0.0) {
    hac_xfer_fail(w, r, HAC_R_TIMEOUT, r->restarts ?
                  "TIMEOUT: the deadline passed before the request could "
                  "be sent again on a new connection" :
                  "TIMEOUT: the deadline passed while waiting for a "
                  "connection slot (max_connections)");
    return;
  }
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
  if(!r->started) {
    r->started = true;
    atomic_fetch_add_explicit(&w->n_started, 1, memory_order_relaxed);
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
void hac_xfer_admit(struct hac_worker *w, struct hac_req *r)
{
  long ms = r->timeout_ms > 0 ? (long)r->timeout_ms :
    r->timeout_ms == HAC_NO_DEADLINE ? HAC_FOREVER_MS :
    w->c->cfg.connection_timeout;
  r->w = w;
  hac_stream_attach(r);
  r->deadline = ev_now(w->loop) + (double)ms / 1000.0;
  if(w->active < (size_t)w->c->cfg.max_connections && !w->wait.head) {
    start(w, r, false);
    return;
  }
  r->waiting = true;
  hac_queue_add(&w->wait, r);
  guard(w, r, (double)ms / 1000.0);
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
    start(w, r, false);
  }
  while((r = hac_mux_next(w, &cur))) {
    unguard(w, r);
    start(w, r, true);
  }
}

/* ----------------------------------------------------------------- done */

/* Detach from libcurl or a wait, if in one, and recycle the easy handle. */
static void detach(struct hac_worker *w, struct hac_req *r)
{
  if(r->waiting)
    wait_unlink(w, r);
  if(hac_mux_detach(w, r))
    unguard(w, r); /* it waited for an HTTP/2 connection */
  if(!r->easy)
    return;
  if(r->in_multi) {
    w->active--;
    unguard(w, r);
    curl_multi_remove_handle(w->multi, r->easy);
    r->in_multi = false;
  }
  /* only a transfer that completed leaves its options for the next */
  hac_easy_put(w, r, (r->res.flags & HAC_R_OK) && !r->curl_resent);
}

/* Onto the finished list, handed to the completion queue once per loop
   iteration (worker.c). */
static void finish(struct hac_worker *w, struct hac_req *r)
{
  if(r->stream) {
    hac_stream_end(r);
    hac_stream_detach(r);
  }
  if(r->flags & HAC_F_FILES)
    hac_files_end(r); /* fds closed, a temporary file gone */
  hac_list_add(&w->fin, r);
  atomic_fetch_sub_explicit(&w->n_inflight, 1, memory_order_relaxed);
}

/* Run a request again from the start on a fresh easy handle state. */
static void restart(struct hac_worker *w, struct hac_req *r)
{
  detach(w, r);
  r->buf.len = 0;
  r->in_body = false;
  r->too_big = false;
  r->hdr_done = false;
  r->cl_seen = false;
  r->bad = NULL;
  r->errbuf[0] = '\0';
  r->res.body_off = r->res.reason_off = r->res.reason_len = 0;
  /* a new transfer: libcurl counts its connections from 0 again */
  r->sent = r->responded = r->reused = false;
  r->abort = 0;
  r->nconnects = 0;
  r->restarts++;
  atomic_fetch_add_explicit(&w->n_resent, 1, memory_order_relaxed);
  start(w, r, false);
}

/*
 * A failed transfer the worker may start again: stopped before anything
 * was sent (h2c, a suspect connection), or an idempotent request whose
 * cached connection turned out dead (libcurl re-sends such a request on
 * HTTP/1.1, not always on HTTP/2).  true: restarted.
 */
static bool start_over(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  bool again = false;
  if(r->abort == HAC_ABORT_STALE || r->abort == HAC_ABORT_H2C)
    again = rc == CURLE_ABORTED_BY_CALLBACK;
  else if(!r->abort && r->sent && !r->responded && hac_conn_broke(rc) &&
          r->reused) {
    hac_conn_dead(w, r);
    again = hac_req_idempotent(r);
  }
  if(!again || r->restarts >= HAC_MAX_RESTARTS ||
     !hac_files_restartable(r))
    return false;
  /* not onto another cached connection that may be as dead: libcurl's
     check before reuse cannot see that a peer has forgotten one */
  if(r->abort != HAC_ABORT_H2C)
    r->fresh = true;
  restart(w, r);
  return true;
}

/* libcurl completed the transfer (worker.c reaps it). */
void hac_xfer_done(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  if(rc != CURLE_OK && start_over(w, r, rc))
    return;
  if(rc == CURLE_OK && r->files)
    rc = hac_files_commit(r); /* the output file into place */
  hac_result_done(w, r, rc);
  hac_hist_record(w, r);
  detach(w, r);
  hac_result_fill(r);
  finish(w, r);
}

/*
 * End a request that libcurl did not complete: refused before start,
 * cancelled, timed out outside libcurl, or dropped by close().  rflags is
 * 0, HAC_R_TIMEOUT or HAC_R_CANCELLED.
 */
void hac_xfer_fail(struct hac_worker *w, struct hac_req *r, uint32_t rflags,
                   const char *msg)
{
  detach(w, r);
  hac_result_fail(w, r, rflags, msg);
  finish(w, r);
}
