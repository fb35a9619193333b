/*
 * internal.h - private structures of the C core.
 *
 * Who calls whom: each file calls only the files below it, never one
 * above (libcurl calls the callbacks that easy.c and worker.c hand it):
 *
 *   client.c    client lifecycle, submission, cancel, workers, stats
 *   worker.c    a worker thread: libev loop, submissions (ev_async), the
 *               timer glue, drive() of the multi handle
 *   sock.c      libcurl's sockets as libev watchers, one per connection
 *   end.c       how a transfer ends: done/fail (onto the worker's
 *               finished list), started over, retried, a hedge race
 *   xfer.c      one transfer's mechanics: admission, gates (destination,
 *               rate limit), start, watchdog and parks, detach; it ends
 *               requests through end.c (the two call each other)
 *   easy.c      easy-handle pool, options per request shape
 *   tls.c       verification, client certificate, trust store, pins
 *   transport.c proxy, DNS overrides, Unix socket, phase bounds
 *   share.c     the worker's TLS session share, its default trust store
 *   capture.c   libcurl's header/body/debug/pre-request callbacks, the
 *               result (status, times, error text)
 *   mux.c       origins whose requests share HTTP/2 connections; it
 *               returns decisions, xfer.c acts on them
 *   conn.c      the connections libcurl opened for a worker
 *   stream.c    streamed bodies: the buffer Python takes from, pauses
 *   reqhash.c   a worker's id -> request table
 *   queue.c     completion queue and its eventfd, curl_verbose text
 *   retry.c     a request's retry policy: when, how long to back off
 *   hedge.c     a hedge: the copy of a slow request racing it
 *   dest.c      destination sets (dest://), their health
 *   limit.c     per-origin rate limits
 *   hist.c      per-origin latency histograms (hist.h)
 *   fork.c      a parent's client abandoned in a forked child
 *   req.c       wire form -> request, its options
 *   files.c     bodies that never pass through Python: output.c (to a
 *               file), upload.c (from a file or a pipe), form.c (MIME);
 *               they read a request's options themselves (files.h)
 *   buf.c       byte buffers and their cache
 *   alloc.c     the allocator libcurl and the core share
 *
 * list.h (the FIFOs) is header-only; proto.h declares the files' functions.
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

/* CURLOPT_PREREQFUNCTION (7.80.0) is how a request is never sent twice */
#if LIBCURL_VERSION_NUM < 0x075000
#error "http_async_client needs libcurl 7.80.0 or newer"
#endif

/* set by build_ffi.py from the package version, checked at import */
#ifndef HAC_VERSION_STR
#define HAC_VERSION_STR "unknown"
#endif

/* the watchdog ends a transfer libcurl failed to end this long (ms) after
   its deadline */
#define HAC_GRACE_MS 2000
/* the deadline of a stream that has none (timeout=0): ten years */
#define HAC_FOREVER_MS 315360000000L

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
  struct curl_slist *lists[2]; /* its own resolve, connect_to (transport.c) */
  struct hac_stream *stream;   /* a streamed body goes there (stream.c) */
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
  int32_t line_status;         /* the code in its last status line */
  const char *bad;             /* why the response is malformed, or NULL */
  uint32_t shape;              /* see easy.c shape_of() */
  /* what each attempt's pre-request callback saw (capture.c on_prereq) */
  bool sent;                   /* the request went out in this transfer */
  bool responded;              /* response bytes since it last went out */
  bool reused;                 /* its connection was a cached one */
  bool started;                /* counted in n_started */
  bool curl_resent;            /* libcurl sent it again (its own retry) */
  bool fresh;                  /* start over on a new connection */
  uint8_t abort;               /* HAC_ABORT_*: why on_prereq stopped it */
  uint8_t restarts;            /* times the worker started it again */
  long nconnects;              /* CURLINFO_NUM_CONNECTS at the last send */
  long lport;                  /* its connection's local port, */
  long pport;                  /* peer port */
  char pip[48];                /* and peer address */
  /* mux.c: requests that share HTTP/2 connections */
  uint8_t mux;                 /* HAC_MUX_* */
  bool mux_h2c;                /* h2c on libcurl 7.88 */
  bool mux_opening;            /* counted in origin->opening */
  bool mux_joining;            /* counted in origin->joining */
  bool mux_on;                 /* counted in origin->on_conns */
  bool mux_waiting;            /* in origin's queue (wnext, wprev) */
  bool mux_force_open;         /* start again opening a connection */
  bool mux_learned;            /* its first status line was looked at */
  struct hac_origin *origin;   /* the origin it counts on */
  struct hac_files *files;     /* files.h: set up by hac_files_setup() */
  bool output;                 /* the body goes to files->out_fd */
  ev_timer guard;               /* watchdog: deadline + grace */
  double deadline;             /* ev_now() + timeout, set on arrival */
  long run_ms;                 /* CURLOPT_TIMEOUT_MS: what is left */
  bool waiting;                /* in the worker's admission queue */
  struct hac_req *wnext;       /* admission or origin queue (list.h) */
  struct hac_req *wprev;
  bool in_table;               /* in the request table (cancel finds it) */
  /* resilience: retry.c, hedge.c, dest.c, limit.c */
  uint8_t park;                /* HAC_PARK_*: on its guard timer for that */
  bool rl_done;                /* this attempt has its rate_limit slot */
  bool retry_unsafe;
  bool is_hedge;               /* the hedge copy of a request */
  bool hedge_sent;             /* its one hedge was sent */
  bool is_dest;                /* dest://: a destination picked per attempt */
  uint16_t retries;            /* retries allowed */
  uint16_t retried;            /* retries started */
  long retry_backoff;          /* ms */
  long hedge_after;            /* ms; < 0: -(percentile x 10); 0: none */
  long max_queue_wait;         /* ms; 0: none */
  const char *retry_statuses;  /* "502,503" or NULL */
  struct hac_req *twin;        /* the other copy while a hedge races */
  ev_timer hedge_timer;
  struct hac_dset *dset;       /* the set of its current destination */
  int didx;                    /* that destination, -1: none */
  int dlast;                   /* the previous attempt's, -1: none */
  char *dest_url;              /* the URL of this attempt (hac_malloc) */
  size_t data_len;             /* bytes of data[] (hedge.c copies it) */
  char errbuf[CURL_ERROR_SIZE];
  char errtext[CURL_ERROR_SIZE + 128];
  char data[];                 /* url NUL body hdr opt */
};

/* hac_req.park: what its guard timer waits for (xfer.c) */
#define HAC_PARK_NONE 0
#define HAC_PARK_RETRY 1       /* the backoff before its next attempt */
#define HAC_PARK_RATE 2        /* its rate_limit slot */
#define HAC_PARK_LATE 3        /* its deadline: no rate_limit slot before */

#include "list.h"

/* ---- one libcurl socket watched by libev ----
   It outlives the transfers on its connection: when libcurl stops
   watching the socket of a connection it keeps, the watcher is parked
   (still armed for EV_READ, so reuse costs libev no epoll_ctl) and taken
   up again when a transfer asks for the same fd of the same connection
   (gen: hac_conn_gen() when it was made) */
struct hac_sock {
  ev_io io;
  struct hac_worker *w;
  struct hac_sock *next;       /* the worker's sockets (hac_worker.socks) */
  struct hac_sock **pprev;     /* what points at this one */
  uint32_t gen;                /* its connection's hac_conn.gen */
  bool parked;                 /* no transfer needs it (libcurl said REMOVE) */
};

/* why on_prereq() aborted a transfer (hac_req.abort) */
#define HAC_ABORT_LOST 1       /* not idempotent, would be sent again */
#define HAC_ABORT_STALE 2      /* about to go out on a suspect connection */
#define HAC_ABORT_H2C 3        /* h2c: wrong kind of connection (mux.c) */

/* hac_req.mux */
#define HAC_MUX_OFF 0
#define HAC_MUX_OPEN 1         /* may open a connection */
#define HAC_MUX_JOIN 2         /* joins an open one */

/* hac_origin.proto (HTTPS) */
#define HAC_PROTO_UNKNOWN 0
#define HAC_PROTO_H1 1
#define HAC_PROTO_H2 2

#define HAC_OTAB 256           /* buckets of a worker's origin table */

/* an origin (scheme letter + authority) of a worker (mux.c) */
struct hac_origin {
  struct hac_origin *next;     /* hash chain */
  struct hac_origin *knext;    /* kicked list */
  uint32_t hash;
  uint8_t proto;               /* HAC_PROTO_* */
  bool h2c;
  bool kicked;                 /* waiters to look at (hac_mux_next()) */
  uint32_t conns;              /* its open connections */
  uint32_t opening;            /* OPEN transfers not yet sending */
  uint32_t joining;            /* JOIN transfers not yet sending */
  uint32_t on_conns;           /* transfers sending on its connections */
  struct hac_queue wait;       /* waiting for a connection being opened */
  uint32_t nwait;
  char key[];
};

/* ---- conn.c: the connections libcurl opened for a worker ---- */
struct hac_peer {
  uint16_t family;
  uint16_t port;
  unsigned char addr[16];
};

struct hac_conn {              /* indexed by fd */
  struct hac_peer peer;
  uint32_t gen;                /* bumped each time the fd is opened */
  uint16_t lport;              /* local port, 0 until known */
  bool open;
  bool watched;                /* some transfer is using it */
  bool dead;                   /* found dead (counted once) */
  bool shut;                   /* shut down by hac_conn_suspect() */
  bool mux;                    /* counted in origin->conns (mux.c) */
  struct hac_origin *origin;
  uint64_t born;               /* the worker's conn_opened when opened */
};

struct hac_cancel {              /* or a stream's resume (stream.c) */
  uint64_t id;
  bool resume;
  struct hac_cancel *next;
};

struct hac_worker {
  struct hac_client *c;
  pthread_t thread;
  bool started;
  bool lock_ready;
  /* HAC_DRIVE_CALLER ("driven"): no thread, drive.c runs the loop */
  bool stopped;                 /* driven: the stop is done, loop gone */
  bool drive_expired;           /* driven: the waiter's time is up */
  bool drive_ready;             /* driven: the locks below are made */
  pthread_mutex_t loop_lock;    /* driven: held by whoever runs the loop */
  pthread_mutex_t drive_mx;     /* driven: drive_gen and drive_cv */
  pthread_cond_t drive_cv;      /* driven: the loop is free, or replies */
  unsigned long drive_gen;      /* driven: bumped when the loop is left */
  ev_timer drive_timer;         /* driven: the waiter's timeout */

  struct ev_loop *loop;
  ev_async wake;
  ev_timer timer;
  ev_prepare flusher;
  CURLM *multi;
  bool kick;                    /* libcurl asked for a 0 ms timeout */

  /* shared with submitters, under lock */
  pthread_mutex_t lock;
  struct hac_list sub;
  struct hac_cancel *cancels;
  bool stop;

  /* worker-only state */
  struct hac_req **table;
  size_t mask;
  CURL **pool;
  uint32_t *pool_shape;         /* of the last request on each pooled handle */
  struct curl_slist *no_expect; /* "Expect:", shared by bodies w/o headers */
  struct curl_slist *resolve;   /* the client's lists (transport.c) */
  struct curl_slist *connect_to;
  CURLSH *share;                /* share.c: SSL sessions (libcurl < 8.12) */
  bool ca_default_file;         /* libcurl has a default CA file */
  size_t npool;
  size_t cappool;
  struct hac_sock *socks;
  struct hac_sock **fdsock;     /* sock.c: the watcher of each fd, by fd */
  void (*on_io)(struct ev_loop *, ev_io *, int); /* worker.c's io callback */
  size_t nfdsock;
  struct hac_conn *conns;       /* conn.c, by fd */
  size_t nconns;
  uint64_t conn_opened;         /* conn.c: connections opened so far */
  uint64_t suspect_mark;        /* conn_opened at the last suspicion: the
                                   connections born up to it are suspect */
  unsigned long conn_closes;    /* conn.c counts closes; sock.c looks for
                                   parked watchers of closed fds when it
                                   moved (hac_worker.swept: what it saw) */
  unsigned long swept;
  double timer_due;             /* ev_now() + the timeout libcurl last set */
  struct hac_origin *otab[HAC_OTAB]; /* mux.c */
  struct hac_origin *kicked;
  size_t active;                /* transfers handed to libcurl */
  struct hac_queue wait;        /* admitted when active < max_connections */
  CURL *oom[16];                /* transfers whose socket we could not
                                   watch (out of memory): failed after the
                                   libcurl call returns */
  int noom;
  struct hac_list fin;          /* finished, queued once per iteration */
  unsigned long multi_errors;   /* curl_multi_socket_action() failures */
  CURLMcode multi_last;         /* the latest of them */
  _Atomic(struct hac_htab *) hist; /* hist.c: latency by origin, or NULL */

  /* read by hac_stats_get() from any thread */
  atomic_uint_least64_t n_requests;   /* submitted */
  atomic_uint_least64_t n_started;    /* handed to libcurl */
  atomic_uint_least64_t n_dead;       /* cached connections found dead */
  atomic_uint_least64_t n_resent;     /* started again by the worker */
  atomic_uint_least64_t n_replies;
  atomic_uint_least64_t n_errors;
  atomic_uint_least64_t n_timeouts;
  atomic_uint_least64_t n_cancelled;
  atomic_uint_least64_t n_inflight;
  atomic_uint_least64_t n_queued;
  atomic_uint_least64_t n_retries;
  atomic_uint_least64_t n_hedges;
  atomic_uint_least64_t n_hedge_wins;
  atomic_uint_least64_t n_shed;
  atomic_uint_least64_t n_rate_delayed;
  uint64_t rand;               /* xorshift state for backoff jitter */
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
  struct hac_list done;
  atomic_uint_least64_t n_done;
  struct hac_stream *news;      /* streams with news for Python (stream.c) */
  atomic_uint_least64_t n_news;
  atomic_uint_least64_t n_streams; /* streams in flight */
  atomic_uint_least64_t n_paused;  /* of them, paused by backpressure */
  atomic_int efd;              /* -1 once closed (hac_done_close_fd()) */
  atomic_int waiters;          /* threads in hac_wait()'s poll() */

  struct hac_bufcache *bufs;

  /* dest.c, limit.c: shared by the workers under dest_lock */
  pthread_mutex_t dest_lock;
  struct hac_dset *dsets;
  struct hac_rlimit *limits;
  size_t nlimits;
  atomic_uint_least64_t hedges_total; /* hedge.c's budget */

  /* curl_verbose text */
  pthread_mutex_t log_lock;
  struct hac_buf log;
  atomic_uint_least64_t log_dropped;
};

/* the functions, file by file */
#include "proto.h"
#include "hist.h"

#endif /* HAC_INTERNAL_H */
