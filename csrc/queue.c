/*
 * queue.c - the completion queue, its eventfd, the workers' command queue
 * (cancels, stream resumes) and the curl_verbose text.
 *
 * Workers append finished requests in batches; the eventfd is written only
 * when the queue goes from empty to non-empty, and it is cleared by the
 * drain that empties the queue, so a reader woken once drains everything
 * and no wake-up is ever lost.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HAC_LOG_MAX (1024 * 1024)

int hac_done_init(struct hac_client *c)
{
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  atomic_store(&c->efd, fd);
  return fd < 0 ? -1 : 0;
}

static void efd_signal(int fd);

/*
 * Close the eventfd (hac_close(): no worker writes it any more).  A thread
 * may be inside poll() on it, or about to enter: closing the number under
 * it could make it poll whatever file gets that number next.  So the fd is
 * first unpublished, then made readable (every poll() returns), and closed
 * once no thread is left in hac_wait(); a thread that comes later sees -1.
 */
void hac_done_close_fd(struct hac_client *c)
{
  int fd;
  pthread_mutex_lock(&c->done_lock); /* hac_drain_into() clears it under it */
  fd = atomic_exchange(&c->efd, -1);
  pthread_mutex_unlock(&c->done_lock);
  if(fd < 0)
    return;
  efd_signal(fd);
  while(atomic_load(&c->waiters))
    sched_yield(); /* they return at once: the fd is readable */
  close(fd);
}

void hac_done_fini(struct hac_client *c)
{
  int fd = atomic_exchange(&c->efd, -1);
  if(fd >= 0)
    close(fd);
}

static void efd_signal(int fd)
{
  uint64_t one = 1;
  ssize_t rc;
  do
    rc = write(fd, &one, sizeof(one));
  while(rc < 0 && errno == EINTR);
  /* EAGAIN means the counter is saturated: still readable, fine */
}

static void efd_clear(int fd)
{
  uint64_t v;
  ssize_t rc;
  do
    rc = read(fd, &v, sizeof(v));
  while(rc < 0 && errno == EINTR);
}

/* Append a worker's batch of n finished requests; batch is left empty. */
void hac_done_push(struct hac_client *c, struct hac_list *batch, size_t n)
{
  bool was_empty;
  if(!batch->head)
    return;
  pthread_mutex_lock(&c->done_lock);
  was_empty = !c->done.head;
  hac_list_splice(&c->done, batch);
  atomic_fetch_add_explicit(&c->n_done, n, memory_order_relaxed);
  pthread_mutex_unlock(&c->done_lock);
  if(was_empty)
    hac_done_signal(c);
}

/* Without threads (drive.c) the waiters never poll the eventfd: the
   thread that pushes is the one that waits, or wakes them itself. */
void hac_done_signal(struct hac_client *c)
{
  int fd = atomic_load(&c->efd);
  if(fd >= 0 && c->cfg.driver != HAC_DRIVE_CALLER)
    efd_signal(fd);
}

/* With done_lock: nothing left to drain. */
void hac_done_clear(struct hac_client *c)
{
  int fd = atomic_load(&c->efd);
  if(fd >= 0 && c->cfg.driver != HAC_DRIVE_CALLER)
    efd_clear(fd);
}

/* A cancel or a resume for the worker that owns id. */
int hac_post(struct hac_client *c, uint64_t id, bool resume)
{
  struct hac_worker *w = &c->workers[id % (uint64_t)c->nworkers];
  struct hac_cancel *k;
  if(atomic_load(&c->closed))
    return HAC_E_CLOSED;
  k = hac_malloc(sizeof(*k));
  if(!k)
    return HAC_E_NOMEM;
  k->id = id;
  k->resume = resume;
  pthread_mutex_lock(&w->lock);
  if(w->stop) {
    pthread_mutex_unlock(&w->lock);
    hac_mfree(k);
    return HAC_E_CLOSED;
  }
  k->next = w->cancels;
  w->cancels = k;
  pthread_mutex_unlock(&w->lock);
  ev_async_send(w->loop, &w->wake);
  return 0;
}

int hac_fd(hac_client *c)
{
  return atomic_load(&c->efd);
}

int hac_wait(hac_client *c, int timeout_ms)
{
  struct pollfd pfd;
  int rc;
  if(atomic_load_explicit(&c->n_done, memory_order_relaxed) ||
     atomic_load_explicit(&c->n_news, memory_order_relaxed))
    return 1;
  if(c->cfg.driver == HAC_DRIVE_CALLER)
    return atomic_load(&c->closed) ? 1 : hac_drive_wait(c, timeout_ms);
  if(!timeout_ms)
    return 0; /* n_done is the truth; the eventfd only wakes sleepers */
  /* seq_cst pairs with hac_done_close_fd(): either this sees -1 or the
     closer sees this thread and waits for it */
  atomic_fetch_add(&c->waiters, 1);
  pfd.fd = atomic_load(&c->efd);
  if(pfd.fd < 0) {
    atomic_fetch_sub(&c->waiters, 1);
    return 1; /* closed: the caller drains what is left */
  }
  pfd.events = POLLIN;
  pfd.revents = 0;
  rc = poll(&pfd, 1, timeout_ms);
  atomic_fetch_sub(&c->waiters, 1);
  return rc > 0 ? 1 : 0;
}

/* what a result needs in the data area of hac_drain_into() */
static size_t packed_size(const struct hac_req *r, size_t hold_min)
{
  size_t n = r->res.raw_len < hold_min ? r->res.raw_len : 0;
  if(r->res.err)
    n += strlen(r->res.err);
  return n;
}

size_t hac_drain_into(hac_client *c, hac_rec *recs, hac_result **held,
                      size_t max, char *data, size_t cap, size_t hold_min,
                      size_t *used)
{
  struct hac_req *r;
  size_t n = 0;
  size_t need = 0;
  size_t off = 0;
  size_t i;

  /* take the batch off the queue under the lock, copy without it */
  pthread_mutex_lock(&c->done_lock);
  r = c->done.head;
  while(r && n < max) {
    size_t k = packed_size(r, hold_min);
    if(k > cap - need)
      break;
    need += k;
    held[n] = &r->res;
    n++;
    r = r->next;
  }
  c->done.head = r;
  if(!r) {
    c->done.tail = NULL;
    if(!c->news) /* else the news drain clears it */
      hac_done_clear(c);
  }
  atomic_fetch_sub_explicit(&c->n_done, n, memory_order_relaxed);
  pthread_mutex_unlock(&c->done_lock);

  for(i = 0; i < n; i++) {
    struct hac_req *q = (struct hac_req *)(void *)held[i];
    const hac_result *res = &q->res;
    hac_rec *o = &recs[i];
    o->id = res->id;
    o->raw_len = res->raw_len;
    o->body_off = res->body_off;
    o->reason_off = res->reason_off;
    o->reason_len = res->reason_len;
    memcpy(o->times, res->times, sizeof(o->times));
    o->status = res->status;
    o->curl_code = res->curl_code;
    o->flags = res->flags;
    o->http_version = res->http_version;
    o->written = res->written;
    o->attempts = res->attempts;
    o->hedged = res->hedged;
    o->err_off = -1;
    o->err_len = 0;
    if(res->err) {
      size_t k = strlen(res->err);
      memcpy(data + off, res->err, k);
      o->err_off = (int64_t)off;
      o->err_len = k;
      off += k;
    }
    if(res->raw_len < hold_min) {
      if(res->raw_len)
        memcpy(data + off, res->raw, res->raw_len);
      o->raw_off = (int64_t)off;
      off += res->raw_len;
      held[i] = NULL;
      hac_req_free(q);
    }
    else {
      /* held[i] stays: Python releases it, maybe after the client is gone,
         so the result keeps the buffer cache alive */
      o->raw_off = -1;
      hac_bufcache_ref(q->buf.cache);
    }
  }
  *used = off;
  return n;
}

void hac_release_one(hac_result *res)
{
  struct hac_req *r = (struct hac_req *)(void *)res;
  struct hac_bufcache *bc;
  if(!r)
    return;
  bc = r->buf.cache;
  /* in a forked child a parent's thread may have held the cache lock:
     leaking is the only safe choice (as hac_destroy() does) */
  if(bc && bc->gen != hac_fork_gen())
    return;
  hac_req_free(r);
  if(bc)
    hac_bufcache_unref(bc); /* the reference hac_drain_into() took */
}

void hac_log_add(struct hac_client *c, const char *text, size_t n)
{
  pthread_mutex_lock(&c->log_lock);
  if(c->log.len + n > HAC_LOG_MAX || hac_buf_add(&c->log, text, n))
    atomic_fetch_add_explicit(&c->log_dropped, n, memory_order_relaxed);
  pthread_mutex_unlock(&c->log_lock);
}

char *hac_log_take(hac_client *c, size_t *len)
{
  char *p = NULL;
  pthread_mutex_lock(&c->log_lock);
  if(c->log.len) {
    p = c->log.p;
    *len = c->log.len;
    c->log.p = NULL;
    c->log.len = c->log.cap = 0;
  }
  else
    *len = 0;
  pthread_mutex_unlock(&c->log_lock);
  return p;
}

void hac_free(void *p)
{
  hac_mfree(p);
}
