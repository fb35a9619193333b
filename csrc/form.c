/*
 * form.c - a multipart/form-data body (HAC_O_FORM) made with libcurl's
 * MIME API from the description Python put where the body goes: parts,
 * each a hac_formpart header and its name, value (the data, or a file's
 * path), content type and file name.  File parts are streamed from disk
 * by libcurl (curl_mime_filedata).  Made again at every start (a restart
 * runs on another handle), freed when the request ends (files.c).
 */
#include "files.h"

#include <stdio.h>
#include <string.h>

typedef CURLcode (*set_text_fn)(curl_mimepart *, const char *);

/* fn(part, the n bytes at s as a C string) */
static CURLcode set_text(curl_mimepart *part, set_text_fn fn, const char *s,
                         size_t n)
{
  CURLcode rc;
  char *z = hac_malloc(n + 1);
  if(!z)
    return CURLE_OUT_OF_MEMORY;
  memcpy(z, s, n);
  z[n] = '\0';
  rc = fn(part, z);
  hac_mfree(z);
  return rc;
}

static CURLcode add_part(struct hac_files *f, const hac_formpart *h,
                         const char *p)
{
  const char *name = p;
  const char *value = name + h->name_len;
  const char *type = value + h->value_len;
  const char *fname = type + h->type_len;
  curl_mimepart *part = curl_mime_addpart(f->mime);
  CURLcode rc;
  if(!part)
    return CURLE_OUT_OF_MEMORY;
  rc = set_text(part, curl_mime_name, name, h->name_len);
  if(rc)
    return rc;
  if(h->flags & HAC_FORM_FILE) {
    rc = set_text(part, curl_mime_filedata, value, h->value_len);
    if(rc && rc != CURLE_OUT_OF_MEMORY) {
      snprintf(f->err, sizeof(f->err), "FORM_FAILED: cannot read %.*s "
               "(field %.*s)", (int)(h->value_len < 300 ? h->value_len : 300),
               value, (int)(h->name_len < 100 ? h->name_len : 100), name);
      return rc;
    }
  }
  else
    rc = curl_mime_data(part, value, h->value_len);
  if(!rc && (h->flags & HAC_FORM_TYPE))
    rc = set_text(part, curl_mime_type, type, h->type_len);
  if(!rc && (h->flags & HAC_FORM_FILENAME))
    rc = set_text(part, curl_mime_filename, fname, h->filename_len);
  return rc;
}

CURLcode hac_form_build(struct hac_files *f, CURL *e)
{
  struct hac_req *r = f->r;
  const char *p = r->body;
  const char *end = r->body + r->body_len;
  CURLcode rc;
  if(f->mime)
    curl_mime_free(f->mime); /* a restart: the old handle was reset */
  f->mime = curl_mime_init(e);
  if(!f->mime)
    return CURLE_OUT_OF_MEMORY;
  while(p < end) {
    hac_formpart h;
    uint64_t n;
    if((size_t)(end - p) < sizeof(h))
      return CURLE_BAD_FUNCTION_ARGUMENT; /* not Python's: never */
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    n = (uint64_t)h.name_len + h.value_len + h.type_len + h.filename_len;
    if(n > (uint64_t)(end - p))
      return CURLE_BAD_FUNCTION_ARGUMENT;
    rc = add_part(f, &h, p);
    if(rc)
      return rc;
    p += n;
  }
  rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, (char *)NULL);
  return rc ? rc : curl_easy_setopt(e, CURLOPT_MIMEPOST, f->mime);
}
