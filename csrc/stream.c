/*
 * stream.c - streamed responses: the body goes to a buffer Python takes
 * from while the transfer runs, instead of into the result.
 *
 * A stream is made by Python (hac_stream_new) before the request is sent
 * and named in the request's options; it is shared by the request (worker
 * side) and Python, each holding a reference, and by the client's news
 * list while queued there.  The worker appends what libcurl writes and
 * queues the stream as news (once until Python drains the news: one
 * wake-up per batch, not per write); Python takes the whole unread buffer
 * at once (the buffer itself changes hands, nothing is copied in C).
 * Backpressure: when the unread bytes would pass the stream's limit, the
 * write is refused with CURL_WRITEFUNC_PAUSE (libcurl keeps that chunk and
 * stops reading the socket); the take that empties the buffer asks the
 * worker to resume it (only the worker may call curl_easy_pause).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hac_stream {
  pthread_mutex_t lock;        /* data, head, state: worker vs Python */
  struct hac_client *c;
  uint64_t id;                 /* the request's */
  size_t limit;                /* unread bytes before the transfer pauses */
  char *data;                  /* unread body bytes */
  size_t len;
  size_t cap;
  char *head;                  /* the final response's header block */
  size_t head_len;
  int32_t status;
  int32_t http_version;
  uint32_t state;              /* HAC_S_* */
  atomic_int refs;
  struct hac_stream *news_next; /* under c->done_lock */
  bool queued;                 /* in c->news */
};

hac_stream *hac_stream_new(hac_client *c, size_t limit)
{
  struct hac_stream *s = hac_calloc(1, sizeof(*s));
  if(!s)
    return NULL;
  if(pthread_mutex_init(&s->lock, NULL)) {
    hac_mfree(s);
    return NULL;
  }
  s->c = c;
  s->limit = limit ? limit : 1;
  atomic_init(&s->refs, 1);
  return s;
}

static void stream_unref(struct hac_stream *s)
{
  if(atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  pthread_mutex_destroy(&s->lock);
  hac_mfree(s->data);
  hac_mfree(s->head);
  hac_mfree(s);
}

void hac_stream_release(hac_stream *s)
{
  if(s)
    stream_unref(s);
}

/* The request's reference: the stream named in its options ("S" + the
   address in decimal, written by Python from hac_stream_new()). */
void hac_stream_attach(struct hac_req *r)
{
  const char *v = hac_req_opt(r, HAC_O_STREAM);
  struct hac_stream *s;
  if(!v)
    return;
  s = (struct hac_stream *)(uintptr_t)strtoull(v, NULL, 10);
  if(!s)
    return;
  atomic_fetch_add(&s->refs, 1);
  s->id = r->res.id;
  r->stream = s;
  atomic_fetch_add_explicit(&s->c->n_streams, 1, memory_order_relaxed);
}

void hac_stream_detach(struct hac_req *r)
{
  if(r->stream)
    stream_unref(r->stream);
  r->stream = NULL;
}

/* Tell Python: once until it drains the news (the eventfd is written as
   for completions: when there was nothing to drain before). */
static void news(struct hac_stream *s)
{
  struct hac_client *c = s->c;
  bool was_empty;
  pthread_mutex_lock(&c->done_lock);
  if(s->queued) {
    pthread_mutex_unlock(&c->done_lock);
    return;
  }
  was_empty = !c->news && !c->done.head;
  s->queued = true;
  atomic_fetch_add(&s->refs, 1);
  s->news_next = c->news;
  c->news = s;
  atomic_fetch_add_explicit(&c->n_news, 1, memory_order_relaxed);
  pthread_mutex_unlock(&c->done_lock);
  if(was_empty)
    hac_done_signal(c);
}

/* With s->lock: the head is r's header block as it is now; status and
   version from libcurl while the transfer runs, from the result after. */
static void set_head(struct hac_stream *s, struct hac_req *r)
{
  long code = r->res.status;
  long ver = r->res.http_version;
  size_t n = r->in_body ? r->res.body_off : r->buf.len;
  if(s->state & HAC_S_HEAD)
    return;
  if(r->easy) {
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &ver);
  }
  s->head = hac_malloc(n ? n : 1);
  if(!s->head)
    return; /* no head to show early; the reply still has it */
  if(n)
    memcpy(s->head, r->buf.p, n);
  s->head_len = n;
  s->status = (int32_t)code;
  s->http_version = (int32_t)ver;
  s->state |= HAC_S_HEAD;
}

/* The blank line after a response's headers: the head is shown now when
   this response is the last one (not 1xx, not a redirect libcurl will
   follow, not an authentication round it will answer), else at the first
   body byte. */
void hac_stream_headers_done(struct hac_req *r)
{
  struct hac_stream *s = r->stream;
  long code = 0;
  char *url = NULL;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  if(code < 200)
    return;
  curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &url);
  if(code >= 300 && code < 400 && url &&
     hac_req_opt_long(r, HAC_O_FOLLOW, r->w->c->cfg.follow_redirect))
    return;
  if((code == 401 || code == 407) && hac_req_opt(r, HAC_O_USERNAME))
    return;
  pthread_mutex_lock(&s->lock);
  set_head(s, r);
  pthread_mutex_unlock(&s->lock);
  news(s);
}

/* CURLOPT_WRITEFUNCTION's work for a stream. */
size_t hac_stream_write(struct hac_req *r, const char *data, size_t len)
{
  struct hac_stream *s = r->stream;
  size_t need;
  pthread_mutex_lock(&s->lock);
  need = s->len + len; /* under the lock: the reader may just have taken */
  set_head(s, r);
  if(s->len && need > s->limit) {
    /* libcurl keeps this chunk and gives it again after the resume */
    if(!(s->state & HAC_S_PAUSED)) {
      s->state |= HAC_S_PAUSED;
      atomic_fetch_add_explicit(&s->c->n_paused, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);
    news(s);
    return CURL_WRITEFUNC_PAUSE;
  }
  if(need > s->cap) {
    size_t cap = s->cap ? s->cap : 16384;
    char *p;
    while(cap < need)
      cap *= 2;
    p = hac_realloc(s->data, cap);
    if(!p) {
      pthread_mutex_unlock(&s->lock);
      snprintf(r->errbuf, sizeof(r->errbuf), "out of memory for the stream");
      return 0;
    }
    s->data = p;
    s->cap = cap;
  }
  memcpy(s->data + s->len, data, len);
  s->len = need;
  pthread_mutex_unlock(&s->lock);
  news(s);
  return len;
}

/* The request finished (any way): no more data will come. */
void hac_stream_end(struct hac_req *r)
{
  struct hac_stream *s = r->stream;
  pthread_mutex_lock(&s->lock);
  if(r->res.status)
    set_head(s, r);
  if(s->state & HAC_S_PAUSED)
    atomic_fetch_sub_explicit(&s->c->n_paused, 1, memory_order_relaxed);
  s->state = (s->state & ~(uint32_t)HAC_S_PAUSED) | HAC_S_DONE;
  pthread_mutex_unlock(&s->lock);
  atomic_fetch_sub_explicit(&s->c->n_streams, 1, memory_order_relaxed);
  news(s);
}

/* Worker: the consumer emptied the buffer of a paused stream. */
void hac_stream_resume(struct hac_worker *w, uint64_t id)
{
  struct hac_req *r = hac_table_find(w, id);
  struct hac_stream *s = r ? r->stream : NULL;
  bool paused;
  if(!s || !r->easy)
    return;
  pthread_mutex_lock(&s->lock);
  s->state &= ~(uint32_t)HAC_S_RESUMING;
  paused = s->state & HAC_S_PAUSED;
  if(paused) {
    s->state &= ~(uint32_t)HAC_S_PAUSED;
    atomic_fetch_sub_explicit(&s->c->n_paused, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&s->lock);
  if(paused)
    /* may call the write callback at once, which may pause it again */
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

char *hac_stream_take(hac_stream *s, size_t *len, uint32_t *state)
{
  char *p = NULL;
  bool resume;
  pthread_mutex_lock(&s->lock);
  *len = s->len;
  if(s->len) {
    p = s->data;
    s->data = NULL;
    s->len = s->cap = 0;
  }
  *state = s->state;
  resume = (s->state & (HAC_S_PAUSED | HAC_S_DONE)) == HAC_S_PAUSED &&
    !(s->state & HAC_S_RESUMING);
  if(resume)
    s->state |= HAC_S_RESUMING;
  pthread_mutex_unlock(&s->lock);
  if(resume)
    /* out of memory or closing: it stays paused until its deadline,
       cancel or close */
    (void)hac_post(s->c, s->id, true);
  return p;
}

size_t hac_stream_head(hac_stream *s, char *buf, size_t cap, int32_t *status,
                       int32_t *http_version)
{
  size_t n = 0;
  pthread_mutex_lock(&s->lock);
  if(s->state & HAC_S_HEAD) {
    n = s->head_len;
    if(buf && cap >= n && n)
      memcpy(buf, s->head, n);
    *status = s->status;
    *http_version = s->http_version;
  }
  pthread_mutex_unlock(&s->lock);
  return n;
}

size_t hac_stream_news(hac_client *c, uint64_t *ids, size_t max)
{
  size_t n = 0;
  pthread_mutex_lock(&c->done_lock);
  while(c->news && n < max) {
    struct hac_stream *s = c->news;
    c->news = s->news_next;
    s->queued = false;
    ids[n++] = s->id;
    /* the news list's reference, dropped under the lock: once unlocked, a
       worker may queue s again and reuse news_next */
    stream_unref(s);
  }
  atomic_fetch_sub_explicit(&c->n_news, n, memory_order_relaxed);
  if(!c->news && !c->done.head)
    hac_done_clear(c);
  pthread_mutex_unlock(&c->done_lock);
  return n;
}
