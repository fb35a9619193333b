/*
 * capture.c - what libcurl tells about a transfer while it runs (the
 * header, body, debug and pre-request callbacks easy.c sets) and, when it
 * ends, the result: status, times, error text.
 *
 * on_prereq is here, not in xfer.c, because it is one of these callbacks:
 * it records what each attempt went out on and vetoes a re-send libcurl is
 * about to make; what follows from that (start over, or fail) is decided
 * in xfer.c once the transfer has ended.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HAC_PRESIZE_MAX (1024 * 1024)

static const char bad_status[] = "the status code is not three digits";
static const char bad_class[] = "the status code is below 100";
static const char bad_line[] = "malformed status line";
static const char bad_mismatch[] = "the status line is not HTTP/1.x or 2 "
  "(libcurl read it as another status)";

/* ------------------------------------------------------------ callbacks */

size_t hac_on_header(char *data, size_t size, size_t n, void *userp)
{
  struct hac_req *r = userp;
  size_t len = size * n;
  r->responded = true;
  if(r->in_body)
    return len; /* trailers: the body is already being captured */
  /* libcurl takes any "http/" line for a status line (and an unknown one
     for "HTTP/1.0 200"): so do we, to catch what it makes of it */
  if(len >= 5 && !strncasecmp(data, "HTTP/", 5)) {
    /* a new response (1xx, redirect hop): keep only the last one */
    const char *p = memchr(data, ' ', len);
    const char *end = data + len;
    if(r->origin && !r->mux_learned)
      hac_mux_learn(r->w, r, data, len);
    if(r->output && hac_output_reset(r))
      return 0;
    r->buf.len = 0;
    r->res.reason_off = r->res.reason_len = 0;
    r->hdr_done = false;
    r->cl_seen = false;
    r->line_status = 0;
    if(!p) {
      r->bad = bad_line;
      return 0;
    }
    else {
      const char *digits = ++p;
      while(p < end && *p >= '0' && *p <= '9')
        p++;
      /* RFC 9112 4: status-code = 3DIGIT; libcurl 8 reads "2000" as 200 */
      if(p - digits != 3 || (p < end && *p != ' ' && *p != '\r' &&
                             *p != '\n')) {
        r->bad = bad_status;
        return 0;
      }
      r->line_status = (int32_t)strtol(digits, NULL, 10);
      if(r->line_status < 100) { /* "000": no status class at all */
        r->bad = bad_class;
        return 0;
      }
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
    if(r->stream) {
      if(hac_buf_add(&r->buf, data, len))
        return 0;
      hac_stream_headers_done(r);
      return len;
    }
    /* a known length: room for the body at once, no regrowth; bounded so
       that a lying server cannot make us reserve max_body_size per request */
    if(r->cl_seen && r->cl <= HAC_PRESIZE_MAX && !r->output)
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

size_t hac_on_body(char *data, size_t size, size_t n, void *userp)
{
  struct hac_req *r = userp;
  size_t len = size * n;
  r->responded = true;
  if(!r->in_body) {
    r->in_body = true;
    r->res.body_off = r->buf.len;
  }
  if(r->stream)
    return hac_stream_write(r, data, len);
  if(r->output) /* to a file, from here: no size cap */
    return hac_output_write(r, data, len);
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

/* How much of a trace line may be shown: credentials are cut off (the
   value of an Authorization or Proxy-Authorization header, the user name
   in libcurl's "... auth using Basic with user 'bob'"). */
static size_t credential_free(curl_infotype type, const char *p, size_t n)
{
  static const char *const names[] = { "authorization:",
                                       "proxy-authorization:" };
  size_t i;
  if(type == CURLINFO_HEADER_OUT) {
    for(i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
      size_t len = strlen(names[i]);
      if(n > len && !strncasecmp(p, names[i], len))
        return len + 1;
    }
  }
  else if(type == CURLINFO_TEXT) {
    const char *u = memmem(p, n, "with user ", 10);
    if(u)
      return (size_t)(u - p) + 10;
  }
  return n;
}

/* curl_verbose: "[id] > line" per line into the client's log text */
int hac_on_debug(CURL *e, curl_infotype type, char *data, size_t size,
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
      size_t safe = credential_free(type, p, shown);
      k = snprintf(line, sizeof(line), "[%llu] %s %.*s%s\n",
                   (unsigned long long)r->res.id, mark, (int)safe, p,
                   safe < shown ? "[redacted]" : "");
      if(k > 0)
        hac_log_add(r->w->c, line, (size_t)k < sizeof(line) ?
                    (size_t)k : sizeof(line) - 1);
    }
    p += n + 1;
  }
  return 0;
}

/*
 * CURLOPT_PREREQFUNCTION: libcurl has a connection for the request and is
 * about to send it, once per attempt (a redirect, an authentication round
 * or a re-send is a new one).  Called again with no response since the
 * last time, it is libcurl's silent re-send after the connection died
 * ("Connection died, retrying a fresh connect"), whatever the method: a
 * POST the server may already have processed would run twice.
 */
int hac_on_prereq(void *userp, char *ip, char *local_ip, int port,
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
      hac_conn_dead(w, r);
    if(!hac_req_idempotent(r)) {
      r->abort = HAC_ABORT_LOST;
      return CURL_PREREQFUNC_ABORT;
    }
    if(!fresh && !hac_conn_trusted(w, ip, port, local_port)) {
      /* another cached connection, as suspect as the first: start over
         once the suspects are shut (libcurl would try up to five).  One
         opened after the suspicion is fine: refusing it too made every
         later request try a connection the refusal broke, then a new one
         (HTTP/2 on libcurl 8.22, under load) */
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

/* --------------------------------------------------------------- result */

static void lost_after_send(struct hac_req *r,
                            CURLcode rc)
{
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
           hac_method_names[r->method <= HAC_M_OPTIONS ? r->method : 1],
           why);
  r->res.err = r->errtext;
}

/* Which phase a transfer that timed out was in, from what libcurl
   recorded.  The request counts as sent when libcurl sent its bytes (or
   reached pretransfer on a connection it connected): libcurl 8.2x fills in
   the pretransfer and first-byte times of a transfer that timed out while
   connecting, so those times alone no longer tell. */
static const char *timeout_phase(struct hac_req *r)
{
  CURL *e = r->easy;
  curl_off_t tcp = 0, tls = 0, sent = 0, got = 0;
  long req = 0, head = 0;
  if(strstr(r->errbuf, "too slow"))
    return "slower than low_speed_limit for low_speed_time";
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &tcp);
  curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &tls);
  curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &sent);
  curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &req);
  if(req > 0 || (sent > 0 && tcp > 0)) {
    curl_easy_getinfo(e, CURLINFO_HEADER_SIZE, &head);
    curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &got);
    return (head > 0 || got > 0) ? "receiving the response" :
      "waiting for the response";
  }
  if(tcp <= 0)
    /* an IP address "resolves" in microseconds: libcurl's text tells */
    return strstr(r->errbuf, "esolv") ? "connect (DNS lookup)" :
      "connect (TCP)";
  if(tls <= 0 && !strncasecmp(r->url, "https:", 6))
    return "connect (TLS handshake)";
  return "connect (proxy or tunnel)";
}

/* A transfer libcurl completed with rc, its easy handle still attached:
   status, times or error text, and the count it goes in. */
void hac_result_done(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  static const CURLINFO tinfo[HAC_T_COUNT] = {
    CURLINFO_TOTAL_TIME_T, CURLINFO_NAMELOOKUP_TIME_T,
    CURLINFO_CONNECT_TIME_T, CURLINFO_APPCONNECT_TIME_T,
    CURLINFO_PRETRANSFER_TIME_T, CURLINFO_STARTTRANSFER_TIME_T,
    CURLINFO_REDIRECT_TIME_T
  };
  CURL *e = r->easy;
  const char *why;
  long code = 0;
  long ver = 0;
  int i;

  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
  if(rc == CURLE_OK && !r->bad && r->hdr_done && code != r->line_status)
    r->bad = bad_mismatch; /* e.g. "HTTP/2 404" on an HTTP/1 connection */
  /* no status at all when the status line is malformed */
  r->res.status = r->bad == bad_status || r->bad == bad_line ||
    r->bad == bad_class || r->bad == bad_mismatch ? 0 : (int32_t)code;
  r->res.http_version = (int32_t)ver;
  r->res.curl_code = (int32_t)rc;
  if(rc == CURLE_OK && !r->hdr_done)
    /* libcurl 7.88 takes a close inside the headers for a whole reply */
    r->bad = "the connection closed inside the response headers";
  if(r->bad) {
    snprintf(r->errtext, sizeof(r->errtext),
             "BAD_RESPONSE: %s (curl error %d)", r->bad, (int)rc);
    r->res.err = r->errtext;
  }
  else if(rc == CURLE_OK) {
    r->res.flags = HAC_R_OK;
    for(i = 0; i < HAC_T_COUNT; i++) {
      curl_off_t t = 0;
      curl_easy_getinfo(e, tinfo[i], &t);
      r->res.times[i] = (int64_t)t;
    }
  }
  else {
    const char *what = curl_easy_strerror(rc);
    if(rc == CURLE_OPERATION_TIMEDOUT) {
      r->res.flags = HAC_R_TIMEOUT;
      snprintf(r->errtext, sizeof(r->errtext),
               "TIMEOUT: %s; phase: %s (curl error %d)",
               r->errbuf[0] ? r->errbuf : what, timeout_phase(r), (int)rc);
    }
    else if(r->abort == HAC_ABORT_LOST ||
            (!hac_req_idempotent(r) && r->sent && !r->responded &&
             hac_conn_broke(rc)))
      lost_after_send(r, rc);
    else if(r->abort == HAC_ABORT_STALE || r->abort == HAC_ABORT_H2C) {
      snprintf(r->errtext, sizeof(r->errtext), r->abort == HAC_ABORT_STALE ?
               "CONNECTION_LOST: connections to the server kept closing "
               "before any response (%d starts) (curl error %d)" :
               "HTTP/2 prior knowledge: no prior-knowledge connection could "
               "be used (%d starts) (curl error %d)",
               (int)r->restarts + 1, (int)rc);
    }
    else if((why = hac_files_error(r))) {
      /* files.c's own text names the file and the errno */
      snprintf(r->errtext, sizeof(r->errtext), "%s (curl error %d)", why,
               (int)rc);
    }
    else if(r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
      snprintf(r->errtext, sizeof(r->errtext),
               "BODY_TOO_LARGE: response body exceeds max_body_size of "
               "%lld bytes (curl error %d)",
               (long long)w->c->cfg.max_body_size, (int)rc);
    }
    else {
      if(r->errbuf[0])
        snprintf(r->errtext, sizeof(r->errtext), "%s: %s (curl error %d)",
                 what, r->errbuf, (int)rc);
      else
        snprintf(r->errtext, sizeof(r->errtext), "%s (curl error %d)",
                 what, (int)rc);
    }
    r->res.err = r->errtext;
  }
}

/* Count a finished request's result once, by its flags. */
void hac_result_count(struct hac_worker *w, const struct hac_req *r)
{
  if(r->res.flags & HAC_R_OK)
    atomic_fetch_add_explicit(&w->n_replies, 1, memory_order_relaxed);
  else if(r->res.flags & HAC_R_TIMEOUT)
    atomic_fetch_add_explicit(&w->n_timeouts, 1, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
}

/*
 * A request libcurl did not complete: refused before start, cancelled,
 * timed out outside libcurl, or dropped by close().  rflags is 0,
 * HAC_R_TIMEOUT or HAC_R_CANCELLED.
 */
void hac_result_fail(struct hac_worker *w, struct hac_req *r,
                     uint32_t rflags, const char *msg)
{
  r->res.flags = rflags;
  snprintf(r->errtext, sizeof(r->errtext), "%s", msg);
  r->res.err = r->errtext;
  if(rflags & HAC_R_CANCELLED)
    atomic_fetch_add_explicit(&w->n_cancelled, 1, memory_order_relaxed);
  else if(rflags & HAC_R_TIMEOUT)
    atomic_fetch_add_explicit(&w->n_timeouts, 1, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&w->n_errors, 1, memory_order_relaxed);
  hac_result_fill(r);
}
