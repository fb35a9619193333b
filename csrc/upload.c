/*
 * upload.c - a request body the worker reads itself, with no Python per
 * libcurl callback:
 *   - a regular file: pread() from where the body starts, so libcurl can
 *     rewind it (a redirect, an authentication round) and the caller's
 *     file offset never moves; its size is the Content-Length;
 *   - a stream (pipe, socket, terminal): read when readable, sent chunked
 *     (its size is unknown), never rewound once read;
 *   - Python's feeder (an iterator's chunks, written by a thread into a
 *     socket pair: send(MSG_NOSIGNAL) never raises SIGPIPE): frames of a 4-byte
 *     native-order header and data.  Header n: n bytes of body follow; 0:
 *     the body is complete; HAC_FRAME_ERROR | n: the iterator raised and n
 *     bytes of its text follow.  A stream that ends without the 0 frame
 *     (the feeder died) fails the transfer too, so a body cut short is
 *     never sent as if whole.
 * When nothing is readable the transfer pauses (CURL_READFUNC_PAUSE) and
 * an ev_io on the fd un-pauses it (curl_easy_pause() on the worker): the
 * socket's buffer is the feeder's backpressure.
 */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HAC_FRAME_ERROR 0x80000000u
#define HAC_FRAME_TEXT 400     /* at most this much of an error is kept */

#define PAUSED (-2)

static const char *in_name(const struct hac_files *f)
{
  return f->in_path ? f->in_path : "the request body's fd";
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
  struct hac_files *f = io->data;
  (void)revents;
  ev_io_stop(loop, io);
  if(f->r->easy)
    curl_easy_pause(f->r->easy, CURLPAUSE_CONT); /* libcurl re-arms its
                                                    timer: drive() follows */
}

/* Nothing to read now: pause until the fd is readable. */
static ssize_t wait_readable(struct hac_files *f)
{
  if(!ev_is_active(&f->in_io))
    ev_io_start(f->r->w->loop, &f->in_io);
  return PAUSED;
}

/* Up to n bytes of a stream; PAUSED, or -1 with f->err set. */
static ssize_t stream_read(struct hac_files *f, void *buf, size_t n)
{
  ssize_t got;
  if(!f->in_nonblock) {
    /* the caller's fd may be blocking: read only what is there */
    struct pollfd p;
    int k;
    p.fd = f->in_fd;
    p.events = POLLIN;
    p.revents = 0;
    do
      k = poll(&p, 1, 0);
    while(k < 0 && errno == EINTR);
    if(!k)
      return wait_readable(f);
  }
  do
    got = read(f->in_fd, buf, n);
  while(got < 0 && errno == EINTR);
  if(got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return wait_readable(f);
  if(got < 0) {
    hac_files_errno(f, "UPLOAD_FAILED: cannot read", in_name(f), errno);
    return -1;
  }
  if(got)
    f->in_touched = true;
  return got;
}

static size_t frames_read(struct hac_files *f, char *buf, size_t room)
{
  uint32_t v;
  ssize_t got;
  for(;;) {
    if(f->frame_left) {
      got = stream_read(f, buf, room < f->frame_left ? room : f->frame_left);
      if(got == PAUSED)
        return CURL_READFUNC_PAUSE;
      if(got <= 0) {
        if(!got)
          snprintf(f->err, sizeof(f->err), "UPLOAD_FAILED: the request "
                   "body iterator's feeder stopped inside a chunk");
        return CURL_READFUNC_ABORT;
      }
      f->frame_left -= (uint32_t)got;
      return (size_t)got;
    }
    if(f->in_done)
      return 0;
    got = stream_read(f, f->hdr + f->hdr_len, sizeof(f->hdr) - f->hdr_len);
    if(got == PAUSED)
      return CURL_READFUNC_PAUSE;
    if(got <= 0) {
      if(!got)
        snprintf(f->err, sizeof(f->err), "UPLOAD_FAILED: the request body "
                 "iterator stopped before the end of the body");
      return CURL_READFUNC_ABORT;
    }
    f->hdr_len = (uint8_t)(f->hdr_len + got);
    if(f->hdr_len < sizeof(f->hdr))
      continue;
    f->hdr_len = 0;
    memcpy(&v, f->hdr, sizeof(v));
    if(!v) {
      f->in_done = true;
      return 0;
    }
    if(v & HAC_FRAME_ERROR) {
      /* sent with its header in one small send(): here */
      char text[HAC_FRAME_TEXT];
      size_t n = v & ~HAC_FRAME_ERROR;
      got = read(f->in_fd, text, n < sizeof(text) ? n : sizeof(text));
      snprintf(f->err, sizeof(f->err), "UPLOAD_FAILED: the request body "
               "iterator raised %.*s", got > 0 ? (int)got : 0, text);
      return CURL_READFUNC_ABORT;
    }
    f->frame_left = v;
  }
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
  struct hac_files *f = userp;
  size_t room = size * nitems;
  ssize_t got;
  if(f->in_kind == HAC_IN_FRAMES)
    return frames_read(f, buf, room);
  if(f->in_kind == HAC_IN_STREAM) {
    got = stream_read(f, buf, room);
    if(got == PAUSED)
      return CURL_READFUNC_PAUSE;
    return got < 0 ? CURL_READFUNC_ABORT : (size_t)got; /* 0: the end */
  }
  if(f->in_pos >= f->in_start + f->in_size)
    return 0;
  if((uint64_t)(f->in_start + f->in_size - f->in_pos) < room)
    room = (size_t)(f->in_start + f->in_size - f->in_pos);
  do
    got = pread(f->in_fd, buf, room, f->in_pos);
  while(got < 0 && errno == EINTR);
  if(got < 0) {
    hac_files_errno(f, "UPLOAD_FAILED: cannot read", in_name(f), errno);
    return CURL_READFUNC_ABORT;
  }
  if(!got) {
    snprintf(f->err, sizeof(f->err), "UPLOAD_FAILED: %s ended after %lld "
             "of its %lld bytes (truncated while sent?)", in_name(f),
             (long long)(f->in_pos - f->in_start), (long long)f->in_size);
    return CURL_READFUNC_ABORT;
  }
  f->in_pos += got;
  return (size_t)got;
}

/* libcurl rewinds the body to send it again (redirect, auth round) */
static int on_seek(void *userp, curl_off_t offset, int origin)
{
  struct hac_files *f = userp;
  if(origin != SEEK_SET || offset < 0)
    return CURL_SEEKFUNC_CANTSEEK;
  if(f->in_kind == HAC_IN_FILE) {
    f->in_pos = f->in_start + (off_t)offset;
    return CURL_SEEKFUNC_OK;
  }
  return !offset && !f->in_touched ? CURL_SEEKFUNC_OK :
    CURL_SEEKFUNC_CANTSEEK;
}

CURLcode hac_upload_open(struct hac_files *f, const char *path, int kind,
                         long start)
{
  struct stat st;
  if(f->in_fd < 0) {
    /* non-blocking: a FIFO would block the open until a writer came */
    f->in_fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    f->in_path = path;
    if(f->in_fd < 0) {
      hac_files_errno(f, "UPLOAD_FAILED: cannot open", path, errno);
      return CURLE_READ_ERROR;
    }
    f->in_nonblock = true;
    start = 0;
  }
  f->in_size = -1;
  if(kind == HAC_IN_FRAMES) {
    /* the read end is the core's alone (Python keeps no copy) */
    int fl = fcntl(f->in_fd, F_GETFL);
    f->in_nonblock = fl >= 0 && !fcntl(f->in_fd, F_SETFL, fl | O_NONBLOCK);
    f->in_kind = HAC_IN_FRAMES;
  }
  else if(start >= 0 && !fstat(f->in_fd, &st) && S_ISREG(st.st_mode)) {
    f->in_kind = HAC_IN_FILE;
    f->in_start = (off_t)start;
    f->in_size = st.st_size > start ? (int64_t)(st.st_size - start) : 0;
  }
  else
    f->in_kind = HAC_IN_STREAM;
  ev_io_init(&f->in_io, on_readable, f->in_fd, EV_READ);
  f->in_io.data = f;
  return CURLE_OK;
}

#define SET(opt, val) \
  do { rc = curl_easy_setopt(e, opt, val); if(rc) return rc; } while(0)

CURLcode hac_upload_setopts(struct hac_files *f, CURL *e)
{
  CURLcode rc;
  hac_upload_stop(f);
  f->in_pos = f->in_start; /* started again: from the beginning */
  /* easy.c set the (empty) in-memory body: the read callback instead */
  SET(CURLOPT_POSTFIELDS, (char *)NULL);
  SET(CURLOPT_POST, 1L);
  SET(CURLOPT_READFUNCTION, on_read);
  SET(CURLOPT_READDATA, (void *)f);
  SET(CURLOPT_SEEKFUNCTION, on_seek);
  SET(CURLOPT_SEEKDATA, (void *)f);
  /* -1: unknown, chunked on HTTP/1.1 */
  SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->in_size);
  return CURLE_OK;
}
#undef SET

void hac_upload_stop(struct hac_files *f)
{
  if(f->in_fd >= 0 && ev_is_active(&f->in_io))
    ev_io_stop(f->r->w->loop, &f->in_io);
}

void hac_upload_close(struct hac_files *f)
{
  if(f->in_fd >= 0)
    close(f->in_fd);
  f->in_fd = -1;
}
