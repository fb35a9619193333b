/*
 * alloc.c - the accounted allocator ("shm") and libcurl's global init.
 *
 * libcurl's memory callbacks are process-wide and can be set only once,
 * before anything else initialises libcurl, so the first client decides
 * the memory manager of the process; later clients learn the mode in force.
 *
 * Every block carries a 16-byte prefix holding its size, which keeps the
 * returned pointer aligned for any type and lets free() account it.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define HAC_PREFIX 16

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialised;
static int mm_mode = HAC_MM_SYS;
static atomic_uint_least64_t mem_in_use;
static atomic_uint_least64_t mem_peak;
static atomic_uint fork_gen;

static void on_fork_child(void)
{
  atomic_fetch_add(&fork_gen, 1);
}

/* How many forks this process is away from the first client's process:
   state made in another generation may have had its locks held by a
   thread that does not exist here. */
unsigned hac_fork_gen(void)
{
  return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

#ifdef HAC_FAULT_INJECTION
static atomic_long fault_nth = -1;
static atomic_long fault_seen;

static bool fault_now(void)
{
  atomic_fetch_add_explicit(&fault_seen, 1, memory_order_relaxed);
  if(atomic_load_explicit(&fault_nth, memory_order_relaxed) < 0)
    return false;
  return atomic_fetch_sub_explicit(&fault_nth, 1, memory_order_relaxed) == 0;
}

long hac_fault_inject(long nth)
{
  long seen = atomic_exchange(&fault_seen, 0);
  atomic_store(&fault_nth, nth);
  return seen;
}
#define FAULT() fault_now()
#else
long hac_fault_inject(long nth)
{
  (void)nth;
  return -1;
}
#define FAULT() false
#endif

static void account_add(size_t n)
{
  uint64_t now = atomic_fetch_add_explicit(&mem_in_use, n,
                                           memory_order_relaxed) + n;
  uint64_t peak = atomic_load_explicit(&mem_peak, memory_order_relaxed);
  while(now > peak &&
        !atomic_compare_exchange_weak_explicit(&mem_peak, &peak, now,
                                               memory_order_relaxed,
                                               memory_order_relaxed))
    ;
}

static void account_sub(size_t n)
{
  atomic_fetch_sub_explicit(&mem_in_use, n, memory_order_relaxed);
}

static void *acc_malloc(size_t n)
{
  unsigned char *p;
  if(n > SIZE_MAX - HAC_PREFIX)
    return NULL;
  p = malloc(n + HAC_PREFIX);
  if(!p)
    return NULL;
  memcpy(p, &n, sizeof(n));
  account_add(n);
  return p + HAC_PREFIX;
}

static void acc_free(void *ptr)
{
  unsigned char *p;
  size_t n;
  if(!ptr)
    return;
  p = (unsigned char *)ptr - HAC_PREFIX;
  memcpy(&n, p, sizeof(n));
  account_sub(n);
  free(p);
}

static void *acc_realloc(void *ptr, size_t n)
{
  unsigned char *p;
  unsigned char *np;
  size_t old;
  if(!ptr)
    return acc_malloc(n);
  if(!n) {
    acc_free(ptr);
    return NULL;
  }
  if(n > SIZE_MAX - HAC_PREFIX)
    return NULL;
  p = (unsigned char *)ptr - HAC_PREFIX;
  memcpy(&old, p, sizeof(old));
  np = realloc(p, n + HAC_PREFIX);
  if(!np)
    return NULL;
  memcpy(np, &n, sizeof(n));
  if(n > old)
    account_add(n - old);
  else
    account_sub(old - n);
  return np + HAC_PREFIX;
}

static void *acc_calloc(size_t nmemb, size_t n)
{
  void *p;
  if(n && nmemb > SIZE_MAX / n)
    return NULL;
  p = acc_malloc(nmemb * n);
  if(p)
    memset(p, 0, nmemb * n);
  return p;
}

static char *acc_strdup(const char *s)
{
  size_t n = strlen(s) + 1;
  char *p = acc_malloc(n);
  if(p)
    memcpy(p, s, n);
  return p;
}

/*
 * The core's own allocations.  Fault injection targets these, not
 * libcurl's: libcurl 7.88 itself hangs a transfer or raises SIGFPE on some
 * failed allocations, which no caller can repair.
 */
void *hac_malloc(size_t n)
{
  if(FAULT())
    return NULL;
  return mm_mode == HAC_MM_SHM ? acc_malloc(n) : malloc(n);
}

void *hac_calloc(size_t nmemb, size_t n)
{
  if(FAULT())
    return NULL;
  return mm_mode == HAC_MM_SHM ? acc_calloc(nmemb, n) : calloc(nmemb, n);
}

void *hac_realloc(void *p, size_t n)
{
  if(n && FAULT())
    return NULL;
  return mm_mode == HAC_MM_SHM ? acc_realloc(p, n) : realloc(p, n);
}

char *hac_strdup(const char *s)
{
  if(FAULT())
    return NULL;
  return mm_mode == HAC_MM_SHM ? acc_strdup(s) : strdup(s);
}

void hac_mfree(void *p)
{
  if(mm_mode == HAC_MM_SHM)
    acc_free(p);
  else
    free(p);
}

void hac_mem_counters(uint64_t *in_use, uint64_t *peak)
{
  *in_use = atomic_load_explicit(&mem_in_use, memory_order_relaxed);
  *peak = atomic_load_explicit(&mem_peak, memory_order_relaxed);
}

/*
 * Initialise libcurl once for the process.  Returns 0 or a CURLcode.
 */
int hac_global_init(int want_mm, int *effective)
{
  CURLcode rc = CURLE_OK;
  pthread_mutex_lock(&init_lock);
  if(!initialised) {
    if(want_mm == HAC_MM_SHM)
      rc = curl_global_init_mem(CURL_GLOBAL_ALL, acc_malloc, acc_free,
                                acc_realloc, acc_strdup, acc_calloc);
    else
      rc = curl_global_init(CURL_GLOBAL_ALL);
    if(rc == CURLE_OK) {
      mm_mode = want_mm;
      initialised = true;
      (void)pthread_atfork(NULL, NULL, on_fork_child);
    }
  }
  *effective = mm_mode;
  pthread_mutex_unlock(&init_lock);
  return (int)rc;
}
