/*
 * worker.c - a worker thread: its libev loop drives one curl multi handle
 * through curl_multi_socket_action (an ev_io per socket, one ev_timer;
 * drive() is the one place that calls it; sock.c keeps the ev_io of each
 * socket), takes submissions through an
 * ev_async, and hands finished requests to the client's completion queue
 * once per loop iteration (ev_prepare).
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* after a failed curl_multi_socket_action(): its pass again this soon (s) */
#define HAC_MULTI_RETRY 0.01

static void check_done(struct hac_worker *w)
{
  CURLMsg *m;
  int left;
  while((m = curl_multi_info_read(w->multi, &left))) {
    if(m->msg == CURLMSG_DONE) {
      CURL *e = m->easy_handle;
      CURLcode rc = m->data.result;
      char *priv = NULL;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
      if(priv)
        hac_xfer_done(w, (struct hac_req *)(void *)priv, rc);
    }
  }
}

static void fail_oom(struct hac_worker *w)
{
  while(w->noom) {
    char *priv = NULL;
    CURL *e = w->oom[--w->noom];
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    if(priv && ((struct hac_req *)(void *)priv)->in_multi)
      hac_xfer_fail(w, (struct hac_req *)(void *)priv, 0,
                    "out of memory watching a socket");
  }
}

/*
 * curl_multi_socket_action() failed.  libcurl 7.88 returns the first error
 * of its pass (out of memory adding a socket to its hash, mostly) and
 * skips the rest: the timers due after it and telling the new timeout.
 * No transfer is lost for good (each keeps its deadline; the watchdog
 * ends one libcurl loses) and the error names none, so none is failed
 * here: the error is counted (and logged with curl_verbose) and the pass
 * runs again soon, not in a busy loop while memory stays short.
 */
static void multi_error(struct hac_worker *w, CURLMcode mrc)
{
  w->multi_errors++;
  w->multi_last = mrc;
  if(w->c->cfg.curl_verbose) {
    char line[160];
    int k = snprintf(line, sizeof(line), "[worker] curl_multi_socket_action:"
                     " %s (curl multi error %d)\n", curl_multi_strerror(mrc),
                     (int)mrc);
    if(k > 0)
      hac_log_add(w->c, line, (size_t)k < sizeof(line) ?
                  (size_t)k : sizeof(line) - 1);
  }
  if(!ev_is_active(&w->timer) ||
     ev_timer_remaining(w->loop, &w->timer) > HAC_MULTI_RETRY) {
    ev_timer_stop(w->loop, &w->timer);
    ev_timer_set(&w->timer, HAC_MULTI_RETRY, 0.);
    ev_timer_start(w->loop, &w->timer);
    w->timer_due = ev_now(w->loop) + HAC_MULTI_RETRY;
  }
}

/* Let libcurl act on socket s (CURL_SOCKET_TIMEOUT: its timers), then end
   what it finished or could not watch. */
static void drive(struct hac_worker *w, curl_socket_t s, int action)
{
  int running;
  CURLMcode mrc = curl_multi_socket_action(w->multi, s, action, &running);
  if(mrc != CURLM_OK)
    multi_error(w, mrc);
  if(w->noom)
    fail_oom(w);
  check_done(w);
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
  struct hac_sock *sk = io->data;
  if(sk->parked) {
    /* the peer closed or wrote to an idle connection: nothing for libcurl
       (it checks the connection before reusing it); disarm, or a level-
       triggered epoll reports it on every iteration */
    ev_io_stop(loop, io);
    return;
  }
  /* io->fd now: sk may be freed inside socket_action */
  drive(sk->w, io->fd, ((revents & EV_READ) ? CURL_CSELECT_IN : 0) |
        ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0));
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
  (void)revents;
  ev_timer_stop(loop, t); /* libcurl's timer is one-shot (see on_timer) */
  drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/*
 * CURLMOPT_TIMERFUNCTION: never calls back into libcurl directly.  libcurl
 * calls it on most actions, often with the expiry it already set: that
 * costs nothing; a new expiry moves the armed timer in place
 * (ev_timer_again) instead of a stop and a start.
 */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
  struct hac_worker *w = userp;
  double after = (double)timeout_ms / 1000.0;
  (void)multi;
  if(timeout_ms < 0) {
    ev_timer_stop(w->loop, &w->timer);
    return 0;
  }
  if(timeout_ms == 0) {
    w->kick = true; /* see async_cb() */
    after = 0.;
  }
  if(ev_is_active(&w->timer) && ev_now(w->loop) + after == w->timer_due)
    return 0;
  w->timer_due = ev_now(w->loop) + after;
  if(after > 0.) {
    w->timer.repeat = after; /* again: (re)armed to fire after `after` */
    ev_timer_again(w->loop, &w->timer);
    return 0;
  }
  ev_timer_stop(w->loop, &w->timer);
  ev_timer_set(&w->timer, 0., 0.);
  ev_timer_start(w->loop, &w->timer);
  return 0;
}

static void flush(struct hac_worker *w)
{
  size_t n = 0;
  struct hac_req *r;
  for(r = w->fin.head; r; r = r->next)
    n++;
  hac_done_push(w->c, &w->fin, n);
}

/* drive.c: what the loop finished, to the completion queue now */
void hac_worker_flush(struct hac_worker *w)
{
  if(w->fin.head)
    flush(w);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
  struct hac_worker *w = p->data;
  (void)loop;
  (void)revents;
  if(w->wait.head || w->kicked)
    hac_xfer_promote(w);
  hac_worker_flush(w);
  if(w->swept != w->conn_closes)
    hac_sock_sweep(w);
}

static void cancel_all(struct hac_worker *w)
{
  size_t cursor = 0;
  struct hac_req *r;
  while((r = hac_table_next(w, &cursor)))
    hac_xfer_fail(w, r, HAC_R_CANCELLED, "CANCELLED: client closed");
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
  struct hac_worker *w = a->data;
  struct hac_req *sub;
  struct hac_cancel *cancels;
  bool stop;
  (void)revents;

  pthread_mutex_lock(&w->lock);
  sub = w->sub.head;
  w->sub.head = w->sub.tail = NULL;
  cancels = w->cancels;
  w->cancels = NULL;
  stop = w->stop;
  pthread_mutex_unlock(&w->lock);

  w->kick = false;
  while(sub) {
    struct hac_req *next = sub->next;
    atomic_fetch_sub_explicit(&w->n_queued, 1, memory_order_relaxed);
    sub->w = w;
    if(stop)
      hac_xfer_fail(w, sub, HAC_R_CANCELLED, "CANCELLED: client closed");
    else
      hac_xfer_admit(w, sub);
    sub = next;
  }
  if(w->kick && !stop) {
    /* new transfers asked for an immediate timeout: start them now rather
       than one loop iteration (an epoll_wait) later; a c=1 round trip is
       the latency this saves */
    w->kick = false;
    drive(w, CURL_SOCKET_TIMEOUT, 0);
  }
  while(cancels) {
    struct hac_cancel *next = cancels->next;
    struct hac_req *r;
    if(cancels->resume && !stop)
      hac_stream_resume(w, cancels->id);
    else if(!cancels->resume && (r = hac_table_find(w, cancels->id)))
      hac_xfer_fail(w, r, HAC_R_CANCELLED, "CANCELLED: cancelled by caller");
    hac_mfree(cancels);
    cancels = next;
  }
  if(stop) {
    cancel_all(w);
    flush(w);
    w->stopped = true;
    ev_break(loop, EVBREAK_ALL);
  }
}

static void release_curl(struct hac_worker *w)
{
  hac_pool_fini(w);
  if(w->multi)
    curl_multi_cleanup(w->multi); /* closes the cached connections */
  w->multi = NULL;
  hac_share_fini(w); /* after the last handle that used it */
  curl_slist_free_all(w->no_expect); /* no handle refers to it any more */
  w->no_expect = NULL;
  hac_transport_fini(w);
}

static void *run(void *arg)
{
  struct hac_worker *w = arg;
  ev_run(w->loop, 0);
  /* close() returns with every connection closed, not at garbage
     collection */
  release_curl(w);
  return NULL;
}

int hac_worker_start(struct hac_worker *w)
{
  sigset_t all;
  sigset_t old;
  int rc;

  if(pthread_mutex_init(&w->lock, NULL))
    return -1;
  w->lock_ready = true;
  w->loop = ev_loop_new(EVFLAG_NOSIGMASK | EVFLAG_NOENV);
  if(!w->loop)
    return -1;
  w->multi = curl_multi_init();
  if(!w->multi || hac_share_init(w))
    return -1;
  if(hac_table_init(w, (size_t)w->c->cfg.hash_size) ||
     hac_transport_init(w))
    return -1;
  w->on_io = io_cb;
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, hac_sock_on_socket);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, (void *)w);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, (void *)w);
  /* libcurl's default cache (4 x the handles added right now) shrinks as a
     burst drains and closes the connections the next burst needs */
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS,
                    w->c->cfg.max_connections);
  /* a burst larger than this waits in libcurl for a connection instead of
     opening sockets until the process runs out of fds */
  curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    w->c->cfg.max_connections);
  /* 0: no bound; more transfers to one host wait inside libcurl, their
     deadline running */
  curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    w->c->cfg.max_host_connections);
  /* libcurl's default, set so that mux.c knows it */
  curl_multi_setopt(w->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
                    (long)HAC_H2C_STREAMS);

  ev_init(&w->timer, timer_cb);
  w->timer.data = w;
  ev_async_init(&w->wake, async_cb);
  w->wake.data = w;
  ev_async_start(w->loop, &w->wake);
  ev_prepare_init(&w->flusher, prepare_cb);
  w->flusher.data = w;
  ev_prepare_start(w->loop, &w->flusher);

  if(w->c->cfg.driver == HAC_DRIVE_CALLER) {
    if(hac_drive_init(w))
      return -1;
    w->started = true; /* no thread: hac_wait()'s caller runs the loop */
    return 0;
  }
  /* the workers take no signals: they belong to the application */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&w->thread, NULL, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if(rc)
    return -1;
  w->started = true;
  return 0;
}

/* Ask the thread to finish everything and exit, then wait for it. */
void hac_worker_stop(struct hac_worker *w)
{
  if(!w->started)
    return;
  pthread_mutex_lock(&w->lock);
  w->stop = true;
  pthread_mutex_unlock(&w->lock);
  ev_async_send(w->loop, &w->wake);
  if(w->c->cfg.driver == HAC_DRIVE_CALLER) {
    /* a thread running the loop takes the stop and leaves; else run it
       here.  Later waiters see `stopped` and leave the loop alone. */
    pthread_mutex_lock(&w->loop_lock);
    if(!w->stopped)
      ev_run(w->loop, 0);
    w->stopped = true;
    release_curl(w);
    hac_drive_leave(w);
  }
  else
    pthread_join(w->thread, NULL);
  w->started = false;
}

/* After the thread ended: free libcurl's and libev's parts, with their
   fds (close() returns with them released). */
void hac_worker_release(struct hac_worker *w)
{
  release_curl(w); /* closes sockets: conn.c and mux.c state still used */
  hac_conn_fini(w);
  hac_mux_fini(w);
  hac_sock_fini(w);
  if(w->loop)
    ev_loop_destroy(w->loop);
  w->loop = NULL;
}

/* Free what hac_worker_start() made; the thread is not running. */
void hac_worker_fini(struct hac_worker *w)
{
  struct hac_req *r;
  hac_worker_release(w);
  hac_table_fini(w);
  hac_hist_fini(w);
  /* submissions a never-started worker still holds */
  while((r = w->sub.head)) {
    w->sub.head = r->next;
    hac_req_free(r);
  }
  while(w->cancels) {
    struct hac_cancel *k = w->cancels;
    w->cancels = k->next;
    hac_mfree(k);
  }
  if(w->lock_ready)
    pthread_mutex_destroy(&w->lock);
  hac_drive_fini(w);
}
