/*
 * fuzz_req.c - the request blob Python hands to hac_submit(): hac_reqhdr
 * framing (hac_req_parse), option lookups, and everything the worker
 * derives from a request when it configures an easy handle
 * (hac_easy_attach: method, header lines, TLS, proxy, DNS overrides,
 * low-speed bounds, multipart forms from form.c), then the request freed;
 * and hac_discard() over the same blob.
 *
 * Nothing is performed: no byte leaves the process.  Options whose values
 * are trusted by contract (a stream's address, fds, paths the core would
 * create or open) are renamed to an unused key before parsing: arbitrary
 * values there are Python's promise, not input to check.
 */
#include "fuzz_common.h"

#include <stdint.h>

#define UNUSED_KEY 122 /* 'z': no HAC_O_* */

static int trusted_key(int key)
{
  switch(key) {
  case HAC_O_STREAM:
  case HAC_O_OUTPUT:
  case HAC_O_OUTPUT_FD:
  case HAC_O_BODY_FILE:
  case HAC_O_BODY_FD:
  case HAC_O_BODY_PIPE:
    return 1;
  default:
    return 0;
  }
}

/* Rename trusted options, walking the framing as hac_req_parse() and
   hac_discard() do. */
static void neuter(unsigned char *blob, size_t len)
{
  size_t off = 0;
  while(len - off >= sizeof(hac_reqhdr)) {
    hac_reqhdr h;
    size_t extra;
    unsigned char *p;
    unsigned char *end;
    memcpy(&h, blob + off, sizeof(h));
    extra = (size_t)h.url_len + h.body_len + h.hdr_len + h.opt_len;
    if(extra > len - off - sizeof(h))
      return;
    p = blob + off + sizeof(h) + h.url_len + h.body_len + h.hdr_len;
    end = p + h.opt_len;
    while(p < end) {
      size_t n = strnlen((const char *)p, (size_t)(end - p));
      if(n && trusted_key(*p))
        *p = UNUSED_KEY;
      p += n + 1;
    }
    off += sizeof(h) + extra;
  }
}

static void exercise(struct hac_worker *w, struct hac_req *r)
{
  int key;
  for(key = 0; key < 256; key++) {
    (void)hac_req_opt_long(r, key, 0);
    (void)hac_req_opt_str(r, key, NULL);
  }
  r->w = w;
  r->run_ms = 1000;
  if(r->timeout_ms > 0 && r->timeout_ms < 1000)
    r->run_ms = (long)r->timeout_ms;
  (void)hac_easy_attach(w, r);
  if(r->easy) {
    /* not pooled: each input starts from a fresh handle */
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  hac_transport_put(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct hac_worker *w = fuzz_worker_get();
  unsigned char *blob = malloc(size ? size : 1);
  size_t off = 0;
  if(!blob)
    return 0;
  memcpy(blob, data, size);
  neuter(blob, size);
  while(off < size) {
    size_t used;
    struct hac_req *r = hac_req_parse((const char *)blob + off, size - off,
                                      &used);
    if(!r)
      break;
    off += used;
    exercise(w, r);
    hac_req_free(r);
  }
  hac_discard((const char *)blob, size);
  free(blob);
  return 0;
}
