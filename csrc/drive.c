/*
 * drive.c - a client without a worker thread (HAC_DRIVE_CALLER): the
 * thread that waits in hac_wait() runs the worker's loop itself until
 * completions are waiting, so a request costs no wake-up of another
 * thread and no hand-off of its reply (no eventfd written or read, no
 * futex: the c=1 path of a threaded client pays both, both ways).
 *
 * One thread runs the loop at a time (loop_lock, taken with a trylock);
 * the others wait on drive_cv until it leaves (gen moves on) or
 * completions arrive, then take the loop or drain.  Nothing moves while
 * no thread waits: deadlines, timers and submissions are served on the
 * next wait.
 */
#include "internal.h"

#include <errno.h>
#include <time.h>

static void expired_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
  struct hac_worker *w = t->data;
  (void)loop;
  (void)revents;
  w->drive_expired = true;
}

int hac_drive_init(struct hac_worker *w)
{
  if(pthread_mutex_init(&w->loop_lock, NULL))
    return -1;
  if(pthread_mutex_init(&w->drive_mx, NULL)) {
    pthread_mutex_destroy(&w->loop_lock);
    return -1;
  }
  if(pthread_cond_init(&w->drive_cv, NULL)) {
    pthread_mutex_destroy(&w->drive_mx);
    pthread_mutex_destroy(&w->loop_lock);
    return -1;
  }
  w->drive_ready = true;
  ev_init(&w->drive_timer, expired_cb);
  w->drive_timer.data = w;
  return 0;
}

void hac_drive_fini(struct hac_worker *w)
{
  if(!w->drive_ready)
    return;
  pthread_cond_destroy(&w->drive_cv);
  pthread_mutex_destroy(&w->drive_mx);
  pthread_mutex_destroy(&w->loop_lock);
  w->drive_ready = false;
}

static bool ready(struct hac_client *c)
{
  return atomic_load(&c->n_done) || atomic_load(&c->n_news);
}

/* The loop is free again: the threads waiting for it look. */
void hac_drive_leave(struct hac_worker *w)
{
  pthread_mutex_unlock(&w->loop_lock);
  pthread_mutex_lock(&w->drive_mx);
  w->drive_gen++;
  pthread_cond_broadcast(&w->drive_cv); /* no system call without waiters */
  pthread_mutex_unlock(&w->drive_mx);
}

/* With loop_lock: run the loop until completions, the stop or the end of
   timeout_ms (0: one pass that does not block, -1: no end). */
static void run(struct hac_worker *w, int timeout_ms)
{
  struct hac_client *c = w->c;
  w->drive_expired = false;
  if(timeout_ms > 0) {
    ev_now_update(w->loop); /* the loop may have been idle for long */
    ev_timer_set(&w->drive_timer, (double)timeout_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->drive_timer);
  }
  for(;;) {
    ev_run(w->loop, timeout_ms ? EVRUN_ONCE : EVRUN_NOWAIT);
    /* an iteration ends after the callbacks: what they finished would
       otherwise wait for the next one's prepare, after its poll */
    hac_worker_flush(w);
    if(ready(c) || w->stopped || w->drive_expired || !timeout_ms)
      break;
  }
  ev_timer_stop(w->loop, &w->drive_timer);
}

static void deadline_of(struct timespec *ts, int timeout_ms)
{
  clock_gettime(CLOCK_REALTIME, ts); /* the condvar's clock */
  ts->tv_sec += timeout_ms / 1000;
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if(ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static int remaining_ms(const struct timespec *end)
{
  struct timespec now;
  long long ms;
  clock_gettime(CLOCK_REALTIME, &now);
  ms = (long long)(end->tv_sec - now.tv_sec) * 1000 +
    (end->tv_nsec - now.tv_nsec) / 1000000;
  return ms <= 0 ? 0 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* hac_wait() of a client without threads: 1 ready (or stopped), 0 not. */
int hac_drive_wait(struct hac_client *c, int timeout_ms)
{
  struct hac_worker *w = &c->workers[0];
  struct timespec end = {0, 0};
  if(timeout_ms > 0)
    deadline_of(&end, timeout_ms);
  for(;;) {
    unsigned long gen;
    int left = timeout_ms > 0 ? remaining_ms(&end) : timeout_ms;
    pthread_mutex_lock(&w->drive_mx);
    gen = w->drive_gen;
    pthread_mutex_unlock(&w->drive_mx);
    if(!pthread_mutex_trylock(&w->loop_lock)) {
      bool stopped = w->stopped;
      if(!stopped && (left || !timeout_ms))
        run(w, left);
      stopped = w->stopped;
      hac_drive_leave(w);
      return ready(c) || stopped;
    }
    if(!timeout_ms || (timeout_ms > 0 && !left))
      return ready(c);
    /* another thread runs the loop: until it leaves or has completions
       (it leaves when it has them) */
    pthread_mutex_lock(&w->drive_mx);
    while(w->drive_gen == gen && !ready(c)) {
      if(timeout_ms < 0)
        pthread_cond_wait(&w->drive_cv, &w->drive_mx);
      else if(pthread_cond_timedwait(&w->drive_cv, &w->drive_mx, &end) ==
              ETIMEDOUT)
        break;
    }
    pthread_mutex_unlock(&w->drive_mx);
    if(ready(c))
      return 1;
  }
}
