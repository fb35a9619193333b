/*
 * limit.c - per-origin rate limits (the client's rate_limit): each origin
 * hands out one slot per 1/rps seconds (GCRA: a token bucket of one, no
 * burst), shared by the workers under dest_lock.  A request takes the
 * next free slot and waits for it on its guard timer; one whose slot
 * would come after its deadline takes none and waits out its deadline,
 * one that would wait longer than max_queue_wait is shed at once.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hac_rlimit {
  char key[256];               /* "scheme://host:port", lower case */
  double interval;             /* s per request */
  double tat;                  /* monotonic s of the next free slot */
  double rps;
};

static double mono(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The client's rate_limit lines ("origin rps"): 0, -1 out of memory or
   malformed. */
int hac_limit_init(struct hac_client *c)
{
  const char *p = c->cfg.rate_limit;
  size_t n = 0, i = 0;
  if(!p || !*p)
    return 0;
  for(; *p; p++)
    n += *p == '\n';
  n++;
  c->limits = hac_calloc(n, sizeof(*c->limits));
  if(!c->limits)
    return -1;
  for(p = c->cfg.rate_limit; *p && i < n; i++) {
    const char *sp = strchr(p, ' ');
    const char *nl = strchr(p, '\n');
    char *end;
    double rps;
    if(!sp || (nl && sp > nl) || (size_t)(sp - p) >= sizeof(c->limits->key))
      return -1;
    memcpy(c->limits[i].key, p, (size_t)(sp - p));
    rps = strtod(sp + 1, &end);
    if(rps <= 0 || (*end && *end != '\n'))
      return -1;
    c->limits[i].rps = rps;
    c->limits[i].interval = 1.0 / rps;
    p = *end ? end + 1 : end;
  }
  c->nlimits = i;
  return 0;
}

void hac_limit_fini(struct hac_client *c)
{
  hac_mfree(c->limits);
  c->limits = NULL;
  c->nlimits = 0;
}

/*
 * r's slot under its origin's limit, left_s before its deadline and
 * max_queue_wait (0: none) from now: 0 (go now, or no limit), > 0 (wait
 * that long: the slot is taken), HAC_LIMIT_SHED (the wait would pass
 * max_queue_wait) or HAC_LIMIT_LATE (past the deadline); *rps gets the
 * limit.
 */
double hac_limit_take(struct hac_worker *w, struct hac_req *r, double left_s,
                      double mqw_s, double *rps)
{
  struct hac_client *c = w->c;
  struct hac_rlimit *l = NULL;
  char key[256];
  size_t i, n;
  double now, slot, wait;
  *rps = 0;
  if(!c->nlimits)
    return 0;
  n = hac_origin_key(r->url, key, sizeof(key));
  for(i = 0; n && i < c->nlimits; i++)
    if(!strcmp(c->limits[i].key, key))
      l = &c->limits[i];
  if(!l)
    return 0;
  *rps = l->rps;
  pthread_mutex_lock(&c->dest_lock);
  now = mono();
  slot = l->tat > now ? l->tat : now;
  wait = slot - now;
  if(wait >= left_s) {
    pthread_mutex_unlock(&c->dest_lock);
    return HAC_LIMIT_LATE;
  }
  if(mqw_s > 0 && wait > mqw_s) {
    pthread_mutex_unlock(&c->dest_lock);
    return HAC_LIMIT_SHED;
  }
  l->tat = slot + l->interval;
  pthread_mutex_unlock(&c->dest_lock);
  return wait;
}
