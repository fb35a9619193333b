/*
 * retry.c - a request's retry policy: its settings (the client's, or its
 * own options), whether a failed attempt may go again, and the backoff
 * before it does (exponential with full jitter, or the server's
 * Retry-After when it fits).  Every attempt shares the request's one
 * deadline: xfer.c never starts one after it.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* the backoff never grows past this (ms), unless the base is larger */
#define HAC_BACKOFF_CAP 1000
/* a Retry-After is honoured up to this (s); a longer one ends retrying */
#define HAC_RETRY_AFTER_MAX 3600

/* The request's settings, read once when its worker takes it. */
void hac_policy_load(struct hac_worker *w, struct hac_req *r)
{
  const hac_config *cfg = &w->c->cfg;
  long v;
  r->didx = r->dlast = -1;
  r->is_dest = !strncmp(r->data, "dest://", 7);
  r->retries = (uint16_t)cfg->retries;
  r->retry_backoff = cfg->retry_backoff;
  r->retry_statuses = cfg->retry_statuses;
  r->hedge_after = cfg->hedge_after;
  r->max_queue_wait = cfg->max_queue_wait;
  if(!r->opt_len)
    return;
  v = hac_req_opt_long(r, HAC_O_RETRIES, (long)r->retries);
  r->retries = (uint16_t)(v < 0 ? 0 : v > 1000 ? 1000 : v);
  r->retry_backoff = hac_req_opt_long(r, HAC_O_RETRY_BACKOFF,
                                      r->retry_backoff);
  r->retry_statuses = hac_req_opt_str(r, HAC_O_RETRY_STATUSES,
                                      r->retry_statuses);
  r->retry_unsafe = hac_req_opt_long(r, HAC_O_RETRY_UNSAFE, 0) != 0;
  r->hedge_after = hac_req_opt_long(r, HAC_O_HEDGE_AFTER, r->hedge_after);
  r->max_queue_wait = hac_req_opt_long(r, HAC_O_MAX_QUEUE_WAIT,
                                       r->max_queue_wait);
}

/* status is one of "502,503,..." */
static bool status_listed(const char *list, long status)
{
  const char *p = list;
  if(!p || status <= 0)
    return false;
  while(*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if(end == p)
      return false;
    if(v == status)
      return true;
    p = *end == ',' ? end + 1 : end;
  }
  return false;
}

/* transfer errors that another attempt may not have: a connection that
   broke under the request (hac_conn_broke(), as end.c and capture.c
   tell it), and the failures listed here */
static bool transient(CURLcode rc)
{
  if(hac_conn_broke(rc))
    return true;
  switch(rc) {
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_OPERATION_TIMEDOUT:  /* connect_timeout, low_speed_*: the
                                     deadline itself is checked apart */
  case CURLE_SSL_CONNECT_ERROR:
#if LIBCURL_VERSION_NUM >= 0x074900
  case CURLE_PROXY:
#endif
    return true;
  default:
    return false;
  }
}

/* Seconds of the last response's Retry-After (a number or an HTTP date),
   -1 when it has none. */
static long retry_after(struct hac_req *r, double now_s)
{
  const char *p = r->buf.p;
  const char *end = p ? p + (r->in_body ? r->res.body_off : r->buf.len) :
    NULL;
  static const char name[] = "\nretry-after:";
  size_t n = sizeof(name) - 1;
  char val[64];
  size_t k = 0;
  if(!p)
    return -1;
  for(; p + n <= end; p++) {
    if(*p != '\n' || strncasecmp(p, name, n))
      continue;
    p += n;
    while(p < end && (*p == ' ' || *p == '\t'))
      p++;
    while(p < end && *p != '\r' && *p != '\n' && k < sizeof(val) - 1)
      val[k++] = *p++;
    val[k] = '\0';
    if(val[0] >= '0' && val[0] <= '9') {
      char *e;
      long s = strtol(val, &e, 10);
      return *e ? -1 : s;
    }
    else {
      time_t t = curl_getdate(val, NULL);
      if(t == (time_t)-1)
        return -1;
      return (double)t <= now_s ? 0 : (long)((double)t - now_s);
    }
  }
  return -1;
}

static uint64_t next_rand(struct hac_worker *w)
{
  uint64_t x = w->rand;
  if(!x)
    x = (uint64_t)(uintptr_t)w ^ 0x9e3779b97f4a7c15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  w->rand = x;
  return x;
}

/* full jitter: uniform in [0, min(cap, base * 2^(n-1))] */
static long backoff_ms(struct hac_worker *w, const struct hac_req *r)
{
  long base = r->retry_backoff;
  long cap = base > HAC_BACKOFF_CAP ? base : HAC_BACKOFF_CAP;
  long top = base;
  unsigned i;
  if(base <= 0)
    return 0;
  for(i = 0; i < r->retried && top < cap; i++)
    top *= 2;
  if(top > cap)
    top = cap;
  return (long)(next_rand(w) % (uint64_t)(top + 1));
}

/*
 * May the attempt that just ended with rc (and status, when a response
 * came) go again?  HAC_RETRY_NO, or HAC_RETRY_YES with *delay_ms the
 * backoff, or HAC_RETRY_LATE: it may, but not within the deadline (left_s
 * from now).  Before any response byte every method may, when the request
 * was not sent (refused, no connection in time) or is idempotent or the
 * query said retry_unsafe; later failures and retry_statuses only those.
 */
int hac_retry_check(struct hac_worker *w, struct hac_req *r, CURLcode rc,
                    long status, double left_s, double now_s,
                    long *delay_ms)
{
  bool safe = hac_req_idempotent(r) || r->retry_unsafe;
  long after = -1;
  *delay_ms = 0;
  if(r->retried >= r->retries || r->stream || r->too_big)
    return HAC_RETRY_NO;
  if(rc == CURLE_OK) {
    if(r->bad) {
      if(!safe)
        return HAC_RETRY_NO;
    }
    else if(!safe || !status_listed(r->retry_statuses, status))
      return HAC_RETRY_NO;
    if(r->files)
      return HAC_RETRY_NO; /* a body went to the file already */
    after = retry_after(r, now_s);
  }
  else {
    if(!transient(rc) || hac_files_error(r))
      return HAC_RETRY_NO;
    if(r->responded ? !safe || r->files : r->sent && !safe)
      return HAC_RETRY_NO;
    if(!hac_files_restartable(r))
      return HAC_RETRY_NO;
  }
  if(after > HAC_RETRY_AFTER_MAX)
    return HAC_RETRY_NO;
  *delay_ms = after >= 0 ? after * 1000 : backoff_ms(w, r);
  /* an attempt is worth starting only with some time left for it */
  if((double)*delay_ms / 1000.0 + 0.001 >= left_s)
    return HAC_RETRY_LATE;
  return HAC_RETRY_YES;
}
