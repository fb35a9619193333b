/*
 * hist.c - per-origin latency histograms (see hist.h for the layout).
 *
 * The worker records each transfer libcurl completed into its own table,
 * found by the origin key of the request's URL; it is the only writer, so
 * a counter is bumped with a relaxed load and a relaxed store (no lock, no
 * read-modify-write) and a reader on any thread sees each counter whole.
 * A new origin's entry is filled first and then published at the head of
 * the worker's list (release); readers walk that list (acquire), so an
 * entry they see is complete.  Entries live until the client is destroyed.
 */
#include "internal.h"

#include <ctype.h>
#include <string.h>

/* ---- origin keys ---- */

static size_t put(char *out, size_t cap, size_t at, const char *s, size_t n,
                  bool lower)
{
  size_t i;
  for(i = 0; i < n && at + i < cap; i++)
    out[at + i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
  return at + n;
}

size_t hac_origin_key(const char *url, char *out, size_t cap)
{
  const char *sep, *auth, *end, *host, *hend, *port = NULL;
  size_t slen, plen = 0, len, i;
  char num[8];
  unsigned long pn = 0;

  if(!url || !(sep = strstr(url, "://")) || sep == url)
    return 0;
  slen = (size_t)(sep - url);
  for(i = 0; i < slen; i++)
    if(!isalnum((unsigned char)url[i]) && !strchr("+-.", url[i]))
      return 0;
  auth = sep + 3;
  end = auth + strcspn(auth, "/?#");
  host = auth;
  for(i = 0; auth + i < end; i++) /* user:password@ is not the origin */
    if(auth[i] == '@')
      host = auth + i + 1;
  if(*host == '[') {
    const char *close = memchr(host, ']', (size_t)(end - host));
    if(!close)
      return 0;
    hend = close + 1;
    if(hend < end && *hend != ':')
      return 0;
  }
  else
    hend = host + strcspn(host, ":/?#");
  if(hend > end)
    hend = end;
  if(hend == host)
    return 0;
  if(hend < end) {             /* ":port", possibly empty */
    port = hend + 1;
    plen = (size_t)(end - port);
    if(plen > 5)
      return 0;
    for(i = 0; i < plen; i++) {
      if(!isdigit((unsigned char)port[i]))
        return 0;
      pn = pn * 10 + (unsigned long)(port[i] - '0');
    }
    if(pn > 65535)
      return 0;
  }
  if(!plen) {
    if(slen == 4 && !strncasecmp(url, "http", 4))
      pn = 80;
    else if(slen == 5 && !strncasecmp(url, "https", 5))
      pn = 443;
  }
  len = put(out, cap, 0, url, slen, true);
  len = put(out, cap, len, "://", 3, false);
  len = put(out, cap, len, host, (size_t)(hend - host), true);
  if(pn || plen) {
    int n = snprintf(num, sizeof(num), ":%lu", pn);
    len = put(out, cap, len, num, (size_t)n, false);
  }
  if(len + 1 > cap)
    return 0;
  out[len] = '\0';
  return len;
}

/* ---- buckets ---- */

static size_t slot_of(int64_t v)
{
  uint64_t u;
  int m;
  if(v < HAC_HIST_SUB)
    return v < 0 ? 0 : (size_t)v;
  u = (uint64_t)v;
  if(u >> HAC_HIST_BITS)
    return HAC_HIST_SLOTS - 1;
  m = 63 - __builtin_clzll(u);
  return (size_t)(HAC_HIST_SUB + (m - HAC_HIST_SUB_BITS) * HAC_HIST_HALF +
                  (int)((u >> (m - HAC_HIST_SUB_BITS + 1)) - HAC_HIST_HALF));
}

/* a slot's lowest value and width */
static void slot_range(size_t i, uint64_t *lo, uint64_t *width)
{
  size_t k;
  int shift;
  if(i < HAC_HIST_SUB) {
    *lo = i;
    *width = 1;
    return;
  }
  k = i - HAC_HIST_SUB;
  shift = (int)(k / HAC_HIST_HALF) + 1;
  *lo = (uint64_t)(HAC_HIST_HALF + k % HAC_HIST_HALF) << shift;
  *width = (uint64_t)1 << shift;
}

/* the value a slot stands for: its midpoint (at most half a slot, 1/64 of
   the value, from any sample in it) */
static int64_t slot_value(size_t i)
{
  uint64_t lo, width;
  slot_range(i, &lo, &width);
  return (int64_t)(lo + (width - 1) / 2);
}

/* nearest rank: the smallest value with at least ceil(q * total) samples
   at or below it */
static int64_t quantile_of(const uint64_t *slot, uint64_t total, double q)
{
  uint64_t rank, seen = 0;
  size_t i;
  if(!total)
    return -1;
  if(q <= 0)
    q = 0;
  rank = (uint64_t)(q * (double)total);
  if((double)rank < q * (double)total)
    rank++;
  if(rank < 1)
    rank = 1;
  if(rank > total)
    rank = total;
  for(i = 0; i < HAC_HIST_SLOTS; i++) {
    seen += slot[i];
    if(seen >= rank)
      return slot_value(i);
  }
  return slot_value(HAC_HIST_SLOTS - 1);
}

/* ---- the worker's side ---- */

static uint32_t hash_of(const char *s)
{
  uint32_t h = 2166136261u;    /* FNV-1a */
  while(*s)
    h = (h ^ (unsigned char)*s++) * 16777619u;
  return h;
}

static inline void bump(atomic_uint_least64_t *a, uint64_t by)
{
  uint64_t v = atomic_load_explicit(a, memory_order_relaxed);
  atomic_store_explicit(a, v + by, memory_order_relaxed);
}

static void add(struct hac_hist *h, int64_t us)
{
  if(us < 0)
    us = 0;
  bump(&h->count, 1);
  bump(&h->sum, (uint64_t)us);
  bump(&h->slot[slot_of(us)], 1);
}

static struct hac_htab *tab_of(struct hac_worker *w)
{
  return atomic_load_explicit(&w->hist, memory_order_acquire);
}

static struct hac_hent *lookup(struct hac_htab *t, const char *key,
                               uint32_t hash)
{
  struct hac_hent *e = t->bucket[hash % HAC_HIST_HASH];
  for(; e; e = e->hnext)
    if(e->hash == hash && !strcmp(e->key, key))
      return e;
  return NULL;
}

static struct hac_hent *publish(struct hac_htab *t, const char *key,
                                uint32_t hash)
{
  size_t len = strlen(key);
  struct hac_hent *e = hac_calloc(1, sizeof(*e) + len + 1);
  if(!e)
    return NULL;
  memcpy(e->key, key, len + 1);
  e->hash = hash;
  e->lnext = atomic_load_explicit(&t->head, memory_order_relaxed);
  atomic_store_explicit(&t->head, e, memory_order_release);
  e->hnext = t->bucket[hash % HAC_HIST_HASH];
  t->bucket[hash % HAC_HIST_HASH] = e;
  return e;
}

/* The entry of key, made when new (NULL out of memory) */
static struct hac_hent *entry(struct hac_worker *w, const char *key)
{
  struct hac_htab *t = tab_of(w);
  struct hac_hent *e;
  uint32_t hash = hash_of(key);
  if(!t) {
    t = hac_calloc(1, sizeof(*t));
    if(!t)
      return NULL;
    atomic_store_explicit(&w->hist, t, memory_order_release);
  }
  e = lookup(t, key, hash);
  if(e)
    return e;
  if(t->n >= HAC_HIST_ORIGINS) {
    if(!t->other)
      t->other = publish(t, HAC_HIST_OTHER, hash_of(HAC_HIST_OTHER));
    return t->other;
  }
  e = publish(t, key, hash);
  if(e)
    t->n++;
  return e;
}

void hac_hist_record(struct hac_worker *w, const struct hac_req *r)
{
  const int64_t *t = r->res.times;
  char key[HAC_ORIGIN_MAX];
  struct hac_hent *e;
  if(!(r->res.flags & HAC_R_OK))
    return;
  if(!hac_origin_key(r->url, key, sizeof(key)))
    memcpy(key, HAC_HIST_OTHER, sizeof(HAC_HIST_OTHER));
  e = entry(w, key);
  if(!e)
    return;                    /* out of memory: this sample is lost */
  /* a reused connection has no connect or handshake of its own */
  if(!r->reused && t[HAC_T_CONNECT] > 0)
    add(&e->h[HAC_H_CONNECT], t[HAC_T_CONNECT] - t[HAC_T_LOOKUP]);
  if(!r->reused && t[HAC_T_APPCONNECT] > 0)
    add(&e->h[HAC_H_TLS], t[HAC_T_APPCONNECT] - t[HAC_T_CONNECT]);
  add(&e->h[HAC_H_TTFB], t[HAC_T_STARTTRANSFER]);
  add(&e->h[HAC_H_TOTAL], t[HAC_T_TOTAL]);
}

int64_t hac_hist_quantile(struct hac_worker *w, const char *origin_key,
                          int phase, double q)
{
  uint64_t slot[HAC_HIST_SLOTS];
  struct hac_htab *t = tab_of(w);
  struct hac_hent *e;
  const struct hac_hist *h;
  uint64_t total = 0;
  size_t i;
  if(!t || phase < 0 || phase >= HAC_H_COUNT || !origin_key)
    return -1;
  e = lookup(t, origin_key, hash_of(origin_key));
  if(!e)
    return -1;
  h = &e->h[phase];
  if(atomic_load_explicit(&h->count, memory_order_relaxed) <
     HAC_HIST_MIN_SAMPLES)
    return -1;
  for(i = 0; i < HAC_HIST_SLOTS; i++) {
    slot[i] = atomic_load_explicit(&h->slot[i], memory_order_relaxed);
    total += slot[i];
  }
  return quantile_of(slot, total, q);
}

void hac_hist_fini(struct hac_worker *w)
{
  struct hac_htab *t = tab_of(w);
  struct hac_hent *e;
  if(!t)
    return;
  e = atomic_load_explicit(&t->head, memory_order_relaxed);
  while(e) {
    struct hac_hent *next = e->lnext;
    hac_mfree(e);
    e = next;
  }
  hac_mfree(t);
  atomic_store_explicit(&w->hist, NULL, memory_order_relaxed);
}

/* ---- readers (any thread) ---- */

/* The newest entry worker w has published (NULL: none yet).  The acquire
   pairs with publish()'s release: every entry down the lnext chain is
   complete when a reader gets to it. */
static const struct hac_hent *published(struct hac_worker *w)
{
  struct hac_htab *t = tab_of(w);
  return t ? atomic_load_explicit(&t->head, memory_order_acquire) : NULL;
}

/* Add origin's (NULL: every origin's) slots of each phase, from every
   worker, into slot[HAC_H_COUNT][HAC_HIST_SLOTS]; 1 if it has an entry */
static int merge(hac_client *c, const char *origin, uint64_t *slot,
                 uint64_t *sum)
{
  int i, p, found = 0;
  size_t k;
  for(i = 0; i < c->nworkers; i++) {
    const struct hac_hent *e;
    for(e = published(&c->workers[i]); e; e = e->lnext) {
      if(origin && strcmp(e->key, origin))
        continue;
      found = 1;
      for(p = 0; p < HAC_H_COUNT; p++) {
        const struct hac_hist *h = &e->h[p];
        uint64_t *s = slot + (size_t)p * HAC_HIST_SLOTS;
        sum[p] += atomic_load_explicit(&h->sum, memory_order_relaxed);
        for(k = 0; k < HAC_HIST_SLOTS; k++)
          s[k] += atomic_load_explicit(&h->slot[k], memory_order_relaxed);
      }
      if(origin)
        break;
    }
  }
  return found;
}

int hac_latency(hac_client *c, const char *origin, const double *q,
                size_t nq, int64_t *qout, const int64_t *le, size_t nle,
                uint64_t *cum, uint64_t *count, uint64_t *sum)
{
  uint64_t *slot;
  int p, found;
  size_t i, j;
  slot = hac_calloc((size_t)HAC_H_COUNT * HAC_HIST_SLOTS, sizeof(*slot));
  if(!slot)
    return -1;
  memset(sum, 0, sizeof(*sum) * HAC_H_COUNT);
  found = merge(c, origin, slot, sum);
  for(p = 0; p < HAC_H_COUNT; p++) {
    const uint64_t *s = slot + (size_t)p * HAC_HIST_SLOTS;
    uint64_t total = 0, below = 0;
    /* the count is the slots' own total: a reader racing the worker may
       see a count and slots one sample apart, never buckets that do not
       add up */
    for(i = 0; i < HAC_HIST_SLOTS; i++)
      total += s[i];
    count[p] = total;
    for(j = 0; j < nq; j++)
      qout[(size_t)p * nq + j] = quantile_of(s, total, q[j]);
    /* cumulative counts at each bound: the slots whose value is <= le */
    for(i = 0, j = 0; j < nle; j++) {
      while(i < HAC_HIST_SLOTS && slot_value(i) <= le[j])
        below += s[i++];
      cum[(size_t)p * nle + j] = below;
    }
  }
  hac_mfree(slot);
  return found;
}

size_t hac_latency_origins(hac_client *c, char *buf, size_t cap)
{
  size_t used = 0;
  int i;
  for(i = 0; i < c->nworkers; i++) {
    const struct hac_hent *e;
    for(e = published(&c->workers[i]); e; e = e->lnext) {
      size_t n = strlen(e->key) + 1;
      if(used + n <= cap)
        memcpy(buf + used, e->key, n);
      used += n;
    }
  }
  return used;
}
