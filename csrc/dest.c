/*
 * dest.c - destination sets, in the spirit of Kamailio's dispatcher: a
 * named list of base URLs that dest://NAME/path resolves against, one
 * destination picked per attempt (round robin, smooth weighted round
 * robin, failover in order, or rendezvous hashing of the path), and
 * passive health: max_failures consecutive failed attempts mark a
 * destination down for down_for, after which one real request probes it.
 * The sets are the client's, shared by its workers under dest_lock; a
 * request holds a reference on its set while it has a destination, so a
 * set replaced by hac_dest_define() lives until its last request is done.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct hac_dest {
  char *base;                  /* without a trailing '/' */
  size_t blen;
  long weight;
  long cur;                    /* smooth weighted round robin */
  bool down;
  bool probing;                /* one request is probing it */
  double down_until;           /* monotonic s */
  uint32_t consec;
  uint64_t inflight;
  uint64_t requests;
  uint64_t successes;
  uint64_t failures;
  uint64_t lat_sum;            /* µs of completed attempts */
  uint64_t lat_n;
};

struct hac_dset {
  struct hac_dset *next;
  char *name;
  char *probe_path;
  int algo;
  uint32_t max_failures;
  double down_for;
  unsigned refs;               /* requests holding it */
  bool retired;                /* replaced: freed at refs 0 */
  uint64_t rr;
  size_t n;
  struct hac_dest d[];
};

static double mono(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dset_free(struct hac_dset *s)
{
  size_t i;
  if(!s)
    return;
  for(i = 0; i < s->n; i++)
    hac_mfree(s->d[i].base);
  hac_mfree(s->name);
  hac_mfree(s->probe_path);
  hac_mfree(s);
}

static struct hac_dset **find(struct hac_client *c, const char *name,
                              size_t len)
{
  struct hac_dset **p = &c->dsets;
  for(; *p; p = &(*p)->next)
    if(strlen((*p)->name) == len && !memcmp((*p)->name, name, len))
      return p;
  return p;
}

int hac_dest_define(hac_client *c, const char *name, const char *urls,
                    const long *weights, size_t n, int algorithm,
                    long max_failures, long down_for_ms,
                    const char *probe_path)
{
  struct hac_dset *s, **p;
  const char *u = urls;
  size_t i;
  if(!name || !*name || !urls || !n || n > 10000 || algorithm < 0 ||
     algorithm > HAC_ALG_HASH || max_failures < 1 || down_for_ms < 0)
    return -1;
  s = hac_calloc(1, sizeof(*s) + n * sizeof(s->d[0]));
  if(!s)
    return -1;
  s->n = n;
  s->algo = algorithm;
  s->max_failures = (uint32_t)max_failures;
  s->down_for = (double)down_for_ms / 1000.0;
  s->name = hac_strdup(name);
  s->probe_path = probe_path && *probe_path ? hac_strdup(probe_path) : NULL;
  if(!s->name || (probe_path && *probe_path && !s->probe_path))
    goto fail;
  for(i = 0; i < n; i++) {
    const char *e = strchr(u, '\n');
    size_t len = e ? (size_t)(e - u) : strlen(u);
    if(!len || (!e && i + 1 < n))
      goto fail;
    while(len && u[len - 1] == '/')
      len--;
    s->d[i].base = hac_malloc(len + 1);
    if(!s->d[i].base)
      goto fail;
    memcpy(s->d[i].base, u, len);
    s->d[i].base[len] = '\0';
    s->d[i].blen = len;
    s->d[i].weight = weights ? weights[i] : 1;
    if(s->d[i].weight < 1)
      goto fail;
    u = e ? e + 1 : u + len;
  }
  pthread_mutex_lock(&c->dest_lock);
  p = find(c, name, strlen(name));
  if(*p) {
    struct hac_dset *old = *p;
    s->next = old->next;
    old->next = NULL;
    if(old->refs)
      old->retired = true; /* its last request frees it */
    else
      dset_free(old);
  }
  *p = s;
  pthread_mutex_unlock(&c->dest_lock);
  return 0;
fail:
  dset_free(s);
  return -1;
}

long hac_dest_state(hac_client *c, const char *name, hac_dest_info *out,
                    size_t max)
{
  struct hac_dset *s;
  double now = mono();
  size_t i;
  long n;
  pthread_mutex_lock(&c->dest_lock);
  s = *find(c, name, strlen(name));
  if(!s) {
    pthread_mutex_unlock(&c->dest_lock);
    return -1;
  }
  n = (long)s->n;
  for(i = 0; i < s->n && i < max; i++) {
    const struct hac_dest *d = &s->d[i];
    hac_dest_info *o = &out[i];
    o->state = d->probing ? HAC_DS_PROBING : d->down ? HAC_DS_DOWN :
      HAC_DS_UP;
    o->consecutive_failures = d->consec;
    o->inflight = d->inflight;
    o->requests = d->requests;
    o->successes = d->successes;
    o->failures = d->failures;
    o->latency_us = d->lat_n ? (int64_t)(d->lat_sum / d->lat_n) : 0;
    o->down_left_ms = d->down && d->down_until > now ?
      (int64_t)((d->down_until - now) * 1000.0) : 0;
  }
  pthread_mutex_unlock(&c->dest_lock);
  return n;
}

/* 64-bit FNV-1a of the path, then one mix per destination: rendezvous
   hashing, so a destination going down moves only its own share */
static uint64_t mix(uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

static uint64_t fnv(const char *p)
{
  uint64_t h = 0xcbf29ce484222325ull;
  for(; *p; p++)
    h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
  return h;
}

/* the index of the destination to use, -1 when none is up */
static int choose(struct hac_dset *s, const char *rest, int avoid,
                  double now)
{
  size_t i, k;
  long total = 0;
  int best = -1;
  uint64_t h, score = 0;
  size_t up = 0;
  for(i = 0; i < s->n; i++)
    up += !s->d[i].down;
  /* a destination whose down_for has passed gets one probe */
  for(i = 0; i < s->n; i++) {
    struct hac_dest *d = &s->d[i];
    if(d->down && !d->probing && now >= d->down_until &&
       ((int)i != avoid || !up)) {
      d->probing = true;
      return (int)i;
    }
  }
  if(avoid >= 0 && up == 1 && !s->d[avoid].down)
    avoid = -1; /* the only one up: use it again */
  switch(s->algo) {
  case HAC_ALG_WEIGHTED:
    for(i = 0; i < s->n; i++) {
      struct hac_dest *d = &s->d[i];
      if(d->down || (int)i == avoid)
        continue;
      d->cur += d->weight;
      total += d->weight;
      if(best < 0 || d->cur > s->d[best].cur)
        best = (int)i;
    }
    if(best >= 0)
      s->d[best].cur -= total;
    return best;
  case HAC_ALG_FAILOVER:
    for(i = 0; i < s->n; i++)
      if(!s->d[i].down && (int)i != avoid)
        return (int)i;
    return -1;
  case HAC_ALG_HASH:
    h = fnv(rest);
    for(i = 0; i < s->n; i++) {
      uint64_t sc = mix(h ^ mix(i + 1));
      if(!s->d[i].down && (int)i != avoid && (best < 0 || sc > score)) {
        best = (int)i;
        score = sc;
      }
    }
    return best;
  default:
    for(k = 0; k < s->n; k++) {
      i = (size_t)(s->rr++ % s->n);
      if(!s->d[i].down && (int)i != avoid)
        return (int)i;
    }
    return -1;
  }
}

/*
 * Give r a destination of its set for this attempt (not the previous
 * attempt's when another is up): r->url becomes the destination's base
 * followed by the request's path.  0, or -1 with why filled: no such set,
 * every destination down, out of memory.
 */
int hac_dest_pick(struct hac_worker *w, struct hac_req *r, char *why,
                  size_t cap)
{
  struct hac_client *c = w->c;
  const char *name = r->data + 7;
  const char *rest = name + strcspn(name, "/?#");
  struct hac_dset *s;
  struct hac_dest *d;
  double now = mono();
  char *url;
  size_t rlen = strlen(rest);
  size_t off;
  int i;

  pthread_mutex_lock(&c->dest_lock);
  s = *find(c, name, (size_t)(rest - name));
  if(!s) {
    pthread_mutex_unlock(&c->dest_lock);
    snprintf(why, cap, "DESTINATIONS: no destination set named '%.*s'",
             (int)(rest - name > 64 ? 64 : rest - name), name);
    return -1;
  }
  i = choose(s, rest, r->dlast, now);
  if(i < 0) {
    double next = 0;
    size_t k;
    for(k = 0; k < s->n; k++)
      if(!s->d[k].probing && (next == 0 || s->d[k].down_until < next))
        next = s->d[k].down_until;
    pthread_mutex_unlock(&c->dest_lock);
    snprintf(why, cap, "DESTINATIONS_DOWN: every destination of set '%s' "
             "is down (%zu of %zu); the next may be probed in %.1f s",
             s->name, s->n, s->n, next > now ? next - now : 0.0);
    return -1;
  }
  d = &s->d[i];
  url = hac_malloc(d->blen + rlen + 2);
  if(!url) {
    if(d->probing && d->down)
      d->probing = false;
    pthread_mutex_unlock(&c->dest_lock);
    snprintf(why, cap, "out of memory for a destination URL");
    return -1;
  }
  memcpy(url, d->base, d->blen);
  off = d->blen;
  if(*rest != '/')
    url[off++] = '/';
  memcpy(url + off, rest, rlen + 1);
  d->inflight++;
  d->requests++;
  s->refs++;
  pthread_mutex_unlock(&c->dest_lock);
  hac_mfree(r->dest_url);
  r->dest_url = url;
  r->url = url;
  r->dset = s;
  r->didx = i;
  return 0;
}

/*
 * The attempt on r's destination ended: HAC_DO_OK (a response below 500),
 * HAC_DO_FAIL (no response, or 5xx: counts toward max_failures) or
 * HAC_DO_NONE (cancelled, lost a race, started over: counts for nothing).
 */
void hac_dest_end(struct hac_worker *w, struct hac_req *r, int outcome,
                  int64_t us)
{
  struct hac_client *c = w->c;
  struct hac_dset *s = r->dset;
  struct hac_dest *d;
  if(!s)
    return;
  pthread_mutex_lock(&c->dest_lock);
  d = &s->d[r->didx];
  d->inflight--;
  if(outcome == HAC_DO_OK) {
    d->successes++;
    d->consec = 0;
    d->down = d->probing = false;
    if(us > 0) {
      d->lat_sum += (uint64_t)us;
      d->lat_n++;
    }
  }
  else if(outcome == HAC_DO_FAIL) {
    d->failures++;
    d->consec++;
    if(d->probing || (!d->down && d->consec >= s->max_failures)) {
      d->down = true;
      d->down_until = mono() + s->down_for;
    }
    d->probing = false;
  }
  else if(d->probing && d->down)
    d->probing = false; /* another request may probe it */
  if(!--s->refs && s->retired)
    dset_free(s);
  pthread_mutex_unlock(&c->dest_lock);
  r->dset = NULL;
  r->dlast = r->didx;
  r->didx = -1;
}

void hac_dest_fini(struct hac_client *c)
{
  while(c->dsets) {
    struct hac_dset *s = c->dsets;
    c->dsets = s->next;
    dset_free(s);
  }
}
