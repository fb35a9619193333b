/*
 * buf.c - growable byte buffer on the core's allocator, and the client's
 * cache of large response buffers.
 *
 * Why a cache: glibc gives the top of a heap back to the kernel once more
 * than 128 KiB of it is free, so a client receiving 64 KiB bodies at
 * 64-way concurrency mapped, faulted in and released the same megabytes on
 * every batch (perf: a third of the CPU in page faults).  Buffers of
 * HAC_CACHE_MIN..HAC_CACHE_MAX bytes are kept (at most HAC_CACHE_SLOTS and
 * HAC_CACHE_BYTES per client) when a reply is released and reused for the
 * next large response.  A closed client keeps nothing; the cache itself
 * lives until the client and every reply Python still holds in C are gone
 * (a large reply may outlive its client, see hac_release_one()).
 */
#include "internal.h"

#include <string.h>

#define HAC_BUF_MIN 512

struct hac_bufcache *hac_bufcache_new(void)
{
  struct hac_bufcache *bc = hac_calloc(1, sizeof(*bc));
  if(!bc)
    return NULL;
  pthread_mutex_init(&bc->lock, NULL);
  atomic_init(&bc->refs, 1);
  bc->gen = hac_fork_gen();
  return bc;
}

void hac_bufcache_ref(struct hac_bufcache *bc)
{
  atomic_fetch_add_explicit(&bc->refs, 1, memory_order_relaxed);
}

/* The last reference (the client's, or that of a reply Python holds after
   the client is gone) frees the cache. */
void hac_bufcache_unref(struct hac_bufcache *bc)
{
  if(atomic_fetch_sub_explicit(&bc->refs, 1, memory_order_acq_rel) != 1)
    return;
  hac_bufcache_flush(bc, true);
  pthread_mutex_destroy(&bc->lock);
  hac_mfree(bc);
}

/* A cached buffer of at least want bytes, or NULL. */
static char *cache_take(struct hac_bufcache *bc, size_t want, size_t *cap)
{
  char *p = NULL;
  size_t i;
  pthread_mutex_lock(&bc->lock);
  /* newest first: the most recently released buffer is the warmest */
  for(i = bc->n; i-- > 0;) {
    if(bc->cap[i] >= want) {
      p = bc->p[i];
      *cap = bc->cap[i];
      bc->bytes -= bc->cap[i];
      bc->n--;
      bc->p[i] = bc->p[bc->n];
      bc->cap[i] = bc->cap[bc->n];
      break;
    }
  }
  pthread_mutex_unlock(&bc->lock);
  return p;
}

/* Keep p in the cache; false when it does not fit (the caller frees). */
static bool cache_put(struct hac_bufcache *bc, char *p, size_t cap)
{
  bool kept = false;
  if(cap < HAC_CACHE_MIN || cap > HAC_CACHE_MAX)
    return false;
  pthread_mutex_lock(&bc->lock);
  if(!bc->off && bc->n < HAC_CACHE_SLOTS &&
     bc->bytes + cap <= HAC_CACHE_BYTES) {
    bc->p[bc->n] = p;
    bc->cap[bc->n] = cap;
    bc->n++;
    bc->bytes += cap;
    kept = true;
  }
  pthread_mutex_unlock(&bc->lock);
  return kept;
}

/* Free every cached buffer; with off, keep none from now on. */
void hac_bufcache_flush(struct hac_bufcache *bc, bool off)
{
  size_t i;
  pthread_mutex_lock(&bc->lock);
  for(i = 0; i < bc->n; i++)
    hac_mfree(bc->p[i]);
  bc->n = 0;
  bc->bytes = 0;
  if(off)
    bc->off = true;
  pthread_mutex_unlock(&bc->lock);
}

/* Make room for n more bytes; exact: grow to exactly len + n (a known
   Content-Length), else double.  0, or -1 when memory runs out (b is
   unchanged then). */
static int grow(struct hac_buf *b, size_t n, bool exact)
{
  size_t cap;
  size_t got = 0;
  char *p = NULL;
  if(n > SIZE_MAX - b->len)
    return -1;
  if(exact)
    cap = b->len + n;
  else {
    cap = b->cap ? b->cap : HAC_BUF_MIN;
    while(cap - b->len < n) {
      if(cap > SIZE_MAX / 2)
        return -1;
      cap *= 2;
    }
  }
  if(b->cache && cap >= HAC_CACHE_MIN)
    p = cache_take(b->cache, b->len + n, &got);
  if(p) {
    if(b->len)
      memcpy(p, b->p, b->len);
    if(!b->p || !cache_put(b->cache, b->p, b->cap))
      hac_mfree(b->p);
    b->p = p;
    b->cap = got;
    return 0;
  }
  p = hac_realloc(b->p, cap);
  if(!p)
    return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int hac_buf_reserve(struct hac_buf *b, size_t n)
{
  if(n <= b->cap - b->len)
    return 0;
  return grow(b, n, true);
}

/* Append n bytes; 0 on success, -1 when memory runs out (b unchanged). */
int hac_buf_add(struct hac_buf *b, const void *data, size_t n)
{
  if(n > b->cap - b->len && grow(b, n, false))
    return -1;
  if(n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

void hac_buf_free(struct hac_buf *b)
{
  if(b->p && !(b->cache && cache_put(b->cache, b->p, b->cap)))
    hac_mfree(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
