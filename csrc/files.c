/*
 * files.c - a request's bodies that never pass through Python, tied to
 * its life: set up each time its handle is configured (a restart rewinds
 * them), committed when libcurl completed the transfer (the output file
 * renamed into place), ended on the worker when the request finishes
 * (fds closed, a temporary file removed), freed with the request; and
 * hac_discard() for a blob that never reaches hac_submit().
 *
 * The options are read here, not through req.c, because req.c frees
 * requests through hac_files_free() (internal.h: calls go downwards).
 */
#include "files.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The value of option key within opt[0..len) and its length, or NULL. */
static const char *opt_of(const char *opt, size_t len, int key, size_t *n)
{
  const char *p = opt;
  const char *end = opt + len;
  while(p < end) {
    size_t k = strnlen(p, (size_t)(end - p));
    if(k && (unsigned char)*p == key) {
      *n = k - 1;
      return p + 1;
    }
    p += k + 1;
  }
  return NULL;
}

/* A decimal fd option, or -1 when absent or malformed. */
static int opt_fd(const char *opt, size_t len, int key)
{
  size_t n = 0;
  size_t i;
  long v = 0;
  const char *s = opt_of(opt, len, key, &n);
  if(!s || !n || n > 10)
    return -1;
  for(i = 0; i < n; i++) {
    if(s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= INT_MAX ? (int)v : -1;
}

static const char *opt_str(const struct hac_req *r, int key)
{
  size_t n;
  const char *s = opt_of(r->opt, r->opt_len, key, &n);
  return s && n ? s : NULL;
}

static const int fd_keys[] = {
  HAC_O_OUTPUT_FD, HAC_O_BODY_FD, HAC_O_BODY_PIPE
};
#define NFDKEYS (sizeof(fd_keys) / sizeof(fd_keys[0]))

/* The fds that options name, closed: their request never got this far. */
static void close_opt_fds(const char *opt, size_t len)
{
  size_t i;
  for(i = 0; i < NFDKEYS; i++) {
    int fd = opt_fd(opt, len, fd_keys[i]);
    if(fd >= 0)
      close(fd);
  }
}

void hac_discard(const char *blob, size_t len)
{
  size_t off = 0;
  while(len - off >= sizeof(hac_reqhdr)) {
    hac_reqhdr h;
    size_t extra;
    memcpy(&h, blob + off, sizeof(h));
    extra = (size_t)h.url_len + h.body_len + h.hdr_len + h.opt_len;
    if(extra > len - off - sizeof(h))
      return;
    if(h.flags & HAC_F_FILES)
      close_opt_fds(blob + off + sizeof(h) + extra - h.opt_len, h.opt_len);
    off += sizeof(h) + extra;
  }
}

void hac_files_errno(struct hac_files *f, const char *what, const char *name,
                     int err)
{
  char buf[128];
  if(f->err[0])
    return;
  snprintf(f->err, sizeof(f->err), "%s %s: %s", what, name,
           strerror_r(err, buf, sizeof(buf)));
}

const char *hac_files_error(const struct hac_req *r)
{
  return r->files && r->files->err[0] ? r->files->err : NULL;
}

/* The first start: take the fds the options name, open the files. */
static CURLcode files_open(struct hac_req *r, struct hac_files *f)
{
  const char *opath = opt_str(r, HAC_O_OUTPUT);
  const char *bpath = opt_str(r, HAC_O_BODY_FILE);
  int bfd = opt_fd(r->opt, r->opt_len, HAC_O_BODY_FD);
  int pfd = opt_fd(r->opt, r->opt_len, HAC_O_BODY_PIPE);
  CURLcode rc = CURLE_OK;
  const char *start = opt_str(r, HAC_O_BODY_START);
  f->out_fd = opt_fd(r->opt, r->opt_len, HAC_O_OUTPUT_FD);
  f->in_fd = bfd >= 0 ? bfd : pfd;
  if(bfd >= 0 && pfd >= 0)
    close(pfd); /* never both: Python sends one */
  if(f->out_fd >= 0 || opath)
    rc = hac_output_open(f, opath);
  if(!rc && (f->in_fd >= 0 || bpath))
    rc = hac_upload_open(f, bpath, pfd >= 0 && bfd < 0 ? HAC_IN_FRAMES :
                         HAC_IN_FILE, start ? strtol(start, NULL, 10) : 0);
  return rc;
}

CURLcode hac_files_setup(struct hac_worker *w, struct hac_req *r)
{
  struct hac_files *f = r->files;
  CURL *e = r->easy;
  CURLcode rc = CURLE_OK;
  (void)w;
  if(!f) {
    f = hac_calloc(1, sizeof(*f));
    if(!f)
      return CURLE_OUT_OF_MEMORY; /* the options' fds: hac_files_end() */
    f->r = r;
    f->out_fd = f->in_fd = -1;
    r->files = f;
    rc = files_open(r, f);
  }
  else if(r->output && hac_output_reset(r))
    rc = CURLE_WRITE_ERROR; /* started again: the body starts over */
  if(!rc && f->out_fd >= 0) {
    r->output = true;
    /* max_body_size is for bodies held in memory */
    rc = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
  }
  if(rc || r->method == HAC_M_HEAD)
    return rc;
  if(f->in_fd >= 0)
    return hac_upload_setopts(f, e);
  if(opt_str(r, HAC_O_FORM))
    return hac_form_build(f, e);
  return CURLE_OK;
}

CURLcode hac_files_commit(struct hac_req *r)
{
  /* a response that is not whole (hac_result_done() says why) is not
     put in place */
  if(!r->output || r->bad || !r->hdr_done)
    return CURLE_OK;
  return hac_output_commit(r->files);
}

bool hac_files_restartable(const struct hac_req *r)
{
  const struct hac_files *f = r->files;
  if(!f)
    return true;
  /* a stream cannot be read again, a pipe not rewound */
  if(f->in_touched)
    return false;
  return !f->written || f->out_tmp || f->out_seekable;
}

/* Close and free what f holds; keep: the output file is in place. */
static void files_close(struct hac_files *f)
{
  hac_output_close(f);
  hac_upload_close(f);
  if(f->mime)
    curl_mime_free(f->mime); /* the handle was reset (easy.c) */
  hac_mfree(f);
}

void hac_files_end(struct hac_req *r)
{
  struct hac_files *f = r->files;
  r->flags &= ~(uint32_t)HAC_F_FILES;
  if(!f) {
    close_opt_fds(r->opt, r->opt_len);
    return;
  }
  if(r->output)
    r->res.written = f->written;
  hac_upload_stop(f);
  files_close(f);
  r->files = NULL;
  r->output = false;
}

void hac_files_free(struct hac_req *r)
{
  /* normally hac_files_end() on the worker did it all */
  if(r->files)
    files_close(r->files);
  else
    close_opt_fds(r->opt, r->opt_len);
  r->files = NULL;
  r->flags &= ~(uint32_t)HAC_F_FILES;
}
