/*
 * fuzz_capture.c - the response capture path (capture.c: hac_on_header,
 * hac_on_body, hac_on_prereq, then hac_result_done) fed arbitrary bytes
 * through a real easy handle: an in-process server on 127.0.0.1 answers
 * each request with the fuzz input and closes.
 *
 * Why a real handle rather than calling the callbacks directly: the
 * callbacks rely on libcurl's contract (one whole header line per call,
 * status lines of 1xx and redirect hops, de-chunked and decoded body
 * pieces, trailers after the body, the pre-request call per attempt);
 * a hand-written model of that contract could be wrong both ways (feed
 * what libcurl never does, or miss what it does).  The request is always
 * GET http://127.0.0.1:PORT/ with redirects off: nothing else is reached.
 *
 * Input: the first byte picks the request's shape (bit 0: a HEAD, bit 1:
 * Accept-Encoding, bit 2: a 64-byte max_body_size); the rest is the
 * response.
 */
#include "fuzz_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener = -1;
static int port;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *reply;          /* the harness's copy of the input, */
static size_t reply_len;        /* under lock: a late connection (libcurl's
                                   own retry) may come after the run */

/* Read the request head (bounded), answer with the current input, close. */
static void serve(int fd)
{
  char buf[4096];
  size_t got = 0;
  struct pollfd p = { fd, POLLIN, 0 };
  while(got < sizeof(buf) - 1 && poll(&p, 1, 1000) > 0) {
    ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
    if(n <= 0)
      break;
    got += (size_t)n;
    buf[got] = '\0';
    if(strstr(buf, "\r\n\r\n"))
      break;
  }
  pthread_mutex_lock(&lock);
  if(reply_len)
    (void)send(fd, reply, reply_len, MSG_NOSIGNAL);
  pthread_mutex_unlock(&lock);
  close(fd);
}

static void *server(void *arg)
{
  (void)arg;
  for(;;) {
    int fd = accept(listener, NULL, NULL);
    if(fd >= 0)
      serve(fd);
  }
  return NULL;
}

static void server_start(void)
{
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  pthread_t t;
  int one = 1;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  listener = socket(AF_INET, SOCK_STREAM, 0);
  if(listener < 0 ||
     setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
     bind(listener, (struct sockaddr *)&a, sizeof(a)) ||
     listen(listener, 16) ||
     getsockname(listener, (struct sockaddr *)&a, &alen) ||
     pthread_create(&t, NULL, server, NULL))
    abort(); /* no server, no harness */
  port = ntohs(a.sin_port);
}

/* A request as Python would encode it: GET/HEAD of the local URL,
   optionally with an Accept-Encoding header line. */
static struct hac_req *make_request(uint8_t shape)
{
  char url[64];
  char blob[256];
  const char hdr[] = "Accept-Encoding: gzip, deflate";
  hac_reqhdr h;
  size_t used;
  int n = snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
  memset(&h, 0, sizeof(h));
  h.id = 1;
  h.method = (shape & 1) ? HAC_M_HEAD : HAC_M_GET;
  h.url_len = (uint32_t)n;
  h.hdr_len = (shape & 2) ? (uint32_t)sizeof(hdr) : 0;
  memcpy(blob, &h, sizeof(h));
  memcpy(blob + sizeof(h), url, (size_t)n);
  memcpy(blob + sizeof(h) + (size_t)n, hdr, h.hdr_len);
  return hac_req_parse(blob, sizeof(h) + (size_t)n + h.hdr_len, &used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct hac_worker *w = fuzz_worker_get();
  struct hac_req *r;
  CURLcode rc;
  uint8_t shape;
  if(listener < 0)
    server_start();
  if(!size)
    return 0;
  shape = data[0];
  r = make_request(shape);
  if(!r)
    return 0;
  pthread_mutex_lock(&lock);
  reply = malloc(size);
  reply_len = reply ? size - 1 : 0;
  if(reply)
    memcpy(reply, data + 1, size - 1);
  pthread_mutex_unlock(&lock);
  fuzz_client.cfg.max_body_size = (shape & 4) ? 64 : 1 << 20;
  r->w = w;
  r->run_ms = 2000;
  r->buf.cache = NULL;
  rc = hac_easy_attach(w, r);
  if(r->easy) {
    if(!rc)
      rc = curl_easy_perform(r->easy);
    hac_result_done(w, r, rc);
    hac_result_fill(r);
    /* what Python reads: the body and reason lie inside the capture */
    if(r->res.body_off > r->res.raw_len ||
       r->res.reason_off + r->res.reason_len > r->res.raw_len)
      abort();
    if((r->res.flags & HAC_R_OK) && r->res.err)
      abort();
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  hac_transport_put(r);
  hac_req_free(r);
  pthread_mutex_lock(&lock);
  free(reply);
  reply = NULL;
  reply_len = 0;
  pthread_mutex_unlock(&lock);
  return 0;
}
