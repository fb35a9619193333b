/*
 * mux.c - origins whose requests share HTTP/2 connections: HTTPS (HTTP/2
 * by ALPN unless the origin answers HTTP/1) and HTTP/2 with prior knowledge
 * over cleartext (http_version 2, "h2c").
 *
 * Bursts.  libcurl does not let a transfer wait for a connection that is
 * still being opened once the origin is known to multiplex: when the open
 * connections are at their stream limit (HAC_H2C_STREAMS, the multi's
 * CURLMOPT_MAX_CONCURRENT_STREAMS), each further transfer opens one of its
 * own (200 concurrent HTTPS requests opened 101 connections).  So a
 * request that would not fit waits here, outside libcurl, while a
 * connection is being opened, and goes when that one can take it: a
 * transfer is handed to libcurl to OPEN a connection or to JOIN one that
 * has room.  An HTTPS origin that answers HTTP/1.x needs a connection per
 * request and is not held back once that is known.
 *
 * h2c on libcurl 7.88 (Debian 12).  A prior-knowledge transfer that reuses
 * an HTTP/2 connection fails with "Error in the HTTP2 framing layer" (curl
 * issue 10634, fixed in 8.0.0), and a CURL_HTTP_VERSION_2_0 transfer, which
 * reuses one correctly, would send "Upgrade: h2c" on a new connection,
 * which a prior-knowledge server does not speak.  So an OPEN transfer asks
 * for prior knowledge with CURLOPT_FRESH_CONNECT (libcurl never lets it
 * reuse a connection), a JOIN transfer asks for 2_0, and the pre-request
 * callback, before a byte is sent, stops a JOIN transfer that libcurl put
 * on any other connection than an OPEN one; it starts again as OPEN.  A
 * timed out or failed stream changes nothing here: a connection stays what
 * it is until libcurl closes it (hac_mux_close_socket()).  libcurl 8 needs
 * none of this: every h2c transfer asks for prior knowledge.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static bool fixed_libcurl(void)
{
  static int fixed = -1; /* per process; a data race would store the same */
  if(fixed < 0)
    fixed = curl_version_info(CURLVERSION_NOW)->version_num >= 0x080000;
  return fixed;
}

/* "<scheme letter><authority>": enough to tell origins apart (a default
   port spelled out or not makes two origins, which costs nothing) */
static size_t origin_key(const char *url, char *key, size_t cap)
{
  const char *p = strstr(url, "://");
  const char *end;
  const char *at;
  size_t n;
  if(!p)
    return 0;
  p += 3;
  end = p + strcspn(p, "/?#");
  at = memchr(p, '@', (size_t)(end - p));
  while(at) { /* userinfo: the last '@' ends it */
    p = at + 1;
    at = memchr(p, '@', (size_t)(end - p));
  }
  n = (size_t)(end - p);
  if(!n || n + 2 > cap)
    return 0;
  key[0] = (char)(url[4] == 's' || url[4] == 'S' ? 's' : 'h');
  memcpy(key + 1, p, n);
  key[n + 1] = '\0';
  return n + 1;
}

static uint32_t hash(const char *s, size_t n)
{
  uint32_t h = 2166136261u;
  while(n--)
    h = (h ^ (unsigned char)*s++) * 16777619u;
  return h;
}

static struct hac_origin *origin_get(struct hac_worker *w, const char *url,
                                     bool h2c)
{
  char key[512];
  size_t n = origin_key(url, key, sizeof(key));
  uint32_t h;
  struct hac_origin *o;
  if(!n)
    return NULL;
  h = hash(key, n);
  for(o = w->otab[h % HAC_OTAB]; o; o = o->next)
    if(o->hash == h && !strcmp(o->key, key))
      return o;
  o = hac_calloc(1, sizeof(*o) + n + 1);
  if(!o)
    return NULL;
  memcpy(o->key, key, n + 1);
  o->hash = h;
  o->h2c = h2c;
  o->next = w->otab[h % HAC_OTAB];
  w->otab[h % HAC_OTAB] = o;
  return o;
}

/* Forget an origin nothing refers to: no request counts on it, no
   connection of it is open. */
static void maybe_free(struct hac_worker *w, struct hac_origin *o)
{
  struct hac_origin **pp;
  if(o->conns || o->opening || o->joining || o->on_conns || o->wait.head ||
     o->kicked)
    return;
  for(pp = &w->otab[o->hash % HAC_OTAB]; *pp; pp = &(*pp)->next)
    if(*pp == o) {
      *pp = o->next;
      hac_mfree(o);
      return;
    }
}

/* streams the origin's open connections can still take */
static long room(const struct hac_origin *o)
{
  return (long)o->conns * HAC_H2C_STREAMS - (long)o->on_conns -
    (long)o->joining;
}

/* Waiters may be able to go: look once the loop iteration ends. */
static void kick(struct hac_worker *w, struct hac_origin *o)
{
  if(!o->wait.head || o->kicked)
    return;
  o->kicked = true;
  o->knext = w->kicked;
  w->kicked = o;
}

static void park(struct hac_origin *o, struct hac_req *r)
{
  r->mux_waiting = true;
  hac_queue_add(&o->wait, r);
  o->nwait++;
}

static void unpark(struct hac_req *r)
{
  struct hac_origin *o = r->origin;
  hac_queue_del(&o->wait, r);
  r->mux_waiting = false;
  o->nwait--;
}

/*
 * Before a request's easy handle is set up: OPEN, JOIN, not ours (HTTP/1),
 * or wait here (HAC_GATE_*; xfer.c parks or fails it, this file only
 * decides).  promoted: it leaves the wait.
 */
int hac_mux_gate(struct hac_worker *w, struct hac_req *r, bool promoted)
{
  struct hac_origin *o;
  bool h2c = false;
  r->mux = HAC_MUX_OFF;
  if(strncasecmp(r->url, "https:", 6)) {
    const char *v = r->opt_len ? hac_req_opt(r, HAC_O_HTTP_VERSION) : NULL;
    if(!v || strtol(v, NULL, 10) != HAC_HTTP_2_PRIOR || fixed_libcurl() ||
       strncasecmp(r->url, "http:", 5))
      return HAC_GATE_GO;
    h2c = true;
  }
  o = origin_get(w, r->url, h2c);
  if(!o)
    /* without: a burst may open more connections than it needs */
    return h2c ? HAC_GATE_NOMEM : HAC_GATE_GO;
  if(o->proto == HAC_PROTO_H1) {
    maybe_free(w, o);
    return HAC_GATE_GO;
  }
  r->origin = o;
  r->mux_h2c = h2c;
  if(h2c && r->fresh)
    r->mux_force_open = true; /* starting over after a dead connection */
  if(!r->mux_force_open && (promoted || !o->wait.head) && room(o) > 0) {
    r->mux = HAC_MUX_JOIN;
    r->mux_joining = true;
    o->joining++;
  }
  else if(!r->mux_force_open && !promoted && o->opening &&
          o->nwait < o->opening * (uint32_t)(HAC_H2C_STREAMS - 1)) {
    park(o, r);
    return HAC_GATE_WAIT;
  }
  else {
    r->mux = HAC_MUX_OPEN;
    r->mux_opening = true;
    o->opening++;
  }
  return HAC_GATE_GO;
}

/*
 * The next waiter of a kicked origin that can go now, out of the wait, or
 * NULL when there is none left: xfer.c starts each (once per loop
 * iteration).  *cur, NULL at first, is the origin being looked at; it is
 * off the kicked list meanwhile, as starting a waiter may kick others.
 */
struct hac_req *hac_mux_next(struct hac_worker *w, struct hac_origin **cur)
{
  for(;;) {
    struct hac_origin *o = *cur;
    if(!o) {
      o = w->kicked;
      if(!o)
        return NULL;
      w->kicked = o->knext;
      *cur = o;
    }
    if(o->wait.head && (o->proto == HAC_PROTO_H1 || room(o) > 0 ||
                        !o->opening)) {
      struct hac_req *r = o->wait.head;
      unpark(r);
      r->origin = NULL;
      return r;
    }
    o->kicked = false;
    maybe_free(w, o);
    *cur = NULL;
  }
}

/* Set CURLOPT_HTTP_VERSION (and what goes with it) for an http_version 2
   request, as hac_mux_gate() decided. */
CURLcode hac_mux_version(struct hac_req *r)
{
  CURLcode rc;
  if(r->mux_h2c && r->mux == HAC_MUX_JOIN)
    return curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
                            (long)CURL_HTTP_VERSION_2_0);
  rc = curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
                        (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  if(!rc && r->mux_h2c && r->mux == HAC_MUX_OPEN)
    rc = curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
  return rc;
}

/*
 * From the pre-request callback, before anything is sent on the connection
 * libcurl picked (fresh: opened for this transfer).  true: stop the
 * transfer (an h2c JOIN on the wrong connection; it starts again as OPEN).
 */
bool hac_mux_prereq(struct hac_worker *w, struct hac_req *r, bool fresh,
                    const char *ip, long port, long lport)
{
  struct hac_origin *o = r->origin;
  struct hac_conn *k = hac_conn_find(w, ip, port, lport);
  bool ours = k && k->open && k->mux && k->origin == o;
  if(r->mux_opening) {
    r->mux_opening = false;
    o->opening--;
  }
  if(r->mux_joining) {
    r->mux_joining = false;
    o->joining--;
  }
  if(r->mux_h2c && r->mux == HAC_MUX_JOIN && !ours) {
    /* it would send "Upgrade: h2c"; a new connection has carried nothing:
       shut it so that no other JOIN transfer picks it */
    if(fresh && k && k->open)
      (void)shutdown((int)hac_conn_fd(w, k), SHUT_RDWR);
    r->mux_force_open = true;
    kick(w, o);
    return true;
  }
  if(!ours && k && k->open && !k->mux) {
    /* FRESH_CONNECT for h2c OPEN; for HTTPS any connection to the origin
       counts (a JOIN that found no room opened one) */
    k->mux = true;
    k->origin = o;
    o->conns++;
  }
  if(!r->mux_on) {
    r->mux_on = true;
    o->on_conns++;
  }
  kick(w, o);
  return false;
}

/* The first status line of an HTTPS origin's first response says whether
   it multiplexes at all. */
void hac_mux_learn(struct hac_worker *w, struct hac_req *r, const char *line,
                   size_t len)
{
  struct hac_origin *o = r->origin;
  r->mux_learned = true;
  if(o->h2c || o->proto != HAC_PROTO_UNKNOWN || len < 6)
    return;
  if(!memcmp(line, "HTTP/2", 6))
    o->proto = HAC_PROTO_H2;
  else if(!memcmp(line, "HTTP/1", 6)) {
    o->proto = HAC_PROTO_H1; /* the waiters go, each to a connection */
    kick(w, o);
  }
}

/* The transfer leaves libcurl, or the wait here: true when it waited
   (xfer.c then stops its deadline). */
bool hac_mux_detach(struct hac_worker *w, struct hac_req *r)
{
  struct hac_origin *o = r->origin;
  bool waited;
  if(!o)
    return false;
  waited = r->mux_waiting;
  if(waited)
    unpark(r);
  if(r->mux_opening)
    o->opening--;
  if(r->mux_joining)
    o->joining--;
  if(r->mux_on)
    o->on_conns--;
  r->mux_opening = r->mux_joining = r->mux_on = false;
  r->mux = HAC_MUX_OFF;
  r->origin = NULL;
  kick(w, o);
  maybe_free(w, o);
  return waited;
}

/*
 * CURLOPT_CLOSESOCKETFUNCTION (clientp: the worker): conn.c marks the
 * connection closed, and the origin it counted for (if any) has one
 * connection less.
 */
int hac_mux_close_socket(void *clientp, curl_socket_t fd)
{
  struct hac_worker *w = clientp;
  struct hac_conn *k = hac_conn_closing(w, fd);
  if(k && k->mux) {
    struct hac_origin *o = k->origin;
    k->origin = NULL;
    k->mux = false;
    if(o) {
      o->conns--;
      kick(w, o);
      maybe_free(w, o);
    }
  }
  return close(fd);
}

void hac_mux_fini(struct hac_worker *w)
{
  size_t i;
  for(i = 0; i < HAC_OTAB; i++)
    while(w->otab[i]) {
      struct hac_origin *o = w->otab[i];
      w->otab[i] = o->next;
      hac_mfree(o);
    }
  w->kicked = NULL;
}
