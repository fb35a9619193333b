/*
 * h2c.c - HTTP/2 with prior knowledge over cleartext (http_version 2).
 *
 * libcurl 8 does this right: every such transfer asks for prior knowledge.
 *
 * libcurl 7.88 (Debian 12) breaks a prior-knowledge transfer that reuses
 * an HTTP/2 connection: it stacks a second HTTP/2 layer on it and fails
 * with "Error in the HTTP2 framing layer" (curl issue 10634, fixed in
 * 8.0.0).  A transfer asking for CURL_HTTP_VERSION_2_0 reuses such a
 * connection correctly, but on a new connection it would send an HTTP/1.1
 * request with "Upgrade: h2c", which a prior-knowledge server does not
 * speak.  So each 7.88 transfer is one of two kinds, and neither may meet
 * the other's kind of connection:
 *   OPEN  prior knowledge with CURLOPT_FRESH_CONNECT: libcurl never lets it
 *         reuse a connection, so the bug cannot happen;
 *   JOIN  CURL_HTTP_VERSION_2_0 with PIPEWAIT onto an open OPEN connection.
 *         The pre-request callback (before a byte is sent) checks that the
 *         connection libcurl picked is one an OPEN transfer started; if not,
 *         the transfer is stopped there and started again as OPEN.
 * A transfer joins when the origin's open connections have room for it at
 * HAC_H2C_STREAMS streams each (the multi handle's
 * CURLMOPT_MAX_CONCURRENT_STREAMS).  Otherwise, while a connection is being
 * opened, it waits here (not in libcurl) until that one is usable: handed
 * to libcurl early, it would meet the half-open connection and be sent
 * back, and a burst would open a connection per request.  With nothing
 * being opened, it opens one more.  A timed out or failed stream changes
 * nothing here: a connection stays what it is until libcurl closes it
 * (conn.c tells).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static bool fixed_libcurl(void)
{
  static int fixed = -1; /* per process; a data race would store the same */
  if(fixed < 0)
    fixed = curl_version_info(CURLVERSION_NOW)->version_num >= 0x080000;
  return fixed;
}

static struct hac_origin *origin_get(struct hac_worker *w, const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL;
  char *port = NULL;
  char key[512];
  struct hac_origin *o = NULL;
  size_t n;
  if(!u)
    return NULL;
  if(curl_url_set(u, CURLUPART_URL, url, 0) ||
     curl_url_get(u, CURLUPART_HOST, &host, 0) ||
     curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
    goto out;
  if(snprintf(key, sizeof(key), "%s:%s", host, port) >= (int)sizeof(key))
    goto out;
  for(o = w->origins; o; o = o->next)
    if(!strcmp(o->key, key))
      goto out;
  n = strlen(key) + 1;
  o = hac_calloc(1, sizeof(*o) + n);
  if(o) {
    memcpy(o->key, key, n);
    o->next = w->origins;
    w->origins = o;
  }
out:
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return o;
}

/* streams the origin's open connections can still take */
static long room(const struct hac_origin *o)
{
  return (long)o->conns * HAC_H2C_STREAMS - (long)o->on_conns -
    (long)o->joining;
}

static void park(struct hac_worker *w, struct hac_origin *o,
                 struct hac_req *r)
{
  r->h2_waiting = true;
  r->wnext = NULL;
  r->wprev = o->wait_tail;
  if(o->wait_tail)
    o->wait_tail->wnext = r;
  else
    o->wait_head = r;
  o->wait_tail = r;
  o->nwait++;
  hac_xfer_park(w, r);
}

static void unpark(struct hac_worker *w, struct hac_req *r)
{
  struct hac_origin *o = r->origin;
  if(r->wprev)
    r->wprev->wnext = r->wnext;
  else
    o->wait_head = r->wnext;
  if(r->wnext)
    r->wnext->wprev = r->wprev;
  else
    o->wait_tail = r->wprev;
  r->wnext = r->wprev = NULL;
  r->h2_waiting = false;
  o->nwait--;
  hac_xfer_unpark(w, r);
}

/* Waiters may be able to go: look once the loop iteration ends. */
static void kick(struct hac_worker *w, const struct hac_origin *o)
{
  if(o->wait_head)
    w->h2c_kick = true;
}

/*
 * Decide how an http_version 2 request goes (before its easy handle is
 * set up): OPEN, JOIN, or wait here (true: parked, or failed).
 */
bool hac_h2c_gate(struct hac_worker *w, struct hac_req *r, bool promoted)
{
  struct hac_origin *o;
  const char *v = NULL;
  r->h2_mode = HAC_H2C_OFF;
  if(fixed_libcurl() || strncasecmp(r->url, "http:", 5))
    return false;
  v = hac_req_opt(r, HAC_O_HTTP_VERSION);
  if(!v || strtol(v, NULL, 10) != HAC_HTTP_2_PRIOR)
    return false;
  if(!r->origin)
    r->origin = origin_get(w, r->url);
  o = r->origin;
  if(!o) {
    hac_xfer_fail(w, r, 0, "out of memory for an HTTP/2 origin");
    return true;
  }
  if(!r->h2_force_prior && (promoted || !o->wait_head) && room(o) > 0) {
    r->h2_mode = HAC_H2C_JOIN;
    r->h2_joining = true;
    o->joining++;
  }
  else if(!r->h2_force_prior && !promoted && o->opening &&
          o->nwait < o->opening * (uint32_t)(HAC_H2C_STREAMS - 1)) {
    park(w, o, r);
    return true;
  }
  else {
    r->h2_mode = HAC_H2C_OPEN;
    r->h2_opening = true;
    o->opening++;
  }
  return false;
}

/* Start the waiters that can go now (once per loop iteration). */
void hac_h2c_promote(struct hac_worker *w)
{
  struct hac_origin *o;
  w->h2c_kick = false;
  for(o = w->origins; o; o = o->next) {
    while(o->wait_head && (room(o) > 0 || !o->opening)) {
      struct hac_req *r = o->wait_head;
      unpark(w, r);
      hac_xfer_start_h2c(w, r);
    }
  }
}

/* Set CURLOPT_HTTP_VERSION (and what goes with it) for an http_version 2
   request, as hac_h2c_gate() decided. */
CURLcode hac_h2c_version(struct hac_worker *w, struct hac_req *r)
{
  CURLcode rc;
  (void)w;
  switch(r->h2_mode) {
  case HAC_H2C_JOIN:
    return curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
                            (long)CURL_HTTP_VERSION_2_0);
  case HAC_H2C_OPEN:
    rc = curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
                          (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    if(!rc)
      rc = curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
    return rc;
  default:
    return curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
                            (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  }
}

/*
 * From the pre-request callback, before anything is sent on the connection
 * libcurl picked (fresh: opened for this transfer).  true: stop the
 * transfer (it is started again as OPEN).
 */
bool hac_h2c_prereq(struct hac_worker *w, struct hac_req *r, bool fresh,
                    const char *ip, long port, long lport)
{
  struct hac_origin *o = r->origin;
  struct hac_conn *k;
  if(r->h2_mode == HAC_H2C_OFF)
    return false;
  k = hac_conn_find(w, ip, port, lport);
  if(r->h2_mode == HAC_H2C_OPEN) {
    if(r->h2_opening) {
      r->h2_opening = false;
      o->opening--;
    }
    /* FRESH_CONNECT: always a new connection; it is ours from now on */
    if(k && k->open && !k->h2c) {
      k->h2c = true;
      k->origin = o;
      o->conns++;
    }
  }
  else {
    if(r->h2_joining) {
      r->h2_joining = false;
      o->joining--;
    }
    if(!k || !k->open || !k->h2c) {
      /* a JOIN transfer on a connection that is not prior-knowledge
         HTTP/2: it would send "Upgrade: h2c".  A new one has carried
         nothing: shut it so that no other JOIN transfer picks it. */
      if(fresh && k && k->open)
        (void)shutdown((int)hac_conn_fd(w, k), SHUT_RDWR);
      r->h2_force_prior = true;
      kick(w, o);
      return true;
    }
  }
  if(!r->h2_on) {
    r->h2_on = true;
    o->on_conns++;
  }
  kick(w, o);
  return false;
}

/* The transfer leaves libcurl, or the wait here. */
void hac_h2c_detach(struct hac_worker *w, struct hac_req *r)
{
  struct hac_origin *o = r->origin;
  if(!o)
    return;
  if(r->h2_waiting)
    unpark(w, r);
  if(r->h2_opening)
    o->opening--;
  if(r->h2_joining)
    o->joining--;
  if(r->h2_on)
    o->on_conns--;
  r->h2_opening = r->h2_joining = r->h2_on = false;
  r->h2_mode = HAC_H2C_OFF;
  kick(w, o);
}

/* libcurl closed an h2c connection (conn.c). */
void hac_h2c_conn_closed(struct hac_worker *w, struct hac_conn *k)
{
  if(k->origin) {
    k->origin->conns--;
    kick(w, k->origin);
  }
  k->origin = NULL;
  k->h2c = false;
}

void hac_h2c_fini(struct hac_worker *w)
{
  while(w->origins) {
    struct hac_origin *o = w->origins;
    w->origins = o->next;
    hac_mfree(o);
  }
}
