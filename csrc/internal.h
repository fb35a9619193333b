/*
 * internal.h - private structures of the C core.
 */
#ifndef HAC_INTERNAL_H
#define HAC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <ev.h>

#include "hac.h"

/* set by build_ffi.py from the package version, checked at import */
#ifndef HAC_VERSION_STR
#define HAC_VERSION_STR "unknown"
#endif

/* the watchdog ends a transfer libcurl failed to end this long (ms) after
   its deadline */
#define HAC_GRACE_MS 2000

/* ---- alloc.c: the allocator libcurl and the core share ---- */
int hac_global_init(int want_mm, int *effective);
void *hac_malloc(size_t n);
void *hac_calloc(size_t nmemb, size_t n);
void *hac_realloc(void *p, size_t n);
char *hac_strdup(const char *s);
void hac_mfree(void *p);
void hac_mem_counters(uint64_t *in_use, uint64_t *peak);
unsigned hac_fork_gen(void);

/* ---- buf.c: growable byte buffer ---- */
/* large response buffers kept for reuse by one client (see buf.c) */
#define HAC_CACHE_MIN (8 * 1024)
#define HAC_CACHE_MAX (2 * 1024 * 1024)
#define HAC_CACHE_SLOTS 128
#define HAC_CACHE_BYTES (16 * 1024 * 1024)

struct hac_bufcache {
  pthread_mutex_t lock;
  atomic_size_t refs;          /* the client + every result Python holds */
  unsigned gen;                /* hac_fork_gen() when made */
  bool off;                    /* client closed: cache nothing */
  size_t n;
  size_t bytes;
  char *p[HAC_CACHE_SLOTS];
  size_t cap[HAC_CACHE_SLOTS];
};
struct hac_bufcache *hac_bufcache_new(void);
void hac_bufcache_ref(struct hac_bufcache *bc);
void hac_bufcache_unref(struct hac_bufcache *bc);
void hac_bufcache_flush(struct hac_bufcache *bc, bool off);

struct hac_buf {
  char *p;
  size_t len;
  size_t cap;
  struct hac_bufcache *cache;  /* NULL: plain malloc/free */
};
int hac_buf_add(struct hac_buf *b, const void *data, size_t n);
int hac_buf_reserve(struct hac_buf *b, size_t n);
void hac_buf_free(struct hac_buf *b);

/* ---- one request, from submission to release ---- */
struct hac_worker;

struct hac_req {
  hac_result res;              /* first: Python holds &req->res */
  struct hac_req *next;        /* submit / finished / completion lists */
  struct hac_req *hnext;       /* request table chain */
  struct hac_req *hprev;
  struct hac_worker *w;
  CURL *easy;
  struct curl_slist *hdrs;
  struct hac_buf buf;          /* header block + body as received */
  int64_t timeout_ms;
  uint32_t method;
  uint32_t flags;
  const char *url;
  const char *body;
  size_t body_len;
  const char *hdr;             /* NUL-ended lines */
  size_t hdr_len;
  const char *opt;             /* "<key><value>\0" entries */
  size_t opt_len;
  bool in_body;
  bool in_multi;               /* added to the multi and the table */
  bool too_big;                /* body passed max_body_size */
  bool hdr_done;               /* the blank line ending the headers came */
  bool cl_seen;
  uint64_t cl;                 /* Content-Length of the last response */
  const char *bad;             /* why the response is malformed, or NULL */
  uint32_t shape;              /* see xfer.c shape_of() */
  bool h2_reuse;               /* h2c via CURL_HTTP_VERSION_2_0 (h2c.c) */
  bool h2_retried;             /* already restarted once with prior knowl. */
  struct hac_origin *origin;   /* h2c origin this request counts on */
  ev_timer guard;               /* watchdog: deadline + grace */
  double deadline;             /* ev_now() + timeout, set on arrival */
  long run_ms;                 /* CURLOPT_TIMEOUT_MS: what is left */
  bool waiting;                /* in the worker's admission queue */
  struct hac_req *wnext;
  struct hac_req *wprev;
  char errbuf[CURL_ERROR_SIZE];
  char errtext[CURL_ERROR_SIZE + 64];
  char data[];                 /* url NUL body hdr opt */
};

/* ---- one libcurl socket watched by libev ---- */
struct hac_sock {
  ev_io io;
  struct hac_worker *w;
  struct hac_sock *next;
  struct hac_sock *prev;
};

/* an h2c origin (host:port) a prior-knowledge connection was opened to */
struct hac_origin {
  struct hac_origin *next;
  bool live;
  char key[];
};

struct hac_cancel {
  uint64_t id;
  struct hac_cancel *next;
};

struct hac_worker {
  struct hac_client *c;
  int index;
  pthread_t thread;
  bool started;
  bool lock_ready;

  struct ev_loop *loop;
  ev_async wake;
  ev_timer timer;
  ev_prepare flusher;
  CURLM *multi;
  bool kick;                    /* libcurl asked for a 0 ms timeout */

  /* shared with submitters, under lock */
  pthread_mutex_t lock;
  struct hac_req *sub_head;
  struct hac_req *sub_tail;
  struct hac_cancel *cancels;
  bool stop;

  /* worker-only state */
  struct hac_req **table;
  size_t mask;
  CURL **pool;
  uint32_t *pool_shape;         /* of the last request on each pooled handle */
  struct curl_slist *no_expect; /* "Expect:", shared by bodies w/o headers */
  size_t npool;
  size_t cappool;
  struct hac_sock *socks;
  struct hac_origin *origins;
  size_t active;                /* transfers handed to libcurl */
  struct hac_req *wait_head;    /* admitted when active < max_connections */
  struct hac_req *wait_tail;
  CURL *oom[16];                /* transfers whose socket we could not
                                   watch (out of memory): failed after the
                                   libcurl call returns */
  int noom;
  struct hac_req *fin_head;
  struct hac_req *fin_tail;

  /* read by hac_stats_get() from any thread */
  atomic_uint_least64_t n_requests;
  atomic_uint_least64_t n_replies;
  atomic_uint_least64_t n_errors;
  atomic_uint_least64_t n_timeouts;
  atomic_uint_least64_t n_cancelled;
  atomic_uint_least64_t n_inflight;
  atomic_uint_least64_t n_queued;
};

struct hac_client {
  hac_config cfg;              /* strings owned by the client */
  int nworkers;
  struct hac_worker *workers;
  pid_t pid;
  atomic_bool closed;
  pthread_mutex_t close_lock;

  /* completion queue */
  pthread_mutex_t done_lock;
  struct hac_req *done_head;
  struct hac_req *done_tail;
  atomic_uint_least64_t n_done;
  int efd;

  struct hac_bufcache *bufs;

  /* curl_verbose text */
  pthread_mutex_t log_lock;
  struct hac_buf log;
  atomic_uint_least64_t log_dropped;
};

/* ---- queue.c ---- */
int hac_done_init(struct hac_client *c);
void hac_done_push(struct hac_client *c, struct hac_req *head,
                   struct hac_req *tail, size_t n);
void hac_done_fini(struct hac_client *c);
void hac_log_add(struct hac_client *c, const char *text, size_t n);

/* ---- reqhash.c ---- */
int hac_table_init(struct hac_worker *w, size_t buckets);
void hac_table_add(struct hac_worker *w, struct hac_req *r);
void hac_table_del(struct hac_worker *w, struct hac_req *r);
struct hac_req *hac_table_find(struct hac_worker *w, uint64_t id);
struct hac_req *hac_table_next(struct hac_worker *w, size_t *cursor);
void hac_table_fini(struct hac_worker *w);

/* ---- xfer.c ---- */
struct hac_req *hac_req_parse(const char *blob, size_t len, size_t *used);
void hac_req_free(struct hac_req *r);
void hac_xfer_admit(struct hac_worker *w, struct hac_req *r);
void hac_xfer_start(struct hac_worker *w, struct hac_req *r);
void hac_xfer_promote(struct hac_worker *w);
void hac_xfer_done(struct hac_worker *w, struct hac_req *r, CURLcode rc);
void hac_xfer_fail(struct hac_worker *w, struct hac_req *r, uint32_t rflags,
                   const char *msg);
void hac_pool_fini(struct hac_worker *w);

/* ---- h2c.c ---- */
CURLcode hac_h2c_version(struct hac_worker *w, struct hac_req *r);
bool hac_h2c_retry(struct hac_worker *w, struct hac_req *r, CURLcode rc);
void hac_h2c_fini(struct hac_worker *w);

/* ---- worker.c ---- */
int hac_worker_start(struct hac_worker *w);
void hac_worker_stop(struct hac_worker *w);
void hac_worker_release(struct hac_worker *w);
void hac_worker_fini(struct hac_worker *w);
void hac_worker_finish(struct hac_worker *w, struct hac_req *r);
void hac_worker_fail_oom(struct hac_worker *w);

#endif /* HAC_INTERNAL_H */
