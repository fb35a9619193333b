/*
 * buf.c - growable byte buffer on the core's allocator.
 */
#include "internal.h"

#include <string.h>

#define HAC_BUF_MIN 512

/* Append n bytes; 0 on success, -1 when memory runs out (b unchanged). */
int hac_buf_add(struct hac_buf *b, const void *data, size_t n)
{
  if(n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : HAC_BUF_MIN;
    char *p;
    while(cap - b->len < n) {
      if(cap > SIZE_MAX / 2)
        return -1;
      cap *= 2;
    }
    p = hac_realloc(b->p, cap);
    if(!p)
      return -1;
    b->p = p;
    b->cap = cap;
  }
  if(n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

void hac_buf_free(struct hac_buf *b)
{
  hac_mfree(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
