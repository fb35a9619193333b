/*
 * xfer.c - one request: wire form -> easy handle options, response
 * capture, and the result record.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char empty[] = "";

#define HAC_PRESIZE_MAX (1024 * 1024)

/* ---------------------------------------------------------------- parse */

struct hac_req *hac_req_parse(const char *blob, size_t len, size_t *used)
{
  hac_reqhdr h;
  size_t need;
  size_t extra;
  struct hac_req *r;
  char *d;

  *used = 0; /* stays 0 for a malformed blob, set for out-of-memory */
  if(len < sizeof(h))
    return NULL;
  memcpy(&h, blob, sizeof(h));
  extra = (size_t)h.url_len + h.body_len + h.hdr_len + h.opt_len;
  if(extra > len - sizeof(h) || !h.url_len)
    return NULL;
  need = sizeof(h) + extra;
  *used = need;
  /* data: url NUL body hdr opt NUL, so the URL and the last option are
     C strings */
  r = hac_malloc(sizeof(*r) + extra + 2);
  if(!r)
    return NULL;
  memset(r, 0, sizeof(*r));
  blob += sizeof(h);
  d = r->data;
  memcpy(d, blob, h.url_len);
  d[h.url_len] = '\0';
  memcpy(d + h.url_len + 1, blob + h.url_len, extra - h.url_len);
  d[extra + 1] = '\0';
  r->res.id = h.id;
  r->timeout_ms = h.timeout_ms;
  r->method = h.method;
  r->flags = h.flags;
  r->url = d;
  r->body = d + h.url_len + 1;
  r->body_len = h.body_len;
  r->hdr = r->body + h.body_len;
  r->hdr_len = h.hdr_len;
  r->opt = r->hdr + h.hdr_len;
  r->opt_len = h.opt_len;
  return r;
}

void hac_req_free(struct hac_req *r)
{
  if(!r)
    return;
  if(r->hdrs)
    curl_slist_free_all(r->hdrs);
  hac_buf_free(&r->buf);
  hac_mfree(r);
}

/* The value of option key, or NULL when the request does not set it. */
const char *hac_req_opt(const struct hac_req *r, int key)
{
  const char *p = r->opt;
  const char *end = r->opt + r->opt_len;
  while(p < end) {
    size_t n = strnlen(p, (size_t)(end - p));
    if(n && (unsigned char)*p == key)
      return p + 1;
    p += n + 1;
  }
  return NULL;
}

static long opt_long(const struct hac_req *r, int key, long dflt)
{
  const char *v = hac_req_opt(r, key);
  return v ? strtol(v, NULL, 10) : dflt;
}

static const char *opt_str(const struct hac_req *r, int key, const char *dflt)
{
  const char *v = hac_req_opt(r, key);
  if(!v)
    return dflt;
  return *v ? v : NULL;
}

/* ------------------------------------------------------------ callbacks */

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
  struct hac_req *r = userp;
  size_t len = size * n;
  r->responded = true;
  if(r->in_body)
    return len; /* trailers: the body is already being captured */
  if(len >= 5 && !memcmp(data, "HTTP/", 5)) {
    /* a new response (1xx, redirect hop): keep only the last one */
    const char *p = memchr(data, ' ', len);
    const char *end = data + len;
    if(r->origin && !r->mux_learned)
      hac_mux_learn(r->w, r, data, len);
    r->buf.len = 0;
    r->res.reason_off = r->res.reason_len = 0;
    r->hdr_done = false;
    r->cl_seen = false;
    if(p) {
      p++;
      while(p < end && *p >= '0' && *p <= '9')
        p++;
      if(p < end && *p == ' ')
        p++;
      r->res.reason_off = (size_t)(p - data);
      while(p < end && *p != '\r' && *p != '\n')
        p++;
      r->res.reason_len = (size_t)(p - data) - r->res.reason_off;
    }
  }
  else if((len == 2 && data[0] == '\r' && data[1] == '\n') ||
          (len == 1 && data[0] == '\n')) {
    r->hdr_done = true;
    /* a known length: room for the body at once, no regrowth; bounded so
       that a lying server cannot make us reserve max_body_size per request */
    if(r->cl_seen && r->cl <= HAC_PRESIZE_MAX)
      (void)hac_buf_reserve(&r->buf, len + (size_t)r->cl); /* else: grow */
  }
  else if(len > 15 && !strncasecmp(data, "content-length:", 15)) {
    /* RFC 9112 6.3: differing lengths make the message unusable */
    uint64_t v = strtoull(data + 15, NULL, 10);
    if(r->cl_seen && v != r->cl) {
      r->bad = "conflicting Content-Length values";
      return 0;
    }
    r->cl_seen = true;
    r->cl = v;
  }

  if(hac_buf_add(&r->buf, data, len)) {
    snprintf(r->errbuf, sizeof(r->errbuf), "out of memory for headers");
    return 0;
  }
  return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
  struct hac_req *r = userp;
  size_t len = size * n;
  r->responded = true;
  if(!r->in_body) {
    r->in_body = true;
    r->res.body_off = r->buf.len;
  }
  if(r->buf.len - r->res.body_off + len >
     (uint64_t)r->w->c->cfg.max_body_size) {
    r->too_big = true;
    return 0;
  }
  if(hac_buf_add(&r->buf, data, len)) {
    snprintf(r->errbuf, sizeof(r->errbuf), "out of memory for the body");
    return 0;
  }
  return len;
}

/* curl_verbose: "[id] > line" per line into the client's log text */
static int on_debug(CURL *e, curl_infotype type, char *data, size_t size,
                    void *userp)
{
  struct hac_req *r = userp;
  const char *mark;
  char line[1024];
  const char *p = data;
  const char *end = data + size;
  (void)e;
  switch(type) {
  case CURLINFO_TEXT:
    mark = "*";
    break;
  case CURLINFO_HEADER_IN:
    mark = "<";
    break;
  case CURLINFO_HEADER_OUT:
    mark = ">";
    break;
  default:
    return 0;
  }
  while(p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    size_t shown = n;
    int k;
    if(shown && p[shown - 1] == '\r')
      shown--;
    if(shown > sizeof(line) - 64)
      shown = sizeof(line) - 64;
    if(shown) {
      k = snprintf(line, sizeof(line), "[%llu] %s %.*s\n",
                   (unsigned long long)r->res.id, mark, (int)shown, p);
      if(k > 0)
        hac_log_add(r->w->c, line, (size_t)k < sizeof(line) ?
                    (size_t)k : sizeof(line) - 1);
    }
    p += n + 1;
  }
  return 0;
}

/* ------------------------------------------------- sent once, or again */

/* RFC 9110 9.2.2: of our methods, POST and PATCH are not idempotent */
static bool idempotent(const struct hac_req *r)
{
  return r->method != HAC_M_POST && r->method != HAC_M_PATCH;
}

/* A cached connection this request went out on closed before any response:
   count it once, and distrust the idle connections to the same peer. */
static void found_dead(struct hac_worker *w, struct hac_req *r)
{
  struct hac_conn *k = hac_conn_find(w, r->pip, r->pport, r->lport);
  struct hac_peer p;
  if(k) {
    if(k->dead)
      return;
    k->dead = true;
  }
  atomic_fetch_add_explicit(&w->n_dead, 1, memory_order_relaxed);
  if(!hac_peer_parse(&p, r->pip, r->pport))
    (void)hac_conn_suspect(w, &p);
}

/*
 * CURLOPT_PREREQFUNCTION: libcurl has a connection for the request and is
 * about to send it, once per attempt (a redirect, an authentication round
 * or a re-send is a new one).  Called again with no response since the
 * last time, it is libcurl's silent re-send after the connection died
 * ("Connection died, retrying a fresh connect"), whatever the method: a
 * POST the server may already have processed would run twice.
 */
static int on_prereq(void *userp, char *ip, char *local_ip, int port,
                     int local_port)
{
  struct hac_req *r = userp;
  struct hac_worker *w = r->w;
  long n = 0;
  bool fresh;
  (void)local_ip;
  curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &n);
  fresh = n != r->nconnects;
  r->nconnects = n;
  if(r->sent && !r->responded) {
    /* libcurl 7.88 resets its retry count only in curl_easy_reset(): a
       pooled handle that kept its options would give up after five
       re-sends in its whole life (curl issue 18926) */
    r->curl_resent = true;
    if(r->reused)
      found_dead(w, r);
    if(!idempotent(r)) {
      r->abort = HAC_ABORT_LOST;
      return CURL_PREREQFUNC_ABORT;
    }
    if(!fresh) {
      /* another cached connection, as suspect as the first: start over
         once the suspects are shut (libcurl would try up to five) */
      r->abort = HAC_ABORT_STALE;
      return CURL_PREREQFUNC_ABORT;
    }
  }
  if(r->mux && hac_mux_prereq(w, r, fresh, ip, port, local_port)) {
    r->abort = HAC_ABORT_H2C;
    return CURL_PREREQFUNC_ABORT;
  }
  r->sent = true;
  r->responded = false;
  r->reused = !fresh;
  r->pport = port;
  r->lport = local_port;
  if(ip) {
    size_t len = strnlen(ip, sizeof(r->pip) - 1);
    memcpy(r->pip, ip, len);
    r->pip[len] = '\0';
  }
  else
    r->pip[0] = '\0';
  return CURL_PREREQFUNC_OK;
}

/* --------------------------------------------------------- easy handles */

/*
 * A pooled handle keeps the options of its last request when that request
 * had a "shape" (see shape_of()) and completed; the next request of the
 * same shape then sets only what differs per request (URL, deadline, body,
 * callback data) instead of curl_easy_reset() and some thirty options.
 * Shape 0: the handle was reset, configure everything.
 */
static CURL *easy_get(struct hac_worker *w, uint32_t want, bool *same)
{
  CURL *e;
  uint32_t shape;
  *same = false;
  if(!w->npool)
    return curl_easy_init();
  w->npool--;
  e = w->pool[w->npool];
  shape = w->pool_shape[w->npool];
  if(shape && shape == want)
    *same = true;
  else if(shape)
    curl_easy_reset(e);
  return e;
}

static void easy_put(struct hac_worker *w, CURL *e, uint32_t shape)
{
  if(shape)
    /* nothing may write through it while pooled */
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
  else
    curl_easy_reset(e);
  if(w->npool == w->cappool) {
    size_t cap = w->cappool ? w->cappool * 2 : 64;
    CURL **p = hac_realloc(w->pool, cap * sizeof(*p));
    uint32_t *q;
    if(p)
      w->pool = p;
    q = p ? hac_realloc(w->pool_shape, cap * sizeof(*q)) : NULL;
    if(!q) {
      curl_easy_cleanup(e);
      return;
    }
    w->pool_shape = q;
    w->cappool = cap;
  }
  w->pool[w->npool] = e;
  w->pool_shape[w->npool] = shape;
  w->npool++;
}

void hac_pool_fini(struct hac_worker *w)
{
  while(w->npool)
    curl_easy_cleanup(w->pool[--w->npool]);
  hac_mfree(w->pool);
  hac_mfree(w->pool_shape);
  w->pool = NULL;
  w->pool_shape = NULL;
  w->cappool = 0;
}

/* ---------------------------------------------------------------- start */

static const char *const method_names[] = {
  "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"
};

static CURLcode set_headers(struct hac_worker *w, struct hac_req *r)
{
  const char *p = r->hdr;
  const char *end = r->hdr + r->hdr_len;
  bool expect = false;
  struct curl_slist *l;
  if(!r->hdr_len) {
    /* the common case allocates nothing: no list without a body, the
       worker's shared "Expect:" list with one */
    if(!(r->flags & HAC_F_BODY) && r->method != HAC_M_POST)
      return CURLE_OK;
    if(!w->no_expect) {
      w->no_expect = curl_slist_append(NULL, "Expect:");
      if(!w->no_expect)
        return CURLE_OUT_OF_MEMORY;
    }
    return curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, w->no_expect);
  }
  while(p < end) {
    size_t n = strnlen(p, (size_t)(end - p));
    if(n > 16 && !strncasecmp(p, "accept-encoding:", 16)) {
      /* let libcurl ask for and decode what the caller accepts */
      const char *v = p + 16;
      CURLcode rc;
      while(*v == ' ' || *v == '\t')
        v++;
      if(*v) {
        rc = curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, v);
        if(rc)
          return rc;
        p += n + 1;
        continue;
      }
    }
    if(n) {
      if(n >= 7 && !strncasecmp(p, "expect", 6) && (p[6] == ':' ||
                                                    p[6] == ';'))
        expect = true;
      l = curl_slist_append(r->hdrs, p);
      if(!l)
        return CURLE_OUT_OF_MEMORY;
      r->hdrs = l;
    }
    p += n + 1;
  }
  /* no "Expect: 100-continue" round trip on larger bodies unless asked */
  if(!expect) {
    l = curl_slist_append(r->hdrs, "Expect:");
    if(!l)
      return CURLE_OUT_OF_MEMORY;
    r->hdrs = l;
  }
  return curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
}

static CURLcode set_method(struct hac_req *r)
{
  CURL *e = r->easy;
  CURLcode rc = CURLE_OK;
  bool body = r->flags & HAC_F_BODY;
  if(r->method > HAC_M_OPTIONS)
    return CURLE_BAD_FUNCTION_ARGUMENT;
  if(r->method == HAC_M_HEAD)
    return curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  if(body || r->method == HAC_M_POST) {
    rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                          (curl_off_t)r->body_len);
    if(!rc)
      rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                            r->body_len ? r->body : empty);
  }
  if(!rc && r->method != HAC_M_POST && (body || r->method != HAC_M_GET))
    rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                          method_names[r->method]);
  return rc;
}

#define SET(opt, val) \
  do { rc = curl_easy_setopt(e, opt, val); if(rc) return rc; } while(0)

/* What differs from one request to the next whatever its shape: URL,
   deadline, where the callbacks write. */
static CURLcode set_per_request(struct hac_worker *w, struct hac_req *r)
{
  CURL *e = r->easy;
  CURLcode rc;
  SET(CURLOPT_URL, r->url);
  SET(CURLOPT_PRIVATE, (void *)r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_WRITEDATA, (void *)r);
  SET(CURLOPT_HEADERDATA, (void *)r);
  SET(CURLOPT_PREREQDATA, (void *)r);
  SET(CURLOPT_TIMEOUT_MS, r->run_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, r->run_ms);
  if(w->c->cfg.curl_verbose)
    SET(CURLOPT_DEBUGDATA, (void *)r);
  return CURLE_OK;
}

/* A handle still set up for a request of this shape (see shape_of()):
   the per-request part and the body. */
static CURLcode configure_same(struct hac_worker *w, struct hac_req *r)
{
  CURL *e = r->easy;
  CURLcode rc = set_per_request(w, r);
  if(rc)
    return rc;
  if(r->flags & HAC_F_BODY || r->method == HAC_M_POST) {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SET(CURLOPT_POSTFIELDS, r->body_len ? r->body : empty);
  }
  return CURLE_OK;
}

static CURLcode configure(struct hac_worker *w, struct hac_req *r)
{
  const hac_config *cfg = &w->c->cfg;
  CURL *e = r->easy;
  const char *s;
  CURLcode rc = set_per_request(w, r);
  if(rc)
    return rc;
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_PREREQFUNCTION, on_prereq);
  SET(CURLOPT_OPENSOCKETFUNCTION, hac_conn_open);
  SET(CURLOPT_OPENSOCKETDATA, (void *)w);
  SET(CURLOPT_CLOSESOCKETFUNCTION, hac_conn_close);
  SET(CURLOPT_CLOSESOCKETDATA, (void *)w);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_SSL_VERIFYHOST,
      opt_long(r, HAC_O_VERIFY_HOST, cfg->tls_verify_host) ? 2L : 0L);
  SET(CURLOPT_SSL_VERIFYPEER,
      opt_long(r, HAC_O_VERIFY_PEER, cfg->tls_verify_peer) ? 1L : 0L);
  SET(CURLOPT_SSLVERSION, opt_long(r, HAC_O_TLS_VERSION, cfg->tls_version));
  s = opt_str(r, HAC_O_CLIENT_CERT, cfg->tls_client_cert);
  if(s)
    SET(CURLOPT_SSLCERT, s);
  s = opt_str(r, HAC_O_CLIENT_KEY, cfg->tls_client_key);
  if(s)
    SET(CURLOPT_SSLKEY, s);
  s = opt_str(r, HAC_O_CA_PATH, cfg->tls_ca_path);
  if(s)
    SET(CURLOPT_CAPATH, s);
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_body_size);
  SET(CURLOPT_FOLLOWLOCATION,
      opt_long(r, HAC_O_FOLLOW, cfg->follow_redirect) ? 1L : 0L);
  SET(CURLOPT_MAXREDIRS, opt_long(r, HAC_O_MAX_REDIRS, cfg->max_redirects));
  if(opt_long(r, HAC_O_KEEPALIVE, cfg->tcp_keepalive)) {
    long idle = opt_long(r, HAC_O_KA_IDLE, cfg->tcp_ka_idle);
    long intvl = opt_long(r, HAC_O_KA_INTERVAL, cfg->tcp_ka_interval);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    if(idle > 0)
      SET(CURLOPT_TCP_KEEPIDLE, idle);
    if(intvl > 0)
      SET(CURLOPT_TCP_KEEPINTVL, intvl);
  }
  s = opt_str(r, HAC_O_USERNAME, NULL);
  if(s) {
    SET(CURLOPT_USERNAME, s);
    SET(CURLOPT_HTTPAUTH,
        (unsigned long)opt_long(r, HAC_O_AUTHMETHOD, cfg->authmethod));
  }
  s = opt_str(r, HAC_O_PASSWORD, NULL);
  if(s)
    SET(CURLOPT_PASSWORD, s);
  switch(opt_long(r, HAC_O_HTTP_VERSION, HAC_HTTP_DEFAULT)) {
  case HAC_HTTP_2_UPGRADE:
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
    SET(CURLOPT_PIPEWAIT, 1L);
    break;
  case HAC_HTTP_2_PRIOR:
    rc = hac_mux_version(r);
    if(rc)
      return rc;
    SET(CURLOPT_PIPEWAIT, 1L);
    break;
  default:
    /* https may negotiate HTTP/2 with ALPN: let a burst wait for the first
       connection and share it rather than open one each */
    if(!strncasecmp(r->url, "https:", 6))
      SET(CURLOPT_PIPEWAIT, 1L);
    break;
  }
  if(r->fresh)
    SET(CURLOPT_FRESH_CONNECT, 1L);
  if(cfg->curl_verbose) {
    SET(CURLOPT_DEBUGFUNCTION, on_debug);
    SET(CURLOPT_VERBOSE, 1L);
  }
  rc = set_method(r);
  if(!rc)
    rc = set_headers(w, r);
  return rc;
}
#undef SET

/* What a request's options depend on besides its URL, deadline and body:
   0 when it has headers or options of its own (configure all). */
static uint32_t shape_of(const struct hac_req *r)
{
  if(r->hdr_len || r->opt_len || r->fresh)
    return 0;
  return 1u | r->method << 1 | (r->flags & HAC_F_BODY ? 1u << 8 : 0u) |
    (strncasecmp(r->url, "https:", 6) ? 0u : 1u << 9);
}

/* libcurl did not end the transfer by its deadline (it can lose one after
   a failed allocation): end it here so that every request gets a reply */
static void guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
  struct hac_req *r = t->data;
  (void)loop;
  (void)revents;
  hac_xfer_fail(r->w, r, HAC_R_TIMEOUT, r->mux_waiting ?
                "TIMEOUT: the deadline passed while waiting for an HTTP/2 "
                "connection being opened" : r->waiting ?
                "TIMEOUT: the deadline passed while waiting for a "
                "connection slot (max_connections)" :
                "TIMEOUT: libcurl did not end the transfer by its deadline "
                "(watchdog)");
}

static void wait_unlink(struct hac_worker *w, struct hac_req *r)
{
  hac_queue_del(&w->wait, r);
  r->waiting = false;
  ev_timer_stop(w->loop, &r->guard);
  hac_table_del(w, r);
}

/*
 * A new request: start it, or queue it while max_connections transfers
 * are in libcurl.  libcurl 7.88 handles a burst of many thousand transfers
 * badly (each pending one rescans the connection cache), so the excess
 * waits here, its deadline running, and is started as slots free up.
 */
void hac_xfer_admit(struct hac_worker *w, struct hac_req *r)
{
  long ms = r->timeout_ms > 0 ? (long)r->timeout_ms :
    w->c->cfg.connection_timeout;
  r->w = w;
  r->deadline = ev_now(w->loop) + (double)ms / 1000.0;
  if(w->active < (size_t)w->c->cfg.max_connections && !w->wait.head) {
    hac_xfer_start(w, r);
    return;
  }
  r->waiting = true;
  hac_queue_add(&w->wait, r);
  hac_table_add(w, r); /* cancel finds it */
  ev_timer_init(&r->guard, guard_cb, (double)ms / 1000.0, 0.);
  r->guard.data = r;
  ev_timer_start(w->loop, &r->guard);
}

/* A request waits outside libcurl (mux.c): cancel finds it, its deadline
   runs. */
void hac_xfer_park(struct hac_worker *w, struct hac_req *r)
{
  double left = r->deadline - ev_now(w->loop);
  hac_table_add(w, r);
  ev_timer_init(&r->guard, guard_cb, left > 0.0 ? left : 0.0, 0.);
  r->guard.data = r;
  ev_timer_start(w->loop, &r->guard);
}

void hac_xfer_unpark(struct hac_worker *w, struct hac_req *r)
{
  ev_timer_stop(w->loop, &r->guard);
  hac_table_del(w, r);
}

/* Start queued requests while slots are free (once per loop iteration). */
void hac_xfer_promote(struct hac_worker *w)
{
  while(w->wait.head && w->active < (size_t)w->c->cfg.max_connections) {
    struct hac_req *r = w->wait.head;
    wait_unlink(w, r);
    hac_xfer_start(w, r);
  }
}

static void start(struct hac_worker *w, struct hac_req *r, bool promoted)
{
  CURLcode rc;
  CURLMcode mrc;
  bool same;
  double left = r->deadline - ev_now(w->loop);
  r->w = w;
  if(left <= 0.0) {
    hac_xfer_fail(w, r, HAC_R_TIMEOUT, r->restarts ?
                  "TIMEOUT: the deadline passed before the request could "
                  "be sent again on a new connection" :
                  "TIMEOUT: the deadline passed while waiting for a "
                  "connection slot (max_connections)");
    return;
  }
  if(hac_mux_gate(w, r, promoted))
    return; /* waits for an HTTP/2 connection, or failed */
  r->run_ms = (long)(left * 1000.0);
  if(r->run_ms < 1)
    r->run_ms = 1;
  r->shape = shape_of(r);
  r->easy = easy_get(w, r->shape, &same);
  if(!r->easy) {
    hac_xfer_fail(w, r, 0, "out of memory for an easy handle");
    return;
  }
  rc = same ? configure_same(w, r) : configure(w, r);
  if(rc) {
    char msg[160];
    snprintf(msg, sizeof(msg), "%s (curl error %d)",
             curl_easy_strerror(rc), (int)rc);
    hac_xfer_fail(w, r, 0, msg);
    return;
  }
  mrc = curl_multi_add_handle(w->multi, r->easy);
  if(mrc) {
    char msg[160];
    snprintf(msg, sizeof(msg), "%s (curl multi error %d)",
             curl_multi_strerror(mrc), (int)mrc);
    hac_xfer_fail(w, r, 0, msg);
    return;
  }
  r->in_multi = true;
  w->active++;
  hac_table_add(w, r);
  ev_timer_init(&r->guard, guard_cb,
                (double)(r->run_ms + HAC_GRACE_MS) / 1000.0, 0.);
  r->guard.data = r;
  ev_timer_start(w->loop, &r->guard);
  if(!r->started) {
    r->started = true;
    atomic_fetch_add_explicit(&w->n_started, 1, memory_order_relaxed);
  }
}

void hac_xfer_start(struct hac_worker *w, struct hac_req *r)
{
  start(w, r, false);
}

/* A request leaving the wait in mux.c: it goes now. */
void hac_xfer_start_promoted(struct hac_worker *w, struct hac_req *r)
{
  start(w, r, true);
}

/* ----------------------------------------------------------------- done */

/* Detach from libcurl, if attached, and recycle the easy handle. */
static void detach(struct hac_worker *w, struct hac_req *r)
{
  if(r->waiting)
    wait_unlink(w, r);
  hac_mux_detach(w, r);
  if(!r->easy)
    return;
  if(r->in_multi) {
    w->active--;
    ev_timer_stop(w->loop, &r->guard);
    curl_multi_remove_handle(w->multi, r->easy);
    hac_table_del(w, r);
    r->in_multi = false;
  }
  /* only a transfer that completed leaves its options for the next */
  easy_put(w, r->easy, (r->res.flags & HAC_R_OK) && !r->curl_resent ?
           r->shape : 0);
  r->easy = NULL;
  if(r->hdrs) {
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
  }
}

static void fill_capture(struct hac_req *r)
{
  if(!r->in_body)
    r->res.body_off = r->buf.len;
  r->res.raw = r->buf.p ? r->buf.p : empty;
  r->res.raw_len = r->buf.len;
}

/* at most this many starts over per request, each within its deadline */
#define HAC_MAX_RESTARTS 3

/* Run a request again from the start on a fresh easy handle state. */
static void restart(struct hac_worker *w, struct hac_req *r)
{
  detach(w, r);
  r->buf.len = 0;
  r->in_body = false;
  r->too_big = false;
  r->hdr_done = false;
  r->cl_seen = false;
  r->bad = NULL;
  r->errbuf[0] = '\0';
  r->res.body_off = r->res.reason_off = r->res.reason_len = 0;
  /* a new transfer: libcurl counts its connections from 0 again */
  r->sent = r->responded = r->reused = false;
  r->abort = 0;
  r->nconnects = 0;
  r->restarts++;
  atomic_fetch_add_explicit(&w->n_resent, 1, memory_order_relaxed);
  hac_xfer_start(w, r);
}

/* libcurl's codes for a connection that closed or broke under a request */
static bool conn_broke(CURLcode rc)
{
  switch(rc) {
  case CURLE_GOT_NOTHING:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return true;
  default:
    return false;
  }
}

static void lost_after_send(struct hac_worker *w, struct hac_req *r,
                            CURLcode rc)
{
  static const char *const names[] = {
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"
  };
  char why[CURL_ERROR_SIZE + 64];
  if(r->abort == HAC_ABORT_LOST)
    snprintf(why, sizeof(why), "the cached connection it went out on "
             "closed with no response");
  else if(r->errbuf[0])
    snprintf(why, sizeof(why), "%s (curl error %d)", r->errbuf, (int)rc);
  else
    snprintf(why, sizeof(why), "%s (curl error %d)", curl_easy_strerror(rc),
             (int)rc);
  snprintf(r->errtext, sizeof(r->errtext),
           "CONNECTION_LOST_AFTER_SEND: the connection closed after the "
           "request was sent, before any response; the server may have "
           "received it (%s is not idempotent: not sent again): %.120s",
           names[r->method < 7 ? r->method : 1], why);
  r->res.err = r->errtext;
  atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
}

/*
 * A failed transfer the worker may start again: stopped before anything
 * was sent (h2c, a suspect connection), or an idempotent request whose
 * cached connection turned out dead (libcurl re-sends such a request on
 * HTTP/1.1, not always on HTTP/2).  true: restarted.
 */
static bool start_over(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  bool again = false;
  if(r->abort == HAC_ABORT_STALE || r->abort == HAC_ABORT_H2C)
    again = rc == CURLE_ABORTED_BY_CALLBACK;
  else if(!r->abort && r->sent && !r->responded && conn_broke(rc) &&
          r->reused) {
    found_dead(w, r);
    again = idempotent(r);
  }
  if(!again || r->restarts >= HAC_MAX_RESTARTS)
    return false;
  /* not onto another cached connection that may be as dead: libcurl's
     check before reuse cannot see that a peer has forgotten one */
  if(r->abort != HAC_ABORT_H2C)
    r->fresh = true;
  restart(w, r);
  return true;
}

void hac_xfer_done(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  static const CURLINFO tinfo[HAC_T_COUNT] = {
    CURLINFO_TOTAL_TIME_T, CURLINFO_NAMELOOKUP_TIME_T,
    CURLINFO_CONNECT_TIME_T, CURLINFO_APPCONNECT_TIME_T,
    CURLINFO_PRETRANSFER_TIME_T, CURLINFO_STARTTRANSFER_TIME_T,
    CURLINFO_REDIRECT_TIME_T
  };
  CURL *e = r->easy;
  long code = 0;
  long ver = 0;
  int i;

  if(rc != CURLE_OK && start_over(w, r, rc))
    return;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
  r->res.status = (int32_t)code;
  r->res.http_version = (int32_t)ver;
  r->res.curl_code = (int32_t)rc;
  if(rc == CURLE_OK && !r->hdr_done)
    /* libcurl 7.88 takes a close inside the headers for a whole reply */
    r->bad = "the connection closed inside the response headers";
  if(r->bad) {
    snprintf(r->errtext, sizeof(r->errtext),
             "BAD_RESPONSE: %s (curl error %d)", r->bad, (int)rc);
    r->res.err = r->errtext;
    atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
  }
  else if(rc == CURLE_OK) {
    r->res.flags = HAC_R_OK;
    for(i = 0; i < HAC_T_COUNT; i++) {
      curl_off_t t = 0;
      curl_easy_getinfo(e, tinfo[i], &t);
      r->res.times[i] = (int64_t)t;
    }
    atomic_fetch_add_explicit(&w->n_replies, 1, memory_order_relaxed);
  }
  else {
    const char *what = curl_easy_strerror(rc);
    if(rc == CURLE_OPERATION_TIMEDOUT) {
      r->res.flags = HAC_R_TIMEOUT;
      snprintf(r->errtext, sizeof(r->errtext), "TIMEOUT: %s (curl error %d)",
               r->errbuf[0] ? r->errbuf : what, (int)rc);
      atomic_fetch_add_explicit(&w->n_timeouts, 1, memory_order_relaxed);
    }
    else if(r->abort == HAC_ABORT_LOST ||
            (!idempotent(r) && r->sent && !r->responded && conn_broke(rc)))
      lost_after_send(w, r, rc);
    else if(r->abort == HAC_ABORT_STALE || r->abort == HAC_ABORT_H2C) {
      snprintf(r->errtext, sizeof(r->errtext), r->abort == HAC_ABORT_STALE ?
               "CONNECTION_LOST: connections to the server kept closing "
               "before any response (%d starts) (curl error %d)" :
               "HTTP/2 prior knowledge: no prior-knowledge connection could "
               "be used (%d starts) (curl error %d)",
               (int)r->restarts + 1, (int)rc);
      atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
    }
    else if(r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
      snprintf(r->errtext, sizeof(r->errtext),
               "BODY_TOO_LARGE: response body exceeds max_body_size of "
               "%lld bytes (curl error %d)",
               (long long)w->c->cfg.max_body_size, (int)rc);
      atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
    }
    else {
      if(r->errbuf[0])
        snprintf(r->errtext, sizeof(r->errtext), "%s: %s (curl error %d)",
                 what, r->errbuf, (int)rc);
      else
        snprintf(r->errtext, sizeof(r->errtext), "%s (curl error %d)",
                 what, (int)rc);
      atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
    }
    r->res.err = r->errtext;
  }
  detach(w, r);
  fill_capture(r);
  hac_worker_finish(w, r);
}

/*
 * End a request that libcurl did not complete: refused before start,
 * cancelled, or dropped by close().  rflags is 0 or HAC_R_CANCELLED.
 */
void hac_xfer_fail(struct hac_worker *w, struct hac_req *r, uint32_t rflags,
                   const char *msg)
{
  detach(w, r);
  r->res.flags = rflags;
  snprintf(r->errtext, sizeof(r->errtext), "%s", msg);
  r->res.err = r->errtext;
  if(rflags & HAC_R_CANCELLED)
    atomic_fetch_add_explicit(&w->n_cancelled, 1, memory_order_relaxed);
  else if(rflags & HAC_R_TIMEOUT)
    atomic_fetch_add_explicit(&w->n_timeouts, 1, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
  fill_capture(r);
  hac_worker_finish(w, r);
}
