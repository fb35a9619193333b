/*
 * sock.c - libcurl's sockets as libev watchers (CURLMOPT_SOCKETFUNCTION).
 * One ev_io per connection across transfers: when libcurl says REMOVE the
 * watcher is parked (armed for reading only) and taken up again when a
 * transfer asks for the same connection, so a reused connection costs no
 * epoll_ctl.  conn.c's generation numbers tell a parked watcher's
 * connection from a new one the kernel gave the same fd number.
 * The watchers' callback is the worker's (hac_worker.on_io).
 */
#include "internal.h"

#include <string.h>

static void sock_unlink(struct hac_worker *w, struct hac_sock *sk)
{
  curl_socket_t fd = sk->io.fd;
  ev_io_stop(w->loop, &sk->io);
  *sk->pprev = sk->next;
  if(sk->next)
    sk->next->pprev = sk->pprev;
  if(fd >= 0 && (size_t)fd < w->nfdsock && w->fdsock[fd] == sk)
    w->fdsock[fd] = NULL;
  hac_mfree(sk);
}

/* Remember sk as fd's watcher; false when the table cannot grow (sk is
   then dropped at its REMOVE, as every watcher was before parking). */
static bool sock_index(struct hac_worker *w, curl_socket_t fd,
                       struct hac_sock *sk)
{
  if((size_t)fd >= w->nfdsock) {
    size_t n = w->nfdsock ? w->nfdsock : 64;
    struct hac_sock **p;
    while(n <= (size_t)fd)
      n *= 2;
    p = hac_realloc(w->fdsock, n * sizeof(*p));
    if(!p)
      return false;
    memset(p + w->nfdsock, 0, (n - w->nfdsock) * sizeof(*p));
    w->fdsock = p;
    w->nfdsock = n;
  }
  w->fdsock[fd] = sk;
  return true;
}

/* The parked watcher of fd, if it still belongs to the connection open
   on fd now; one left from a closed connection whose number the kernel
   gave to a new socket is dropped: libev must see that fd anew. */
static struct hac_sock *sock_unpark(struct hac_worker *w, curl_socket_t s)
{
  struct hac_sock *sk;
  uint32_t gen;
  if(s < 0 || (size_t)s >= w->nfdsock || !(sk = w->fdsock[s]))
    return NULL;
  gen = hac_conn_gen(w, s);
  if(!gen || sk->gen != gen) {
    sock_unlink(w, sk);
    return NULL;
  }
  sk->parked = false;
  return sk;
}

/* libcurl no longer needs s for any transfer */
static void sock_park(struct hac_worker *w, curl_socket_t s,
                      struct hac_sock *sk)
{
  curl_multi_assign(w->multi, s, NULL);
  if(!sk->gen || sk->gen != hac_conn_gen(w, s) ||
     (size_t)s >= w->nfdsock || w->fdsock[s] != sk) {
    sock_unlink(w, sk); /* not a connection we can follow */
    return;
  }
  sk->parked = true;
  /* armed for reading only: an idle connection is writable all the time */
  if(sk->io.events & EV_WRITE)
    ev_io_stop(w->loop, &sk->io);
}

/* Closed connections' parked watchers, before the loop blocks: libev must
   not watch a closed fd. */
void hac_sock_sweep(struct hac_worker *w)
{
  struct hac_sock *sk = w->socks;
  w->swept = w->conn_closes;
  while(sk) {
    struct hac_sock *next = sk->next;
    if(sk->parked && sk->gen != hac_conn_gen(w, sk->io.fd))
      sock_unlink(w, sk);
    sk = next;
  }
}

static struct hac_sock *sock_new(struct hac_worker *w, curl_socket_t s)
{
  struct hac_sock *sk = hac_calloc(1, sizeof(*sk));
  if(!sk)
    return NULL;
  sk->w = w;
  sk->gen = hac_conn_gen(w, s);
  sk->next = w->socks;
  sk->pprev = &w->socks;
  if(w->socks)
    w->socks->pprev = &sk->next;
  w->socks = sk;
  ev_io_init(&sk->io, w->on_io, s, 0);
  sk->io.data = sk;
  if(sk->gen && !sock_index(w, s, sk))
    sk->gen = 0;
  return sk;
}

/* CURLMOPT_SOCKETFUNCTION */
int hac_sock_on_socket(CURL *e, curl_socket_t s, int what, void *userp,
                       void *socketp)
{
  struct hac_worker *w = userp;
  struct hac_sock *sk = socketp;
  int events;
  if(what == CURL_POLL_REMOVE) {
    hac_conn_watch(w, s, false);
    if(sk)
      sock_park(w, s, sk);
    return 0;
  }
  events = ((what & CURL_POLL_IN) ? EV_READ : 0) |
    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if(!sk) {
    sk = sock_unpark(w, s);
    if(!sk)
      sk = sock_new(w, s);
    if(!sk) {
      /* unwatched, this transfer would hang: fail it once libcurl returns */
      if(w->noom < (int)(sizeof(w->oom) / sizeof(w->oom[0])))
        w->oom[w->noom++] = e;
      return 0; /* libcurl 7.88 mishandles -1; the request is ended instead */
    }
    hac_conn_watch(w, s, true);
    curl_multi_assign(w->multi, s, sk);
  }
  if(sk->io.events != events || !ev_is_active(&sk->io)) {
    /* libev compares the fd's events before it blocks: a watcher stopped
       and started again with the same events in one iteration costs no
       epoll_ctl */
    ev_io_stop(w->loop, &sk->io);
    ev_io_modify(&sk->io, events);
    ev_io_start(w->loop, &sk->io);
  }
  return 0;
}

/* Every watcher and the fd table, once the loop no longer runs. */
void hac_sock_fini(struct hac_worker *w)
{
  while(w->socks) {
    struct hac_sock *sk = w->socks;
    w->socks = sk->next;
    if(w->loop)
      ev_io_stop(w->loop, &sk->io);
    hac_mfree(sk);
  }
  hac_mfree(w->fdsock);
  w->fdsock = NULL;
  w->nfdsock = 0;
}
