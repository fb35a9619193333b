/*
 * hedge.c - a hedge: a second copy of an idempotent request that has no
 * response after hedge_after, racing the first; the first complete reply
 * wins and xfer.c drops the other.  Here: whether a request may be
 * hedged, when, the client-wide budget, and the copy itself.
 */
#include "internal.h"

#include <string.h>

/* The q-quantile (0..1) of r's origin's time to first byte on this
   worker, µs, or -1 while it is not known. */
static int64_t percentile(struct hac_worker *w, const struct hac_req *r,
                          double q)
{
  char key[256];
  if(!hac_origin_key(r->url, key, sizeof(key)))
    return -1;
  return hac_hist_quantile(w, key, HAC_H_TTFB, q);
}

/* ms after which r gets its hedge, or -1: never (not idempotent, a
   stream or files, no hedge_after, no percentile known yet) */
long hac_hedge_delay(struct hac_worker *w, const struct hac_req *r)
{
  long ms = r->hedge_after;
  if(!ms || r->is_hedge || r->hedge_sent || !hac_req_idempotent(r) ||
     r->stream || (r->flags & HAC_F_FILES))
    return -1;
  if(ms < 0) {
    int64_t us = percentile(w, r, (double)-ms / 1000.0);
    if(us < 0)
      return -1;
    ms = (long)((us + 999) / 1000);
    if(ms < 1)
      ms = 1;
  }
  return ms;
}

/* one more hedge within the client's hedge_budget share of requests? */
bool hac_hedge_budget(struct hac_worker *w)
{
  struct hac_client *c = w->c;
  uint64_t total = 0, used;
  int i;
  for(i = 0; i < c->nworkers; i++)
    total += atomic_load_explicit(&c->workers[i].n_requests,
                                  memory_order_relaxed);
  used = atomic_load_explicit(&c->hedges_total, memory_order_relaxed);
  if((double)(used + 1) > c->cfg.hedge_budget * (double)total)
    return false;
  atomic_fetch_add_explicit(&c->hedges_total, 1, memory_order_relaxed);
  return true;
}

/* A copy of r as it was submitted, to race it: same id, deadline and
   options, none of r's transfer state.  NULL out of memory. */
struct hac_req *hac_hedge_copy(struct hac_req *r)
{
  struct hac_req *h = hac_malloc(sizeof(*h) + r->data_len);
  if(!h)
    return NULL;
  memset(h, 0, sizeof(*h));
  memcpy(h->data, r->data, r->data_len);
  h->data_len = r->data_len;
  h->res.id = r->res.id;
  h->w = r->w;
  h->timeout_ms = r->timeout_ms;
  h->method = r->method;
  h->flags = r->flags;
  h->url = h->data;
  h->body = h->data + (r->body - r->data);
  h->body_len = r->body_len;
  h->hdr = h->data + (r->hdr - r->data);
  h->hdr_len = r->hdr_len;
  h->opt = h->data + (r->opt - r->data);
  h->opt_len = r->opt_len;
  h->buf.cache = r->buf.cache;
  h->deadline = r->deadline;
  h->started = true; /* counted once, as r */
  h->is_hedge = true;
  h->is_dest = r->is_dest;
  h->didx = -1;
  h->dlast = r->didx >= 0 ? r->didx : r->dlast;
  h->retries = 0;      /* the race is its retry */
  h->retry_backoff = r->retry_backoff;
  h->retry_statuses = r->retry_statuses;
  h->max_queue_wait = r->max_queue_wait;
  return h;
}
