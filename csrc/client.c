/*
 * client.c - client lifecycle, submission, cancellation, statistics.
 */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HAC_MAX_WORKERS 256

const char *hac_version(void)
{
  return HAC_VERSION_STR;
}

const char *hac_curl_version(void)
{
  return curl_version();
}

long hac_curl_features(void)
{
  return (long)curl_version_info(CURLVERSION_NOW)->features;
}

/* the text fields of hac_config: copied at creation, freed at the end */
static const size_t str_fields[] = {
  offsetof(hac_config, tls_client_cert),
  offsetof(hac_config, tls_client_key),
  offsetof(hac_config, tls_ca_path),
  offsetof(hac_config, tls_ca_file),
  offsetof(hac_config, proxy),
  offsetof(hac_config, proxy_http),
  offsetof(hac_config, proxy_https),
  offsetof(hac_config, no_proxy),
  offsetof(hac_config, tls_ca_blob),
  offsetof(hac_config, tls_pinned_pubkey),
  offsetof(hac_config, resolve),
  offsetof(hac_config, connect_to),
  offsetof(hac_config, unix_socket),
  offsetof(hac_config, user_agent),
  offsetof(hac_config, retry_statuses),
  offsetof(hac_config, rate_limit),
};
#define NSTR (sizeof(str_fields) / sizeof(str_fields[0]))

static const char **str_field(hac_config *cfg, size_t i)
{
  return (const char **)(void *)((char *)cfg + str_fields[i]);
}

/* Point every text field of dst at a copy of src's: 0, or -1 out of
   memory (the fields copied so far are set, the others NULL). */
static int dup_strings(hac_config *dst, const hac_config *src)
{
  size_t i;
  int rc = 0;
  for(i = 0; i < NSTR; i++) {
    const char *s = *str_field((hac_config *)src, i);
    const char **d = str_field(dst, i);
    *d = NULL;
    if(s && !rc) {
      *d = hac_strdup(s);
      if(!*d)
        rc = -1;
    }
  }
  return rc;
}

static void free_cfg_strings(hac_config *cfg)
{
  size_t i;
  for(i = 0; i < NSTR; i++) {
    const char **d = str_field(cfg, i);
    hac_mfree((void *)*d);
    *d = NULL;
  }
}

hac_client *hac_client_new(const hac_config *cfg, int *mm_effective,
                           char *errbuf, size_t errlen)
{
  hac_client *c;
  int rc;
  int i;

  if(cfg->workers < 1 || cfg->workers > HAC_MAX_WORKERS) {
    snprintf(errbuf, errlen, "workers must be 1..%d", HAC_MAX_WORKERS);
    return NULL;
  }
  if(cfg->driver != HAC_DRIVE_THREAD &&
     (cfg->driver != HAC_DRIVE_CALLER || cfg->workers != 1)) {
    snprintf(errbuf, errlen, "driver must be thread, or caller with "
             "workers 1");
    return NULL;
  }
  if(cfg->hash_size < 1 || (cfg->hash_size & (cfg->hash_size - 1))) {
    snprintf(errbuf, errlen, "hash_size must be a power of two");
    return NULL;
  }
  if(cfg->max_connections < 1) {
    snprintf(errbuf, errlen, "max_connections must be > 0");
    return NULL;
  }
  if(cfg->max_body_size < 1) {
    snprintf(errbuf, errlen, "max_body_size must be > 0");
    return NULL;
  }
  if(cfg->connection_timeout < 1) {
    snprintf(errbuf, errlen, "connection_timeout must be > 0");
    return NULL;
  }
  rc = hac_global_init(cfg->memory_manager, mm_effective);
  if(rc) {
    snprintf(errbuf, errlen, "curl_global_init failed: %s",
             curl_easy_strerror((CURLcode)rc));
    return NULL;
  }
  c = hac_calloc(1, sizeof(*c));
  if(!c) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  atomic_init(&c->efd, -1);
  c->pid = getpid();
  c->cfg = *cfg;
  c->cfg.memory_manager = *mm_effective;
  pthread_mutex_init(&c->close_lock, NULL);
  pthread_mutex_init(&c->done_lock, NULL);
  pthread_mutex_init(&c->log_lock, NULL);
  pthread_mutex_init(&c->dest_lock, NULL);
  /* at once: until then c->cfg points at the caller's strings */
  if(dup_strings(&c->cfg, cfg)) {
    snprintf(errbuf, errlen, "out of memory");
    goto fail;
  }
  if(hac_limit_init(c)) {
    snprintf(errbuf, errlen, "rate_limit: out of memory or malformed");
    goto fail;
  }
  c->bufs = hac_bufcache_new();
  if(!c->bufs) {
    snprintf(errbuf, errlen, "out of memory");
    goto fail;
  }
  if(hac_done_init(c)) {
    snprintf(errbuf, errlen, "eventfd failed");
    goto fail;
  }
  c->workers = hac_calloc((size_t)cfg->workers, sizeof(*c->workers));
  if(!c->workers) {
    snprintf(errbuf, errlen, "out of memory");
    goto fail;
  }
  c->nworkers = cfg->workers;
  for(i = 0; i < c->nworkers; i++) {
    c->workers[i].c = c;
    if(hac_worker_start(&c->workers[i])) {
      snprintf(errbuf, errlen, "cannot start worker %d", i);
      goto fail;
    }
  }
  return c;
fail:
  hac_destroy(c);
  return NULL;
}

static void free_chain(struct hac_req *r)
{
  while(r) {
    struct hac_req *next = r->next;
    hac_req_free(r);
    r = next;
  }
}

long hac_submit(hac_client *c, const char *blob, size_t len)
{
  struct hac_list batch[HAC_MAX_WORKERS];
  size_t count[HAC_MAX_WORKERS];
  size_t off = 0;
  long accepted = 0;
  bool refused = false;
  int n = c->nworkers;
  int i;

  if(atomic_load(&c->closed)) {
    hac_discard(blob, len); /* the fds its requests carry are ours now */
    return HAC_E_CLOSED;
  }
  memset(batch, 0, sizeof(batch[0]) * (size_t)n);
  memset(count, 0, sizeof(count[0]) * (size_t)n);
  while(off < len) {
    size_t used;
    struct hac_req *r = hac_req_parse(blob + off, len - off, &used);
    if(!r) {
      for(i = 0; i < n; i++)
        free_chain(batch[i].head);
      hac_discard(blob + off, len - off);
      return used ? HAC_E_NOMEM : HAC_E_FORMAT;
    }
    off += used;
    r->buf.cache = c->bufs;
    i = (int)(r->res.id % (uint64_t)n);
    hac_list_add(&batch[i], r);
    count[i]++;
  }
  for(i = 0; i < n; i++) {
    struct hac_worker *w = &c->workers[i];
    if(!batch[i].head)
      continue;
    pthread_mutex_lock(&w->lock);
    if(w->stop) {
      pthread_mutex_unlock(&w->lock);
      free_chain(batch[i].head);
      refused = true;
      continue;
    }
    atomic_fetch_add_explicit(&w->n_requests, count[i],
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&w->n_inflight, count[i],
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&w->n_queued, count[i], memory_order_relaxed);
    hac_list_splice(&w->sub, &batch[i]);
    pthread_mutex_unlock(&w->lock);
    ev_async_send(w->loop, &w->wake);
    accepted += (long)count[i];
  }
  return refused ? HAC_E_CLOSED : accepted;
}

int hac_cancel(hac_client *c, uint64_t id)
{
  return hac_post(c, id, false);
}

void hac_stats_get(hac_client *c, hac_stats *out)
{
  int i;
  memset(out, 0, sizeof(*out));
  for(i = 0; i < c->nworkers; i++) {
    struct hac_worker *w = &c->workers[i];
    out->requests += atomic_load_explicit(&w->n_requests,
                                          memory_order_relaxed);
    out->started += atomic_load_explicit(&w->n_started, memory_order_relaxed);
    out->dead_connections += atomic_load_explicit(&w->n_dead,
                                                  memory_order_relaxed);
    out->resent += atomic_load_explicit(&w->n_resent, memory_order_relaxed);
    out->replies += atomic_load_explicit(&w->n_replies, memory_order_relaxed);
    out->errors += atomic_load_explicit(&w->n_errors, memory_order_relaxed);
    out->timeouts += atomic_load_explicit(&w->n_timeouts,
                                          memory_order_relaxed);
    out->cancelled += atomic_load_explicit(&w->n_cancelled,
                                           memory_order_relaxed);
    out->inflight += atomic_load_explicit(&w->n_inflight,
                                          memory_order_relaxed);
    out->queued += atomic_load_explicit(&w->n_queued, memory_order_relaxed);
    out->retries += atomic_load_explicit(&w->n_retries, memory_order_relaxed);
    out->hedges += atomic_load_explicit(&w->n_hedges, memory_order_relaxed);
    out->hedge_wins += atomic_load_explicit(&w->n_hedge_wins,
                                            memory_order_relaxed);
    out->shed += atomic_load_explicit(&w->n_shed, memory_order_relaxed);
    out->rate_delayed += atomic_load_explicit(&w->n_rate_delayed,
                                              memory_order_relaxed);
  }
  out->streams = atomic_load_explicit(&c->n_streams, memory_order_relaxed);
  out->streams_paused = atomic_load_explicit(&c->n_paused,
                                             memory_order_relaxed);
  out->completed_pending = atomic_load_explicit(&c->n_done,
                                                memory_order_relaxed);
  out->log_dropped = atomic_load_explicit(&c->log_dropped,
                                          memory_order_relaxed);
  hac_mem_counters(&out->mem_in_use, &out->mem_peak);
}

void hac_close(hac_client *c)
{
  int i;
  pthread_mutex_lock(&c->close_lock);
  if(!atomic_exchange(&c->closed, true) && getpid() == c->pid) {
    for(i = 0; i < c->nworkers; i++)
      hac_worker_stop(&c->workers[i]);
    /* stopped workers take no submission or cancel: free loops and fds */
    for(i = 0; i < c->nworkers; i++)
      if(!c->workers[i].started)
        hac_worker_release(&c->workers[i]);
    if(c->bufs)
      hac_bufcache_flush(c->bufs, true);
    /* every reply is queued: nothing will write the eventfd again, and a
       client closed while replies are still held must not hold an fd */
    hac_done_close_fd(c);
  }
  pthread_mutex_unlock(&c->close_lock);
}

void hac_destroy(hac_client *c)
{
  struct hac_req *r;
  int i;
  if(!c)
    return;
  /* in a forked child the threads are gone and the locks may be held:
     leaking is the only safe choice */
  if(getpid() != c->pid)
    return;
  hac_close(c);
  for(i = 0; i < c->nworkers; i++)
    hac_worker_fini(&c->workers[i]);
  hac_mfree(c->workers);
  while((r = c->done.head)) {
    c->done.head = r->next;
    hac_req_free(r);
  }
  hac_done_fini(c);
  if(c->bufs)
    hac_bufcache_unref(c->bufs);
  hac_buf_free(&c->log);
  hac_dest_fini(c);
  hac_limit_fini(c);
  free_cfg_strings(&c->cfg);
  pthread_mutex_destroy(&c->close_lock);
  pthread_mutex_destroy(&c->done_lock);
  pthread_mutex_destroy(&c->log_lock);
  pthread_mutex_destroy(&c->dest_lock);
  hac_mfree(c);
}
