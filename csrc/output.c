/*
 * output.c - a response body written by the worker as it arrives: to a
 * temporary file next to the final name (".<name>.hac-XXXXXX", created
 * O_EXCL) that is renamed into place once the transfer completed, so a
 * failed, cancelled or timed-out one leaves nothing under that name; or
 * straight to an fd the caller gave (no rename possible).  Only the last
 * response's body stays: a new response truncates what was written.
 */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HAC_TMP_TRIES 100
/* bytes of the final name kept in the temporary one (NAME_MAX is 255) */
#define HAC_TMP_BASE 200

static const char *out_name(const struct hac_files *f)
{
  return f->out_path ? f->out_path : "the output fd";
}

/* dir/.<base>.hac-XXXXXX with six random letters or digits */
static void tmp_name(char *out, size_t cap, const char *dir, size_t dirlen,
                     const char *base)
{
  static const char set[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  static atomic_uint counter;
  unsigned char rnd[6];
  char suffix[7];
  size_t i;
  if(getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
    /* no entropy yet: O_EXCL still makes the name ours */
    unsigned v = atomic_fetch_add(&counter, 1) * 2654435761u ^
      (unsigned)time(NULL) ^ (unsigned)getpid();
    for(i = 0; i < sizeof(rnd); i++, v >>= 5)
      rnd[i] = (unsigned char)v;
  }
  for(i = 0; i < sizeof(rnd); i++)
    suffix[i] = set[rnd[i] % (sizeof(set) - 1)];
  suffix[6] = '\0';
  snprintf(out, cap, "%.*s/.%.*s.hac-%s", (int)dirlen, dir, HAC_TMP_BASE,
           base, suffix);
}

CURLcode hac_output_open(struct hac_files *f, const char *path)
{
  struct stat st;
  const char *slash;
  size_t cap;
  int i;
  if(f->out_fd >= 0) {
    /* the caller's fd: the body goes where it stands */
    f->out_start = lseek(f->out_fd, 0, SEEK_CUR);
    f->out_seekable = f->out_start >= 0 && !fstat(f->out_fd, &st) &&
      S_ISREG(st.st_mode);
    return CURLE_OK;
  }
  f->out_path = path;
  slash = strrchr(path, '/'); /* Python sends an absolute path */
  if(!slash || !slash[1]) {
    snprintf(f->err, sizeof(f->err), "OUTPUT_FAILED: %s is not a file name",
             path);
    return CURLE_WRITE_ERROR;
  }
  cap = strlen(path) + 16;
  f->tmp_path = hac_malloc(cap);
  if(!f->tmp_path)
    return CURLE_OUT_OF_MEMORY;
  for(i = 0; i < HAC_TMP_TRIES; i++) {
    tmp_name(f->tmp_path, cap, path, (size_t)(slash - path), slash + 1);
    /* 0666 & ~umask, as any new file (mkstemp() would give 0600) */
    f->out_fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                     0666);
    if(f->out_fd >= 0 || errno != EEXIST)
      break;
  }
  if(f->out_fd < 0) {
    int err = errno;
    char what[64 + HAC_TMP_BASE];
    snprintf(what, sizeof(what), "OUTPUT_FAILED: cannot create a temporary "
             "file for %.*s in", HAC_TMP_BASE, slash + 1);
    f->tmp_path[slash - path] = '\0'; /* the directory, for the message */
    hac_files_errno(f, what, slash == path ? "/" : f->tmp_path, err);
    hac_mfree(f->tmp_path);
    f->tmp_path = NULL;
    return CURLE_WRITE_ERROR;
  }
  f->out_tmp = true;
  f->out_seekable = true;
  return CURLE_OK;
}

size_t hac_output_write(struct hac_req *r, const char *data, size_t len)
{
  struct hac_files *f = r->files;
  size_t done = 0;
  while(done < len) {
    ssize_t n = write(f->out_fd, data + done, len - done);
    if(n < 0) {
      if(errno == EINTR)
        continue;
      hac_files_errno(f, "OUTPUT_FAILED: cannot write", out_name(f), errno);
      return 0; /* CURLE_WRITE_ERROR */
    }
    done += (size_t)n;
  }
  f->written += len;
  return len;
}

/* A new response (or the transfer started again): what the previous one
   wrote goes.  0, or -1 with f->err set. */
int hac_output_reset(struct hac_req *r)
{
  struct hac_files *f = r->files;
  if(!f->written)
    return 0;
  if(!f->out_seekable) {
    snprintf(f->err, sizeof(f->err), "OUTPUT_FAILED: a new response "
             "after %llu bytes were written to a fd that cannot be rewound",
             (unsigned long long)f->written);
    return -1;
  }
  if(ftruncate(f->out_fd, f->out_start) ||
     lseek(f->out_fd, f->out_start, SEEK_SET) < 0) {
    hac_files_errno(f, "OUTPUT_FAILED: cannot truncate", out_name(f), errno);
    return -1;
  }
  f->written = 0;
  return 0;
}

CURLcode hac_output_commit(struct hac_files *f)
{
  int fd = f->out_fd;
  if(!f->out_tmp)
    return CURLE_OK; /* the caller's fd */
  f->out_fd = -1;
  /* a full disk may only show at close (NFS), and then nothing renames */
  if(close(fd)) {
    hac_files_errno(f, "OUTPUT_FAILED: cannot write", f->out_path, errno);
    return CURLE_WRITE_ERROR;
  }
  if(rename(f->tmp_path, f->out_path)) {
    hac_files_errno(f, "OUTPUT_FAILED: cannot rename the temporary file to",
                    f->out_path, errno);
    return CURLE_WRITE_ERROR;
  }
  hac_mfree(f->tmp_path);
  f->tmp_path = NULL;
  return CURLE_OK;
}

/* Close the fd; a temporary file still there was not committed: gone. */
void hac_output_close(struct hac_files *f)
{
  if(f->out_fd >= 0)
    close(f->out_fd);
  f->out_fd = -1;
  if(f->tmp_path) {
    unlink(f->tmp_path);
    hac_mfree(f->tmp_path);
    f->tmp_path = NULL;
  }
}
