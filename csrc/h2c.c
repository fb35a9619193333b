/*
 * h2c.c - HTTP/2 with prior knowledge over cleartext (http_version 2).
 *
 * libcurl 7.88 (Debian 12) breaks every prior-knowledge transfer that
 * reuses a connection: it stacks a second HTTP/2 layer on it and fails with
 * "Error in the HTTP2 framing layer" (curl issue 10634, fixed in 8.0.0).
 * Transfers asking for CURL_HTTP_VERSION_2_0 reuse such a connection
 * correctly.  So, per worker and origin: the first transfer uses prior
 * knowledge and opens the connection; while that origin is live, the next
 * ones ask for 2_0 with PIPEWAIT and multiplex onto it.  A 2_0 transfer
 * that fails before any response (the connection was gone and the server
 * refused the Upgrade) is restarted once with prior knowledge.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
  o = hac_malloc(sizeof(*o) + n);
  if(o) {
    memcpy(o->key, key, n);
    o->live = false;
    o->next = w->origins;
    w->origins = o;
  }
out:
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return o;
}

/* Set CURLOPT_HTTP_VERSION for an http_version 2 request. */
CURLcode hac_h2c_version(struct hac_worker *w, struct hac_req *r)
{
  long v = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  r->h2_reuse = false;
  if(!strncasecmp(r->url, "http:", 5)) {
    if(!r->origin)
      r->origin = origin_get(w, r->url);
    if(r->origin && r->origin->live && !r->h2_retried) {
      v = CURL_HTTP_VERSION_2_0;
      r->h2_reuse = true;
    }
    else if(r->origin)
      r->origin->live = true;
  }
  return curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION, v);
}

/* After a failed transfer: forget the origin; true when the request should
   be started again (with prior knowledge). */
bool hac_h2c_retry(struct hac_worker *w, struct hac_req *r, CURLcode rc)
{
  long code = 0;
  (void)w;
  if(rc == CURLE_OK || !r->origin)
    return false;
  r->origin->live = false;
  if(!r->h2_reuse || r->h2_retried || rc == CURLE_OPERATION_TIMEDOUT)
    return false;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  if(code)
    return false;
  r->h2_retried = true;
  return true;
}

void hac_h2c_fini(struct hac_worker *w)
{
  while(w->origins) {
    struct hac_origin *o = w->origins;
    w->origins = o->next;
    hac_mfree(o);
  }
}
