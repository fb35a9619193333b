/*
 * reqhash.c - a worker's request table: id -> in-flight request.
 *
 * hash_size buckets (a power of two) of doubly linked chains; ids are
 * sequential, so the low bits spread them evenly.  Touched only by the
 * owning worker thread.
 */
#include "internal.h"

int hac_table_init(struct hac_worker *w, size_t buckets)
{
  w->table = hac_calloc(buckets, sizeof(*w->table));
  if(!w->table)
    return -1;
  w->mask = buckets - 1;
  return 0;
}

void hac_table_add(struct hac_worker *w, struct hac_req *r)
{
  struct hac_req **head = &w->table[r->res.id & w->mask];
  r->hprev = NULL;
  r->hnext = *head;
  if(*head)
    (*head)->hprev = r;
  *head = r;
}

void hac_table_del(struct hac_worker *w, struct hac_req *r)
{
  if(r->hprev)
    r->hprev->hnext = r->hnext;
  else
    w->table[r->res.id & w->mask] = r->hnext;
  if(r->hnext)
    r->hnext->hprev = r->hprev;
  r->hnext = r->hprev = NULL;
}

struct hac_req *hac_table_find(struct hac_worker *w, uint64_t id)
{
  struct hac_req *r = w->table[id & w->mask];
  while(r && r->res.id != id)
    r = r->hnext;
  return r;
}

/* The first request in bucket *cursor or after, or NULL; lets the worker
   empty its table at stop in one pass. */
struct hac_req *hac_table_next(struct hac_worker *w, size_t *cursor)
{
  for(; *cursor <= w->mask; (*cursor)++)
    if(w->table[*cursor])
      return w->table[*cursor];
  return NULL;
}

void hac_table_fini(struct hac_worker *w)
{
  hac_mfree(w->table);
  w->table = NULL;
}
