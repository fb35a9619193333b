/*
 * req.c - one request's wire form (hac_reqhdr and what follows it) parsed
 * into a struct hac_req, its options looked up, and its memory freed.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const char *const hac_method_names[HAC_M_OPTIONS + 1] = {
  "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"
};

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
  r->data_len = extra + 2;
  return r;
}

void hac_req_free(struct hac_req *r)
{
  if(!r)
    return;
  if(r->flags & HAC_F_FILES)
    hac_files_free(r);
  if(r->hdrs)
    curl_slist_free_all(r->hdrs);
  curl_slist_free_all(r->lists[0]);
  curl_slist_free_all(r->lists[1]);
  hac_buf_free(&r->buf);
  hac_mfree(r->dest_url);
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

/* A numeric option, or dflt. */
long hac_req_opt_long(const struct hac_req *r, int key, long dflt)
{
  const char *v = hac_req_opt(r, key);
  return v ? strtol(v, NULL, 10) : dflt;
}

/* A text option, or dflt; set to "" it means none (NULL). */
const char *hac_req_opt_str(const struct hac_req *r, int key,
                            const char *dflt)
{
  const char *v = hac_req_opt(r, key);
  if(!v)
    return dflt;
  return *v ? v : NULL;
}
