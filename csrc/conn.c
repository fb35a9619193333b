/*
 * conn.c - a worker's view of the connections libcurl opens for it.
 *
 * libcurl opens every socket through hac_conn_open() and closes it through
 * mux.c's hac_mux_close_socket(), which tells hac_conn_closing() (mux.c
 * calls this file, never the reverse), so the worker knows each
 * connection's peer and local port, and whether a transfer is using it
 * (libcurl watches a socket only while a transfer needs it; a cached idle
 * connection is not watched).  With that a
 * connection found dead can make the worker distrust the other idle
 * connections to the same peer: after a host has lost its state (a reboot,
 * a failover, a black hole), they are just as dead, and libcurl would
 * otherwise find that out one request at a time.
 *
 * The table is indexed by fd and touched only by the owning worker.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static struct hac_conn *slot(struct hac_worker *w, curl_socket_t fd)
{
  if(fd < 0 || (size_t)fd >= w->nconns)
    return NULL;
  return &w->conns[fd];
}

static int grow(struct hac_worker *w, curl_socket_t fd)
{
  size_t n = w->nconns ? w->nconns : 64;
  struct hac_conn *p;
  while(n <= (size_t)fd)
    n *= 2;
  p = hac_realloc(w->conns, n * sizeof(*p));
  if(!p)
    return -1;
  memset(p + w->nconns, 0, (n - w->nconns) * sizeof(*p));
  w->conns = p;
  w->nconns = n;
  return 0;
}

static void peer_from_sockaddr(struct hac_peer *p, const struct sockaddr *sa,
                               size_t len)
{
  memset(p, 0, sizeof(*p));
  p->family = (uint16_t)sa->sa_family;
  if(sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in in;
    memcpy(&in, sa, sizeof(in));
    p->port = ntohs(in.sin_port);
    memcpy(p->addr, &in.sin_addr, 4);
  }
  else if(sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 in6;
    memcpy(&in6, sa, sizeof(in6));
    p->port = ntohs(in6.sin6_port);
    memcpy(p->addr, &in6.sin6_addr, 16);
  }
}

static int peer_parse(struct hac_peer *p, const char *ip, long port)
{
  memset(p, 0, sizeof(*p));
  p->port = (uint16_t)port;
  if(inet_pton(AF_INET, ip, p->addr) == 1)
    p->family = AF_INET;
  else if(inet_pton(AF_INET6, ip, p->addr) == 1)
    p->family = AF_INET6;
  else
    return -1;
  return 0;
}

static bool peer_eq(const struct hac_peer *a, const struct hac_peer *b)
{
  return a->family == b->family && a->port == b->port &&
    !memcmp(a->addr, b->addr, sizeof(a->addr));
}

static void fill_lport(struct hac_conn *k, curl_socket_t fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if(k->lport || !k->open)
    return;
  if(getsockname(fd, (struct sockaddr *)&ss, &len))
    return;
  if(ss.ss_family == AF_INET)
    k->lport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  else if(ss.ss_family == AF_INET6)
    k->lport = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* CURLOPT_OPENSOCKETFUNCTION; clientp is the worker */
curl_socket_t hac_conn_open(void *clientp, curlsocktype purpose,
                            struct curl_sockaddr *a)
{
  struct hac_worker *w = clientp;
  struct hac_conn *k;
  curl_socket_t fd;
  (void)purpose;
  fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if(fd < 0)
    return CURL_SOCKET_BAD;
  /* untracked when the table cannot grow: such a connection is simply
     never suspected */
  if((size_t)fd >= w->nconns && grow(w, fd))
    return fd;
  k = &w->conns[fd];
  if(!++k->gen)
    k->gen = 1; /* 0 means "not open" to hac_conn_gen() */
  k->open = true;
  k->watched = false;
  k->dead = false;
  k->shut = false;
  k->mux = false;
  k->origin = NULL;
  k->lport = 0;
  k->born = ++w->conn_opened;
  peer_from_sockaddr(&k->peer, &a->addr, a->addrlen);
  return fd;
}

/* libcurl closes fd (mux.c's CURLOPT_CLOSESOCKETFUNCTION, which then
   closes it): its connection, if it was open, for mux.c to let go of. */
struct hac_conn *hac_conn_closing(struct hac_worker *w, curl_socket_t fd)
{
  struct hac_conn *k = slot(w, fd);
  if(!k || !k->open)
    return NULL;
  /* peer, local port and "dead" stay until the fd is opened again, so
     the transfers that failed on it still find it */
  k->open = false;
  k->watched = false;
  w->conn_closes++; /* worker.c drops a parked watcher of fd (data only:
                       this file calls nothing above it) */
  return k;
}

/* fd's connection generation while it is open, 0 when closed or
   untracked (a socket libcurl did not open through hac_conn_open()) */
uint32_t hac_conn_gen(struct hac_worker *w, curl_socket_t fd)
{
  struct hac_conn *k = slot(w, fd);
  return k && k->open ? k->gen : 0;
}

/* libcurl starts (on) or stops (off) watching fd for some transfer. */
void hac_conn_watch(struct hac_worker *w, curl_socket_t fd, bool on)
{
  struct hac_conn *k = slot(w, fd);
  if(!k || !k->open)
    return;
  k->watched = on;
  if(on)
    fill_lport(k, fd); /* once per connection: its first watch */
}

/* The connection a transfer's callback or info names (peer ip and port,
   local port), open or recently closed; NULL when untracked. */
struct hac_conn *hac_conn_find(struct hac_worker *w, const char *ip,
                               long port, long lport)
{
  struct hac_peer p;
  struct hac_conn *closed = NULL;
  size_t i;
  if(lport <= 0 || !ip || peer_parse(&p, ip, port))
    return NULL;
  for(i = 0; i < w->nconns; i++) {
    struct hac_conn *k = &w->conns[i];
    if(!k->gen)
      continue;
    fill_lport(k, (curl_socket_t)i);
    if(k->lport != (uint16_t)lport || !peer_eq(&k->peer, &p))
      continue;
    if(k->open)
      return k;
    closed = k;
  }
  return closed;
}

curl_socket_t hac_conn_fd(struct hac_worker *w, const struct hac_conn *k)
{
  return (curl_socket_t)(k - w->conns);
}

/*
 * Distrust the idle connections to the peer a dead connection went to:
 * shut them down, so that libcurl's check before reuse finds them closed
 * and opens a new one instead of sending a request into each.  Returns
 * how many were shut down.
 */
static size_t suspect(struct hac_worker *w, const struct hac_peer *p)
{
  size_t i;
  size_t n = 0;
  /* the busy ones too (not shut: their transfers find out themselves) */
  w->suspect_mark = w->conn_opened;
  for(i = 0; i < w->nconns; i++) {
    struct hac_conn *k = &w->conns[i];
    if(!k->open || k->watched || k->shut || !peer_eq(&k->peer, p))
      continue;
    if(!shutdown((int)i, SHUT_RDWR) || errno == ENOTCONN)
      n++;
    k->shut = true; /* libcurl closes it when it next looks at it */
  }
  return n;
}

/* A cached connection request r went out on closed before any response:
   count it once, and distrust the idle connections to the same peer. */
void hac_conn_dead(struct hac_worker *w, const struct hac_req *r)
{
  struct hac_conn *k = hac_conn_find(w, r->pip, r->pport, r->lport);
  struct hac_peer p;
  if(k) {
    if(k->dead)
      return;
    k->dead = true;
  }
  atomic_fetch_add_explicit(&w->n_dead, 1, memory_order_relaxed);
  if(!peer_parse(&p, r->pip, r->pport))
    (void)suspect(w, &p);
}

/* May a re-sent request go out on this cached connection?  Only on one
   opened since the last suspicion: one born before it may be as dead as
   the one that failed (shut or busy then), one born after is not. */
bool hac_conn_trusted(struct hac_worker *w, const char *ip, long port,
                      long lport)
{
  struct hac_conn *k = hac_conn_find(w, ip, port, lport);
  return k && k->open && !k->shut && !k->dead && k->born > w->suspect_mark;
}

void hac_conn_fini(struct hac_worker *w)
{
  hac_mfree(w->conns);
  w->conns = NULL;
  w->nconns = 0;
}
