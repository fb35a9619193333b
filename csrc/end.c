/*
 * end.c - how a request's transfer ends: done or failed onto the worker's
 * finished list, started over (a dead cached connection), tried again
 * (retries=, after its backoff), or one copy of a hedge race dropped for
 * the other.  xfer.c has the mechanics it uses (start, park, detach) and
 * ends requests through it.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* at most this many starts over per request, each within its deadline */
#define HAC_MAX_RESTARTS 3

/* The attempt's outcome for its destination (dest.c): a response below
   500 is a success */
static void dest_done(struct hac_worker *w, struct hac_req *r, int outcome)
{
  curl_off_t us = 0;
  if(!r->dset)
    return;
  if(outcome == HAC_DO_OK && r->easy)
    curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &us);
  hac_dest_end(w, r, outcome, (int64_t)us);
}

static int outcome_of(struct hac_req *r, CURLcode rc)
{
  long status = 0;
  if(rc != CURLE_OK || r->bad)
    return HAC_DO_FAIL;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  return status >= 500 ? HAC_DO_FAIL : HAC_DO_OK;
}

/* Onto the finished list, handed to the completion queue once per loop
   iteration (worker.c). */
static void finish(struct hac_worker *w, struct hac_req *r)
{
  dest_done(w, r, HAC_DO_NONE);
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
  hac_xfer_reset(w, r);
  r->restarts++;
  atomic_fetch_add_explicit(&w->n_resent, 1, memory_order_relaxed);
  hac_xfer_start(w, r, false);
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

/* ----------------------------------------------------------------- race */

/* Free a copy that lost its race (or was stopped by its twin's end): it
   is not delivered, and counted in nothing but its destination. */
static void drop(struct hac_worker *w, struct hac_req *r, int outcome)
{
  dest_done(w, r, outcome);
  hac_xfer_detach(w, r);
  hac_req_free(r);
}

/* r ended with no reply worth giving while its twin races on: drop r,
   the twin carries on alone (and cancel can find it now). */
static void lost_race(struct hac_worker *w, struct hac_req *r, int outcome)
{
  struct hac_req *t = r->twin;
  t->twin = NULL;
  t->res.attempts += r->res.attempts;
  if(ev_is_active(&t->guard) && !t->in_table) {
    hac_table_add(w, t);
    t->in_table = true;
  }
  drop(w, r, outcome);
}

/* r has the reply (or is cancelled): stop its twin. */
static void end_race(struct hac_worker *w, struct hac_req *r)
{
  struct hac_req *t = r->twin;
  r->twin = NULL;
  r->res.attempts += t->res.attempts;
  if(r->is_hedge && !r->in_table && ev_is_active(&r->guard)) {
    hac_table_add(w, r); /* unguard() takes it out with the primary gone */
    r->in_table = true;
  }
  drop(w, t, HAC_DO_NONE);
  if(r->is_hedge) {
    r->res.hedged = 1;
    atomic_fetch_add_explicit(&w->n_hedge_wins, 1, memory_order_relaxed);
  }
}

/* hedge_after passed with no response yet: send the copy, budget
   allowing (to the next destination of a set) */
void hac_xfer_hedge_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
  struct hac_req *r = t->data;
  struct hac_worker *w = r->w;
  struct hac_req *h;
  (void)loop;
  (void)revents;
  if(!r->in_multi || r->responded || r->twin || r->hedge_sent ||
     !hac_hedge_budget(w))
    return;
  h = hac_hedge_copy(r);
  if(!h)
    return;
  r->hedge_sent = true;
  r->twin = h;
  h->twin = r;
  atomic_fetch_add_explicit(&w->n_hedges, 1, memory_order_relaxed);
  hac_xfer_enter(w, h);
}

/* ----------------------------------------------------------------- end */

/* the deadline leaves no time for the next attempt: a timeout reply that
   says what the last attempt met */
static void out_of_time(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  char msg[sizeof(r->errtext)];
  hac_result_done(w, r, rc);
  snprintf(msg, sizeof(msg), "TIMEOUT: the deadline leaves no time for "
           "attempt %u (retries); attempt %u: %.200s",
           (unsigned)r->res.attempts + 1, (unsigned)r->res.attempts,
           r->res.err ? r->res.err : "no reply");
  memcpy(r->errtext, msg, sizeof(msg));
  r->res.err = r->errtext;
  r->res.flags = HAC_R_TIMEOUT;
  memset(r->res.times, 0, sizeof(r->res.times));
}

/* retries=: start r again after the backoff (to another destination of
   its set), or say why not; true when it goes again */
static bool retry(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  long status = 0, ms = 0;
  double now = ev_now(w->loop);
  int d;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  d = hac_retry_check(w, r, rc, status, r->deadline - now, now, &ms);
  if(d == HAC_RETRY_NO || (d == HAC_RETRY_LATE &&
                            (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT)))
    return false; /* the response, or the deadline's own timeout, stands */
  if(d == HAC_RETRY_LATE) {
    out_of_time(w, r, rc);
    dest_done(w, r, HAC_DO_FAIL);
    hac_xfer_detach(w, r);
    hac_result_count(w, r);
    hac_result_fill(r);
    finish(w, r);
    return true;
  }
  dest_done(w, r, outcome_of(r, rc));
  hac_xfer_reset(w, r);
  r->retried++;
  r->rl_done = false;
  atomic_fetch_add_explicit(&w->n_retries, 1, memory_order_relaxed);
  if(ms > 0)
    hac_xfer_park(w, r, (double)ms / 1000.0, HAC_PARK_RETRY);
  else
    hac_xfer_enter(w, r);
  return true;
}

/* libcurl completed the transfer (worker.c reaps it). */
void hac_xfer_done(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  if(rc != CURLE_OK && start_over(w, r, rc))
    return;
  if(r->twin) {
    if(rc != CURLE_OK || r->bad) {
      lost_race(w, r, HAC_DO_FAIL);
      return;
    }
    end_race(w, r);
  }
  if(r->retried < r->retries && retry(w, r, rc))
    return;
  dest_done(w, r, outcome_of(r, rc));
  if(rc == CURLE_OK && r->files)
    rc = hac_files_commit(r); /* the output file into place */
  hac_result_done(w, r, rc);
  hac_result_count(w, r);
  hac_hist_record(w, r);
  hac_xfer_detach(w, r);
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
  int outcome = (rflags & HAC_R_CANCELLED) || !r->in_multi ? HAC_DO_NONE :
    HAC_DO_FAIL;
  if(r->twin) {
    if(!(rflags & HAC_R_CANCELLED)) {
      lost_race(w, r, outcome);
      return;
    }
    end_race(w, r);
    r->res.hedged = 0;
  }
  dest_done(w, r, outcome);
  hac_xfer_detach(w, r);
  hac_result_fail(w, r, rflags, msg);
  finish(w, r);
}
