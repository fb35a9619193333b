/*
 * transport.c - where a request's connection goes and how long its phases
 * may take: proxy (never the environment's: Python decides), DNS
 * overrides (resolve, connect_to), a Unix socket, the connect and
 * low-speed bounds, DNS cache and connection age, the User-Agent.
 */
#include "internal.h"

#include <string.h>
#include <strings.h>

/* text: entries separated by '\n' (NULL or "": none) -> *out, a new list
   (NULL when there are none).  CURLE_OUT_OF_MEMORY or CURLE_OK. */
static CURLcode make_list(const char *text, struct curl_slist **out)
{
  struct curl_slist *l = NULL;
  char *copy;
  char *p;
  *out = NULL;
  if(!text || !*text)
    return CURLE_OK;
  copy = hac_strdup(text);
  if(!copy)
    return CURLE_OUT_OF_MEMORY;
  p = copy;
  while(*p) {
    char *nl = strchr(p, '\n');
    struct curl_slist *n;
    if(nl)
      *nl = '\0';
    if(*p) {
      n = curl_slist_append(l, p);
      if(!n) {
        curl_slist_free_all(l);
        hac_mfree(copy);
        return CURLE_OUT_OF_MEMORY;
      }
      l = n;
    }
    if(!nl)
      break;
    p = nl + 1;
  }
  hac_mfree(copy);
  *out = l;
  return CURLE_OK;
}

/* The client's lists, made once per worker: a pooled handle may keep
   pointing at them across requests. */
int hac_transport_init(struct hac_worker *w)
{
  const hac_config *cfg = &w->c->cfg;
  if(make_list(cfg->resolve, &w->resolve) ||
     make_list(cfg->connect_to, &w->connect_to))
    return -1;
  return 0;
}

void hac_transport_fini(struct hac_worker *w)
{
  curl_slist_free_all(w->resolve);
  curl_slist_free_all(w->connect_to);
  w->resolve = w->connect_to = NULL;
}

/* The per-request lists; after the handle no longer uses them. */
void hac_transport_put(struct hac_req *r)
{
  curl_slist_free_all(r->lists[0]);
  curl_slist_free_all(r->lists[1]);
  r->lists[0] = r->lists[1] = NULL;
}

/* CURLOPT_CONNECTTIMEOUT_MS: the connect bound, never past the deadline
   (run_ms: what is left of it). */
long hac_connect_ms(struct hac_worker *w, const struct hac_req *r,
                    long run_ms)
{
  long ms = hac_req_opt_long(r, HAC_O_CONNECT_TIMEOUT,
                             w->c->cfg.connect_timeout);
  /* a stream without a deadline still connects within the client's */
  if(ms <= 0 && r->timeout_ms == HAC_NO_DEADLINE)
    ms = w->c->cfg.connection_timeout;
  return ms > 0 && ms < run_ms ? ms : run_ms;
}

/* The proxy of r: its own, the client's, the client's for its scheme
   (from the environment, when the client trusts it), else "" = none,
   which also keeps libcurl from reading the environment itself. */
const char *hac_proxy_of(struct hac_worker *w, const struct hac_req *r)
{
  const hac_config *cfg = &w->c->cfg;
  const char *p = hac_req_opt(r, HAC_O_PROXY);
  if(p)
    return p;
  if(cfg->proxy)
    return cfg->proxy;
  p = strncasecmp(r->url, "https:", 6) ? cfg->proxy_http : cfg->proxy_https;
  return p ? p : "";
}

/* One DNS-override list: the request's own (a list of its own, freed with
   the handle) or the worker's copy of the client's. */
static CURLcode set_list(CURL *e, CURLoption opt, const struct hac_req *r,
                         int key, struct curl_slist **mine,
                         struct curl_slist *client)
{
  const char *v = hac_req_opt(r, key);
  CURLcode rc;
  if(!v)
    return client ? curl_easy_setopt(e, opt, client) : CURLE_OK;
  rc = make_list(v, mine);
  if(!rc && *mine)
    rc = curl_easy_setopt(e, opt, *mine);
  return rc;
}

#define SET(opt, val) \
  do { rc = curl_easy_setopt(e, opt, val); if(rc) return rc; } while(0)

CURLcode hac_set_transport(struct hac_worker *w, struct hac_req *r,
                           const char *proxy)
{
  const hac_config *cfg = &w->c->cfg;
  CURL *e = r->easy;
  const char *s;
  long limit;
  CURLcode rc;
  SET(CURLOPT_PROXY, proxy);
  /* "" (no host bypasses), not NULL: NULL would read no_proxy from the
     environment */
  s = hac_req_opt(r, HAC_O_NO_PROXY);
  SET(CURLOPT_NOPROXY, s ? s : cfg->no_proxy ? cfg->no_proxy : "");
  rc = set_list(e, CURLOPT_RESOLVE, r, HAC_O_RESOLVE, &r->lists[0],
                w->resolve);
  if(!rc)
    rc = set_list(e, CURLOPT_CONNECT_TO, r, HAC_O_CONNECT_TO, &r->lists[1],
                  w->connect_to);
  if(rc)
    return rc;
  s = hac_req_opt_str(r, HAC_O_UNIX_SOCKET, cfg->unix_socket);
  if(s)
    SET(CURLOPT_UNIX_SOCKET_PATH, s);
  limit = hac_req_opt_long(r, HAC_O_LOW_SPEED_LIMIT, cfg->low_speed_limit);
  if(limit > 0) {
    long secs = hac_req_opt_long(r, HAC_O_LOW_SPEED_TIME,
                                 cfg->low_speed_time);
    SET(CURLOPT_LOW_SPEED_LIMIT, limit);
    SET(CURLOPT_LOW_SPEED_TIME, secs > 0 ? secs : 30L);
  }
  SET(CURLOPT_DNS_CACHE_TIMEOUT, cfg->dns_cache_timeout);
#if LIBCURL_VERSION_NUM >= 0x075000
  if(cfg->max_connection_age > 0)
    SET(CURLOPT_MAXLIFETIME_CONN, cfg->max_connection_age);
#endif
  if(cfg->user_agent && *cfg->user_agent)
    SET(CURLOPT_USERAGENT, cfg->user_agent);
  return CURLE_OK;
}
#undef SET
