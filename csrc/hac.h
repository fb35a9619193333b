/*
 * hac.h - the only header the Python layer sees.
 *
 * build_ffi.py reads the text between the CDEF markers and hands it to
 * cffi as the cdef; every "#define NAME value" there becomes
 * "#define NAME ..." so that the values come from the compiler.
 *
 * Threading contract: every function may be called from any thread, except
 * hac_destroy() which must be the last call on a client.  None of them calls
 * back into the caller; the worker threads never run caller code.
 */
#ifndef HAC_H
#define HAC_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */

/* request methods (hac_reqhdr.method) */
#define HAC_M_GET 0
#define HAC_M_POST 1
#define HAC_M_PUT 2
#define HAC_M_DELETE 3
#define HAC_M_PATCH 4
#define HAC_M_HEAD 5
#define HAC_M_OPTIONS 6

/* request flags (hac_reqhdr.flags) */
#define HAC_F_BODY 1
#define HAC_F_FILES 16         /* options name files or fds (files.h) */

/* result flags (hac_result.flags) */
#define HAC_R_OK 1
#define HAC_R_TIMEOUT 2
#define HAC_R_CANCELLED 4

/* who runs the worker's loop (hac_config.driver) */
#define HAC_DRIVE_THREAD 0     /* a thread per worker */
#define HAC_DRIVE_CALLER 1     /* no thread: whoever waits in hac_wait() */

/* memory managers (hac_config.memory_manager) */
#define HAC_MM_SHM 0
#define HAC_MM_SYS 1

/* keys of the per-request option list: "<key><value>\0" repeated */
#define HAC_O_VERIFY_HOST 104
#define HAC_O_VERIFY_PEER 112
#define HAC_O_TLS_VERSION 118
#define HAC_O_CLIENT_CERT 99
#define HAC_O_CLIENT_KEY 107
#define HAC_O_CA_PATH 97
#define HAC_O_CA_FILE 102
#define HAC_O_USERNAME 117
#define HAC_O_PASSWORD 119
#define HAC_O_AUTHMETHOD 109
#define HAC_O_FOLLOW 114
#define HAC_O_MAX_REDIRS 82
#define HAC_O_KEEPALIVE 75
#define HAC_O_KA_IDLE 105
#define HAC_O_KA_INTERVAL 110
#define HAC_O_HTTP_VERSION 72
#define HAC_O_CONNECT_TIMEOUT 67
#define HAC_O_LOW_SPEED_LIMIT 76
#define HAC_O_LOW_SPEED_TIME 84
#define HAC_O_PROXY 80
#define HAC_O_NO_PROXY 78
#define HAC_O_CA_BLOB 66
#define HAC_O_PINNED_PUBKEY 89
#define HAC_O_RESOLVE 68
#define HAC_O_CONNECT_TO 79
#define HAC_O_UNIX_SOCKET 85
#define HAC_O_STREAM 83
/* resilience (retry.c, hedge.c) */
#define HAC_O_RETRIES 116
#define HAC_O_RETRY_STATUSES 115   /* "502,503" */
#define HAC_O_RETRY_BACKOFF 120
#define HAC_O_RETRY_UNSAFE 122
#define HAC_O_HEDGE_AFTER 71       /* ms; < 0: -(percentile x 10), e.g. -950 */
#define HAC_O_MAX_QUEUE_WAIT 81

/* hac_stream_take() states */
#define HAC_S_HEAD 1
#define HAC_S_PAUSED 2
#define HAC_S_DONE 4
#define HAC_S_RESUMING 8

/* hac_reqhdr.timeout_ms of a stream without a deadline */
#define HAC_NO_DEADLINE -1

/* bodies that never pass through Python (files.h); an fd named here
   belongs to the core once the blob reaches hac_submit()/hac_discard() */
#define HAC_O_OUTPUT 111       /* write the body to this path (renamed) */
#define HAC_O_OUTPUT_FD 100    /* ... to this fd */
#define HAC_O_BODY_FILE 98     /* the request body is this file */
#define HAC_O_BODY_FD 101      /* ... read from this fd */
#define HAC_O_BODY_START 113   /* ... from this offset (-1: a stream) */
#define HAC_O_BODY_PIPE 103    /* ... from Python's feeder thread (frames) */
#define HAC_O_FORM 70          /* the body holds a multipart form */

/* a part of a multipart form (HAC_O_FORM): this header, then name,
   value (data, or a file's path), content type, file name */
#define HAC_FORM_FILE 1        /* value is a path, streamed from disk */
#define HAC_FORM_TYPE 2        /* a content type is given */
#define HAC_FORM_FILENAME 4    /* a file name is given */

/* http_version values (HAC_O_HTTP_VERSION) */
#define HAC_HTTP_DEFAULT 0
#define HAC_HTTP_2_UPGRADE 1
#define HAC_HTTP_2_PRIOR 2

/* indexes of hac_result.times, microseconds */
#define HAC_T_TOTAL 0
#define HAC_T_LOOKUP 1
#define HAC_T_CONNECT 2
#define HAC_T_APPCONNECT 3
#define HAC_T_PRETRANSFER 4
#define HAC_T_STARTTRANSFER 5
#define HAC_T_REDIRECT 6
#define HAC_T_COUNT 7

/* negative returns of hac_submit() */
#define HAC_E_CLOSED -1
#define HAC_E_NOMEM -2
#define HAC_E_FORMAT -3

typedef struct hac_client hac_client;
typedef struct hac_stream hac_stream;

typedef struct hac_config {
  int workers;
  int hash_size;               /* already a power of two */
  long connection_timeout;     /* ms, > 0 */
  long tls_version;
  long tls_verify_host;
  long tls_verify_peer;
  int curl_verbose;
  int memory_manager;
  const char *tls_client_cert; /* NULL: none */
  const char *tls_client_key;
  const char *tls_ca_path;
  long follow_redirect;        /* 0/1 */
  long max_redirects;          /* >= 0 */
  long tcp_keepalive;          /* 0/1 */
  long tcp_ka_idle;            /* s, 0: libcurl's default */
  long tcp_ka_interval;        /* s, 0: libcurl's default */
  long authmethod;             /* CURLAUTH_* bitmask */
  int64_t max_body_size;       /* bytes, > 0 */
  long max_connections;        /* per worker, > 0: more transfers queue */
  const char *tls_ca_file;     /* NULL: none */
  long tls_ca_cache;           /* s a worker keeps a loaded CA file, >= 0 */
  long connect_timeout;        /* ms, 0: the request's deadline */
  long low_speed_limit;        /* bytes/s, 0: no check */
  long low_speed_time;         /* s below low_speed_limit that fail it */
  const char *proxy;           /* every scheme's proxy; NULL: see below */
  const char *proxy_http;      /* http:// URLs' proxy when proxy is NULL */
  const char *proxy_https;     /* https:// URLs' ...; NULL: none */
  const char *no_proxy;        /* hosts that bypass it; NULL: none */
  const char *tls_ca_blob;     /* PEM text of trusted CAs; NULL: none */
  const char *tls_pinned_pubkey; /* NULL: none */
  const char *resolve;         /* "host:port:addr" entries, '\n'-separated */
  const char *connect_to;      /* "host:port:chost:cport" entries, ditto */
  long dns_cache_timeout;      /* s, -1 forever, 0 off */
  long max_host_connections;   /* per host per worker, 0: no bound */
  long max_connection_age;     /* s, 0: no bound */
  const char *unix_socket;     /* NULL: TCP */
  const char *user_agent;      /* NULL or "": no User-Agent */
  long retries;                /* >= 0 */
  const char *retry_statuses;  /* "502,503,504"; NULL: none */
  long retry_backoff;          /* ms, base of the exponential backoff */
  long hedge_after;            /* ms, 0 off; < 0: -(percentile x 10) */
  double hedge_budget;         /* hedges <= this share of requests */
  long max_queue_wait;         /* ms, 0: the deadline alone */
  const char *rate_limit;      /* "origin rps" lines; NULL: none */
  int driver;                  /* HAC_DRIVE_*; CALLER needs workers 1 */
} hac_config;

/*
 * The wire form of one request: this header, then url_len bytes of URL,
 * body_len bytes of body, hdr_len bytes of header lines (each ended by a
 * NUL), opt_len bytes of options (each "<key><value>" ended by a NUL).
 * A batch is several of them back to back.
 */
typedef struct hac_reqhdr {
  uint64_t id;
  int64_t timeout_ms;          /* <= 0: the client's connection_timeout */
  uint32_t method;
  uint32_t flags;
  uint32_t url_len;
  uint32_t body_len;
  uint32_t hdr_len;
  uint32_t opt_len;
} hac_reqhdr;

/* One finished request.  Valid until it is released. */
typedef struct hac_result {
  uint64_t id;
  const char *raw;             /* last response's header block + body */
  size_t raw_len;
  size_t body_off;             /* body = raw + body_off */
  size_t reason_off;
  size_t reason_len;
  const char *err;             /* NUL-terminated, NULL on success */
  int64_t times[7];            /* HAC_T_*, µs, zero unless HAC_R_OK */
  int32_t status;
  int32_t curl_code;
  uint32_t flags;              /* HAC_R_* */
  int32_t http_version;        /* CURL_HTTP_VERSION_* of the response */
  uint64_t written;            /* body bytes written to HAC_O_OUTPUT* */
  uint32_t attempts;           /* transfers started for it (>= 1 once sent) */
  uint32_t hedged;             /* 1: the reply is the hedge's */
} hac_result;

/* One drained result, flat (fixed-size fields only) so that Python reads
   it with one struct.unpack; see hac_drain_into(). */
typedef struct hac_rec {
  uint64_t id;
  int64_t raw_off;             /* response at data + raw_off; -1: held */
  uint64_t raw_len;
  uint64_t body_off;           /* relative to the response */
  uint64_t reason_off;
  uint64_t reason_len;
  int64_t err_off;             /* error text at data + err_off; -1: none */
  uint64_t err_len;
  int64_t times[7];            /* HAC_T_*, µs, zero unless HAC_R_OK */
  int32_t status;
  int32_t curl_code;
  uint32_t flags;              /* HAC_R_* */
  int32_t http_version;
  uint64_t written;            /* body bytes written to a file, not in raw */
  uint32_t attempts;
  uint32_t hedged;
} hac_rec;

typedef struct hac_formpart {
  uint32_t flags;              /* HAC_FORM_* */
  uint32_t name_len;
  uint32_t value_len;
  uint32_t type_len;
  uint32_t filename_len;
} hac_formpart;

typedef struct hac_stats {
  uint64_t requests;           /* submitted (accepted by hac_submit()) */
  uint64_t started;            /* handed to libcurl (once per request) */
  uint64_t replies;            /* transfers completed (any status) */
  uint64_t errors;             /* failed transfers, timeouts excluded */
  uint64_t timeouts;           /* deadline misses */
  uint64_t cancelled;          /* cancelled or dropped by close() */
  uint64_t inflight;           /* submitted, not yet finished */
  uint64_t queued;             /* submitted, not yet seen by a worker */
  uint64_t completed_pending;  /* finished, not yet drained */
  uint64_t mem_in_use;         /* accounted allocator, process-wide */
  uint64_t mem_peak;
  uint64_t log_dropped;        /* curl_verbose bytes dropped (buffer full) */
  uint64_t dead_connections;   /* cached connections found dead */
  uint64_t resent;             /* requests the worker started again (h2c,
                                  a dead cached connection), not re-counted
                                  in requests or started */
  uint64_t streams;            /* streamed responses in flight */
  uint64_t streams_paused;     /* of them, paused: their reader is behind */
  uint64_t retries;            /* attempts started again by retries= */
  uint64_t hedges;             /* hedge copies sent */
  uint64_t hedge_wins;         /* replies that were the hedge's */
  uint64_t shed;               /* failed at once by max_queue_wait */
  uint64_t rate_delayed;       /* held back by a rate_limit */
} hac_stats;

const char *hac_version(void);
const char *hac_curl_version(void);
/* curl_version_info()'s feature bits (CURL_VERSION_*) */
long hac_curl_features(void);

/* errbuf receives a message when NULL is returned. *mm_effective is the
   process-wide memory manager actually in force. */
hac_client *hac_client_new(const hac_config *cfg, int *mm_effective,
                           char *errbuf, size_t errlen);

/* Queue a batch; returns how many requests were queued or HAC_E_*. */
long hac_submit(hac_client *c, const char *blob, size_t len);

/* Close the fds named by the requests of a blob that will never reach
   hac_submit() (which takes them itself, whatever it returns). */
void hac_discard(const char *blob, size_t len);

/* Ask the owning worker to cancel; a reply with HAC_R_CANCELLED follows
   unless the request has already finished.  0, or HAC_E_CLOSED. */
int hac_cancel(hac_client *c, uint64_t id);

/* The fd that turns readable when completions are waiting; -1 once the
   client is closed (hac_close() closes it). */
int hac_fd(hac_client *c);

/* Wait up to timeout_ms (-1: forever) for completions; 1 ready, 0 not.
   Returns 1 at once when the client is or gets closed.  With
   HAC_DRIVE_CALLER the waiting thread runs the worker's loop meanwhile
   (one at a time; the others wait for its completions): requests make
   progress only while some thread waits here. */
int hac_wait(hac_client *c, int timeout_ms);

/* Give back a result that hac_drain_into() left held; from any thread,
   even after the client is destroyed. */
void hac_release_one(hac_result *res);

/* The drain: takes up to max finished requests, fewer when their
   small responses and error texts would not fit in data[cap].  For each,
   recs[i] gets the fields; a response shorter than hold_min and the error
   text are copied into data back to back (*used bytes in all) and the
   request is freed at once; a larger response stays in C: held[i] is its
   result, to be given back with hac_release_one() (held[i] is NULL
   otherwise).  Returns the count; 0 when nothing is waiting.  cap must be
   at least hold_min + 1024 (an error text is shorter than 1 KiB), so that
   any one result fits. */
size_t hac_drain_into(hac_client *c, hac_rec *recs, hac_result **held,
                      size_t max, char *data, size_t cap, size_t hold_min,
                      size_t *used);

/* curl_verbose text gathered so far (NULL if none); free with hac_free(). */
char *hac_log_take(hac_client *c, size_t *len);
void hac_free(void *p);

void hac_stats_get(hac_client *c, hac_stats *out);

/*
 * Latency histograms by origin (hist.c).  hac_origin_key(): the origin of
 * a URL, "scheme://host:port" lowercased with the default port filled in
 * (http 80, https 443), IPv6 hosts in []; its length, 0 when url has none
 * or it does not fit in cap with its NUL.  hac_latency(): origin's (NULL:
 * every origin's) histograms merged over the workers: per phase p
 * (HAC_H_*), qout[p * nq + j] the quantile q[j] in us (-1: no sample),
 * cum[p * nle + j] the samples at most le[j] us, count[p], sum[p] (us);
 * 1 if the origin has histograms, 0 if not, -1 out of memory.
 * hac_latency_origins(): every worker's origin keys, each ended by a NUL,
 * into buf (as many as fit); the bytes they all need.
 */
#define HAC_H_CONNECT 0        /* TCP connect (new connections only) */
#define HAC_H_TLS 1            /* TLS handshake (new connections only) */
#define HAC_H_TTFB 2           /* start to the first response byte */
#define HAC_H_TOTAL 3
#define HAC_H_COUNT 4

size_t hac_origin_key(const char *url, char *out, size_t cap);
int hac_latency(hac_client *c, const char *origin, const double *q,
                size_t nq, int64_t *qout, const int64_t *le, size_t nle,
                uint64_t *cum, uint64_t *count, uint64_t *sum);
size_t hac_latency_origins(hac_client *c, char *buf, size_t cap);

/* In a forked child: close this process's copies of the fds of a client
   made in an ancestor (its connections, the completion fd) without
   touching its threads, locks or libcurl handles; its memory is left.
   Does nothing in the client's own process or a second time. */
void hac_abandon(hac_client *c);

/* Stop accepting, cancel everything in flight, join the workers.  Every
   request gets its reply before this returns.  Idempotent. */
void hac_close(hac_client *c);

/* Close if needed and free the client. */
void hac_destroy(hac_client *c);

/* Test builds (-DHAC_FAULT_INJECTION): make the nth allocation the core
   itself makes from now fail (n < 0: never).  Returns how many
   allocations were attempted since the previous call, or -1 in builds
   without fault injection. */
long hac_fault_inject(long nth);

/*
 * Streamed responses.  hac_stream_new() makes the stream of one request
 * (limit: unread bytes before the transfer pauses); its address, in
 * decimal after the HAC_O_STREAM key, goes in the request's options.  The
 * caller's reference is given back with hac_stream_release() (any time,
 * even after the client is gone).  hac_stream_take() hands over every
 * unread byte (a block to free with hac_free(), NULL when none; *state:
 * HAC_S_*), and resumes a paused transfer.  hac_stream_head(): the final
 * response's header block once HAC_S_HEAD (its length; copied when buf
 * has room).  hac_stream_news(): ids of streams with something new since
 * the last call (the client's fd turns readable as for completions).
 */
hac_stream *hac_stream_new(hac_client *c, size_t limit);
void hac_stream_release(hac_stream *s);
char *hac_stream_take(hac_stream *s, size_t *len, uint32_t *state);
size_t hac_stream_head(hac_stream *s, char *buf, size_t cap, int32_t *status,
                       int32_t *http_version);
size_t hac_stream_news(hac_client *c, uint64_t *ids, size_t max);

/*
 * Destination sets (dest.c): dest://NAME/path picks one of NAME's base
 * URLs per attempt.  hac_dest_define(): urls '\n'-separated, weights[n]
 * (NULL: all 1), HAC_ALG_*; redefining a name replaces it (requests in
 * flight keep the old one).  0, or -1 out of memory / bad arguments.
 * hac_dest_state(): one entry per destination, in order; -1: no such set.
 */
#define HAC_ALG_ROUND_ROBIN 0
#define HAC_ALG_WEIGHTED 1
#define HAC_ALG_FAILOVER 2
#define HAC_ALG_HASH 3

#define HAC_DS_UP 0
#define HAC_DS_DOWN 1
#define HAC_DS_PROBING 2

typedef struct hac_dest_info {
  int32_t state;               /* HAC_DS_* */
  uint32_t consecutive_failures;
  uint64_t inflight;
  uint64_t requests;           /* attempts sent to it */
  uint64_t successes;
  uint64_t failures;
  int64_t latency_us;          /* mean total time of its completed attempts */
  int64_t down_left_ms;        /* until it may be probed; 0 when up */
} hac_dest_info;

int hac_dest_define(hac_client *c, const char *name, const char *urls,
                    const long *weights, size_t n, int algorithm,
                    long max_failures, long down_for_ms,
                    const char *probe_path);
long hac_dest_state(hac_client *c, const char *name, hac_dest_info *out,
                    size_t max);

/* CDEF END */

#endif /* HAC_H */
