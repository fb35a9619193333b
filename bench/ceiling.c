/*
 * ceiling.c - the design's ceiling: the same libcurl driven by libev with
 * curl_multi_socket_action, no Python.  Keeps CONC transfers in flight
 * until N are done (or SECONDS pass) and prints one JSON line:
 *   {"requests":..,"errors":..,"seconds":..,"rps":..,"p50_us":..,"p99_us":..,
 *    "cpu_us":..,"libcurl":".."}
 * cpu_us: CPU time of the process (CLOCK_PROCESS_CPUTIME_ID) over the
 * measured loop, per request; libcurl: the version it runs on.
 *
 * usage: ceiling URL N CONC [SECONDS] [POST_BYTES]
 * environment: CEILING_INSECURE=1 turns TLS verification off (self-signed
 * benchmark certificate); CEILING_CAFILE=PEM verifies against that CA;
 * CEILING_NO_CAPATH=1 also clears the CA directory built into the library
 * (Debian's: /etc/ssl/certs), which turns libcurl's CA cache off.
 * CEILING_PERFORM=1 drives libcurl the way pycurl's loop does instead of
 * through libev: curl_multi_perform over every transfer, then
 * curl_multi_poll on all of its sockets (the design question of issue #12:
 * which of the two costs less per request on each libcurl).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <ev.h>

struct xfer {
  CURL *easy;
  double started;
};

struct sockw {
  ev_io io;
};

static struct ev_loop *loop;
static CURLM *multi;
static ev_timer timer;
static const char *url;
static long total, sent, done, errors, conc;
static double deadline, *lat;
static char *post;
static long post_len;
static int insecure;
static const char *cafile;
static int no_capath;
static int perform_mode;

static double clock_s(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
  return clock_s(CLOCK_MONOTONIC);
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
  (void)p;
  (void)u;
  return s * n;
}

static void start(struct xfer *x)
{
  curl_easy_reset(x->easy);
  curl_easy_setopt(x->easy, CURLOPT_URL, url);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x);
  curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 5000L);
  if(insecure) { /* CEILING_INSECURE=1: self-signed benchmark certificate */
    curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  else if(cafile)
    curl_easy_setopt(x->easy, CURLOPT_CAINFO, cafile);
  if(no_capath)
    curl_easy_setopt(x->easy, CURLOPT_CAPATH, NULL);
  if(post) {
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, post_len);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, post);
  }
  x->started = now();
  curl_multi_add_handle(multi, x->easy);
  sent++;
}

static void check_done(void)
{
  CURLMsg *m;
  int left;
  while((m = curl_multi_info_read(multi, &left))) {
    if(m->msg == CURLMSG_DONE) {
      struct xfer *x;
      CURL *e = m->easy_handle;
      if(m->data.result != CURLE_OK)
        errors++;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
      curl_multi_remove_handle(multi, e);
      lat[done++] = now() - x->started;
      if(sent < total && now() < deadline)
        start(x);
    }
  }
  if(done == sent)
    ev_break(loop, EVBREAK_ALL);
}

static void io_cb(struct ev_loop *l, ev_io *w, int revents)
{
  int running;
  int action = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) |
    ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  (void)l;
  curl_multi_socket_action(multi, w->fd, action, &running);
  check_done();
}

static void timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
  int running;
  (void)l;
  (void)w;
  (void)revents;
  curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done();
}

static int on_timer(CURLM *m, long ms, void *u)
{
  (void)m;
  (void)u;
  ev_timer_stop(loop, &timer);
  if(ms >= 0) {
    ev_timer_set(&timer, (double)ms / 1000.0, 0.);
    ev_timer_start(loop, &timer);
  }
  return 0;
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *u, void *sp)
{
  struct sockw *w = sp;
  int ev = ((what & CURL_POLL_IN) ? EV_READ : 0) |
    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  (void)e;
  (void)u;
  if(what == CURL_POLL_REMOVE) {
    if(w) {
      ev_io_stop(loop, &w->io);
      free(w);
      curl_multi_assign(multi, s, NULL);
    }
    return 0;
  }
  if(!w) {
    w = calloc(1, sizeof(*w));
    if(!w)
      return -1;
    ev_io_init(&w->io, io_cb, s, ev);
    curl_multi_assign(multi, s, w);
    ev_io_start(loop, &w->io);
  }
  else if(w->io.events != ev) {
    ev_io_stop(loop, &w->io);
    ev_io_set(&w->io, s, ev);
    ev_io_start(loop, &w->io);
  }
  return 0;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  long i;
  double t0, cpu0;
  double secs = 30;
  struct xfer *xs;
  if(argc < 4) {
    fprintf(stderr, "usage: ceiling URL N CONC [SECONDS] [POST_BYTES]\n");
    return 2;
  }
  url = argv[1];
  insecure = getenv("CEILING_INSECURE") && *getenv("CEILING_INSECURE") == '1';
  cafile = getenv("CEILING_CAFILE");
  no_capath = getenv("CEILING_NO_CAPATH") && *getenv("CEILING_NO_CAPATH") == '1';
  perform_mode = getenv("CEILING_PERFORM") && *getenv("CEILING_PERFORM") == '1';
  total = atol(argv[2]);
  conc = atol(argv[3]);
  if(argc > 4)
    secs = atof(argv[4]);
  if(argc > 5) {
    post_len = atol(argv[5]);
    post = malloc((size_t)post_len + 1);
    if(!post)
      return 1;
    memset(post, 'x', (size_t)post_len);
  }
  if(total < 1 || conc < 1)
    return 2;
  if(conc > total)
    conc = total;
  lat = calloc((size_t)total, sizeof(*lat));
  xs = calloc((size_t)conc, sizeof(*xs));
  if(!lat || !xs)
    return 1;
  curl_global_init(CURL_GLOBAL_ALL);
  loop = ev_loop_new(EVFLAG_NOSIGMASK | EVFLAG_NOENV);
  multi = curl_multi_init();
  if(!perform_mode) {
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
  }
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 1024L);
  ev_init(&timer, timer_cb);
  cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  t0 = now();
  deadline = t0 + secs;
  for(i = 0; i < conc; i++) {
    xs[i].easy = curl_easy_init();
    start(&xs[i]);
  }
  if(perform_mode) {
    int running;
    while(done < sent) {
      curl_multi_perform(multi, &running);
      check_done();
      if(done < sent)
        curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
  }
  else
    ev_run(loop, 0);
  t0 = now() - t0;
  cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  qsort(lat, (size_t)done, sizeof(*lat), cmp);
  printf("{\"requests\": %ld, \"errors\": %ld, \"seconds\": %.4f, "
         "\"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
         "\"cpu_us\": %.2f, \"libcurl\": \"%s\"}\n",
         done, errors, t0, (double)done / t0,
         done ? lat[done / 2] * 1e6 : 0.0,
         done ? lat[(long)((double)(done - 1) * 0.99)] * 1e6 : 0.0,
         done ? cpu0 * 1e6 / (double)done : 0.0,
         curl_version_info(CURLVERSION_NOW)->version);
  for(i = 0; i < conc; i++)
    curl_easy_cleanup(xs[i].easy);
  curl_multi_cleanup(multi);
  ev_loop_destroy(loop);
  curl_global_cleanup();
  free(lat);
  free(xs);
  free(post);
  return 0;
}
