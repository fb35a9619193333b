/*
 * fork.c - a parent's client abandoned in a forked child.
 *
 * In the child the parent's worker threads do not exist and any lock one
 * of them held stays held, so nothing of the client may be locked, joined
 * or handed to libcurl (which would also write TLS close alerts on
 * connections the parent still uses).  What can be given back safely is
 * the child's copies of the client's fds: closing a copy leaves the
 * parent's connection and eventfd as they are.  The memory stays (pages
 * the child never writes stay shared with the parent), and so do each
 * worker's libev fds (its epoll set and wake-up eventfd: libev does not
 * expose them; two per worker, close-on-exec).
 */
#include "internal.h"

#include <unistd.h>

void hac_abandon(hac_client *c)
{
  int i;
  int fd;
  /* pid 0: abandoned already (here or in a parent that was a child) */
  if(!c || !c->pid || c->pid == getpid())
    return;
  c->pid = 0;
  atomic_store(&c->closed, true);
  for(i = 0; i < c->nworkers; i++) {
    struct hac_worker *w = &c->workers[i];
    size_t k;
    /* the connections libcurl had open (conn.c marks one closed before
       it closes it, so no fd here belongs to something else) */
    for(k = 0; w->conns && k < w->nconns; k++)
      if(w->conns[k].open)
        (void)close((int)k);
  }
  fd = atomic_exchange(&c->efd, -1);
  if(fd >= 0)
    (void)close(fd);
}
