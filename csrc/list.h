/*
 * list.h - the core's one FIFO of requests, intrusive: a head and a tail
 * over the requests' own links.
 *
 * struct hac_list chains through hac_req.next: submissions (per worker and
 * while hac_submit() sorts a batch), finished requests, the completion
 * queue.  Add one at the tail, or splice a whole list onto another.
 *
 * struct hac_queue is the same FIFO doubly linked (hac_req.wnext, wprev),
 * for the two waits where a request may leave from the middle (cancelled,
 * deadline passed): a worker's admission queue and an origin's queue of
 * requests waiting for an HTTP/2 connection (mux.c).  A request is in one
 * of them at a time.
 *
 * Included by internal.h once struct hac_req is complete.
 */
#ifndef HAC_LIST_H
#define HAC_LIST_H

struct hac_list {
  struct hac_req *head;
  struct hac_req *tail;
};

struct hac_queue {
  struct hac_req *head;
  struct hac_req *tail;
};

static inline void hac_list_add(struct hac_list *l, struct hac_req *r)
{
  r->next = NULL;
  if(l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
}

/* Move everything in from to the end of l; from is left empty. */
static inline void hac_list_splice(struct hac_list *l, struct hac_list *from)
{
  if(!from->head)
    return;
  if(l->tail)
    l->tail->next = from->head;
  else
    l->head = from->head;
  l->tail = from->tail;
  from->head = from->tail = NULL;
}

static inline void hac_queue_add(struct hac_queue *q, struct hac_req *r)
{
  r->wnext = NULL;
  r->wprev = q->tail;
  if(q->tail)
    q->tail->wnext = r;
  else
    q->head = r;
  q->tail = r;
}

static inline void hac_queue_del(struct hac_queue *q, struct hac_req *r)
{
  if(r->wprev)
    r->wprev->wnext = r->wnext;
  else
    q->head = r->wnext;
  if(r->wnext)
    r->wnext->wprev = r->wprev;
  else
    q->tail = r->wprev;
  r->wnext = r->wprev = NULL;
}

#endif /* HAC_LIST_H */
