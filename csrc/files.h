/*
 * files.h - a request's bodies that never pass through Python: the
 * response written to a file (output.c), the request body read from a
 * file or a stream (upload.c), a multipart form (form.c); files.c ties them
 * to the request's life.  Private to those four files.
 *
 * Ownership: the fds a request's options name (HAC_O_OUTPUT_FD,
 * HAC_O_BODY_FD, HAC_O_BODY_PIPE) belong to the core from the moment its
 * blob reaches hac_submit() or hac_discard(); they are closed, and a
 * temporary output file is renamed or removed, on the worker when the
 * request finishes (hac_files_end()), or by hac_req_free() for a request
 * that never reached a worker.
 */
#ifndef HAC_FILES_H
#define HAC_FILES_H

#include "internal.h"

#include <sys/types.h>

/* struct hac_files.in_kind */
#define HAC_IN_NONE 0
#define HAC_IN_FILE 1          /* regular file: pread() at in_pos */
#define HAC_IN_STREAM 2        /* pipe, socket, tty: read() when readable */
#define HAC_IN_FRAMES 3        /* Python's feeder socket (upload.c) */

struct hac_files {
  struct hac_req *r;
  char err[512];               /* why they failed the transfer, or "" */

  /* the response body (output.c) */
  int out_fd;                  /* -1: none */
  bool out_tmp;                /* out_fd is our temporary file */
  bool out_seekable;
  off_t out_start;             /* fd given: where the body starts */
  uint64_t written;            /* body bytes of the current response */
  const char *out_path;        /* the final name (in the options) */
  char *tmp_path;              /* the temporary name, while it exists */

  /* the request body (upload.c) */
  int in_fd;                   /* -1: none */
  int in_kind;                 /* HAC_IN_* */
  bool in_nonblock;            /* in_fd is O_NONBLOCK (the feeder's socket) */
  bool in_touched;             /* bytes were taken from a stream */
  bool in_done;                /* the feeder's end mark came */
  const char *in_path;         /* for messages; NULL: an fd */
  off_t in_start;              /* HAC_IN_FILE: where the body starts */
  off_t in_pos;                /* ... and where the next read is */
  int64_t in_size;             /* -1: unknown (chunked) */
  uint32_t frame_left;         /* HAC_IN_FRAMES: data left in this frame */
  uint8_t hdr_len;             /* ... bytes of the next frame header read */
  unsigned char hdr[4];
  ev_io in_io;                 /* in_fd readable: un-pause the transfer */

  /* a multipart form (form.c) */
  curl_mime *mime;
};

/* output.c: to out_fd when set, else a temporary file for path */
CURLcode hac_output_open(struct hac_files *f, const char *path);
CURLcode hac_output_commit(struct hac_files *f);
void hac_output_close(struct hac_files *f);

/* upload.c: from in_fd when set, else path's file */
CURLcode hac_upload_open(struct hac_files *f, const char *path, int kind,
                         long start);
CURLcode hac_upload_setopts(struct hac_files *f, CURL *e);
void hac_upload_stop(struct hac_files *f);
void hac_upload_close(struct hac_files *f);

/* form.c */
CURLcode hac_form_build(struct hac_files *f, CURL *e);

/* "<what> <name>: <strerror(err)>" into f->err (the first failure wins) */
void hac_files_errno(struct hac_files *f, const char *what, const char *name,
                     int err);

#endif /* HAC_FILES_H */
