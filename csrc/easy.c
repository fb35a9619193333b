/*
 * easy.c - a worker's pool of easy handles and the options a request sets
 * on one: everything for a handle of a new shape, only what differs per
 * request for a handle that still holds a request of the same shape.
 */
#include "internal.h"

#include <string.h>
#include <strings.h>

static const char empty[] = "";

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
  if(!w->npool) {
    e = curl_easy_init();
    if(e && hac_share_attach(w, e)) {
      curl_easy_cleanup(e);
      e = NULL;
    }
    return e;
  }
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
                          hac_method_names[r->method]);
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
  SET(CURLOPT_CONNECTTIMEOUT_MS, hac_connect_ms(w, r, r->run_ms));
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
  const char *proxy = hac_proxy_of(w, r);
  CURLcode rc = set_per_request(w, r);
  if(rc)
    return rc;
  SET(CURLOPT_WRITEFUNCTION, hac_on_body);
  SET(CURLOPT_HEADERFUNCTION, hac_on_header);
  SET(CURLOPT_PREREQFUNCTION, hac_on_prereq);
  SET(CURLOPT_OPENSOCKETFUNCTION, hac_conn_open);
  SET(CURLOPT_OPENSOCKETDATA, (void *)w);
  SET(CURLOPT_CLOSESOCKETFUNCTION, hac_mux_close_socket);
  SET(CURLOPT_CLOSESOCKETDATA, (void *)w);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  rc = hac_set_tls(w, r, proxy);
  if(!rc)
    rc = hac_set_transport(w, r, proxy);
  if(rc)
    return rc;
  /* a stream may be endless: the cap is for bodies kept whole */
  SET(CURLOPT_MAXFILESIZE_LARGE,
      (curl_off_t)(r->stream ? 0 : cfg->max_body_size));
  SET(CURLOPT_FOLLOWLOCATION,
      hac_req_opt_long(r, HAC_O_FOLLOW, cfg->follow_redirect) ? 1L : 0L);
  SET(CURLOPT_MAXREDIRS,
      hac_req_opt_long(r, HAC_O_MAX_REDIRS, cfg->max_redirects));
  if(hac_req_opt_long(r, HAC_O_KEEPALIVE, cfg->tcp_keepalive)) {
    long idle = hac_req_opt_long(r, HAC_O_KA_IDLE, cfg->tcp_ka_idle);
    long intvl = hac_req_opt_long(r, HAC_O_KA_INTERVAL, cfg->tcp_ka_interval);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    if(idle > 0)
      SET(CURLOPT_TCP_KEEPIDLE, idle);
    if(intvl > 0)
      SET(CURLOPT_TCP_KEEPINTVL, intvl);
  }
  s = hac_req_opt_str(r, HAC_O_USERNAME, NULL);
  if(s) {
    SET(CURLOPT_USERNAME, s);
    SET(CURLOPT_HTTPAUTH, (unsigned long)hac_req_opt_long(r, HAC_O_AUTHMETHOD,
                                                          cfg->authmethod));
  }
  s = hac_req_opt_str(r, HAC_O_PASSWORD, NULL);
  if(s)
    SET(CURLOPT_PASSWORD, s);
  switch(hac_req_opt_long(r, HAC_O_HTTP_VERSION, HAC_HTTP_DEFAULT)) {
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
  /* starting over after a dead cached connection: a new one, unless the
     origin shares HTTP/2 connections (mux.c): then the restarts of every
     stream of the dead one would each open a connection (each a TLS
     handshake); the origin's gate opens one for them instead, and the
     dead one is gone (libcurl closed it, the idle ones were shut) */
  if(r->fresh && !r->origin)
    SET(CURLOPT_FRESH_CONNECT, 1L);
  if(cfg->curl_verbose) {
    SET(CURLOPT_DEBUGFUNCTION, hac_on_debug);
    SET(CURLOPT_VERBOSE, 1L);
  }
  rc = set_method(r);
  if(!rc)
    rc = set_headers(w, r);
  if(!rc && (r->flags & HAC_F_FILES))
    rc = hac_files_setup(w, r); /* output file, body from a file or form */
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

/*
 * A pooled or new handle for r, set up for it (r->easy, r->shape).  On
 * return r->easy is NULL when no handle could be made, else a libcurl
 * error setting an option is returned.
 */
CURLcode hac_easy_attach(struct hac_worker *w, struct hac_req *r)
{
  bool same;
  r->shape = shape_of(r);
  r->easy = easy_get(w, r->shape, &same);
  if(!r->easy)
    return CURLE_OUT_OF_MEMORY;
  return same ? configure_same(w, r) : configure(w, r);
}

/* Give r's handle back to the pool; keep: the request completed, so the
   next one of its shape may reuse the options it leaves. */
void hac_easy_put(struct hac_worker *w, struct hac_req *r, bool keep)
{
  easy_put(w, r->easy, keep ? r->shape : 0);
  r->easy = NULL;
  hac_transport_put(r);
  if(r->hdrs) {
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
  }
}
