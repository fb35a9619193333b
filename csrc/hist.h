/*
 * hist.h - per-origin latency histograms (hist.c).  Included by
 * internal.h after proto.h; never on its own.
 *
 * Each worker keeps, per origin ("scheme://host:port", see
 * hac_origin_key()), four log-linear histograms of microseconds: the TCP
 * connect, the TLS handshake, the time to the first response byte and the
 * total.  The worker is the only writer (relaxed load + relaxed store of
 * each counter, no lock, no read-modify-write); any thread reads them and
 * merges the workers' histograms of an origin.
 */
#ifndef HAC_HIST_H
#define HAC_HIST_H

/* Log-linear buckets (HdrHistogram's layout): values below HAC_HIST_SUB
   are exact; above, each power of two [2^m, 2^(m+1)) is cut into
   HAC_HIST_HALF equal slots, so a slot is at most 1/HAC_HIST_HALF of its
   lower bound wide and its midpoint is within 1/64 (1.6 %) of any value in
   it.  Values from 2^HAC_HIST_BITS us (71.6 minutes) up go in the last
   slot. */
#define HAC_HIST_SUB_BITS 6
#define HAC_HIST_SUB (1 << HAC_HIST_SUB_BITS)    /* 64 */
#define HAC_HIST_HALF (HAC_HIST_SUB / 2)          /* 32 */
#define HAC_HIST_BITS 32
#define HAC_HIST_SLOTS (HAC_HIST_SUB + \
                        (HAC_HIST_BITS - HAC_HIST_SUB_BITS) * HAC_HIST_HALF)

#define HAC_HIST_ORIGINS 1024  /* per worker; later ones go to "other" */
#define HAC_HIST_HASH 256      /* buckets of a worker's origin lookup */
#define HAC_HIST_MIN_SAMPLES 20 /* hac_hist_quantile() below this: -1 */
#define HAC_HIST_OTHER "other" /* the origin of everything past the bound */
#define HAC_ORIGIN_MAX 300     /* longest origin key kept, NUL included */

struct hac_hist {
  atomic_uint_least64_t count;
  atomic_uint_least64_t sum;   /* us */
  atomic_uint_least64_t slot[HAC_HIST_SLOTS];
};

/* one origin of one worker; key and lnext never change once published */
struct hac_hent {
  struct hac_hent *hnext;      /* lookup chain (worker only) */
  struct hac_hent *lnext;      /* the published list, newest first */
  uint32_t hash;
  struct hac_hist h[HAC_H_COUNT];
  char key[];
};

struct hac_htab {
  _Atomic(struct hac_hent *) head; /* readers walk from here (acquire) */
  struct hac_hent *bucket[HAC_HIST_HASH];
  struct hac_hent *other;
  size_t n;                    /* origins, "other" excluded */
};

struct hac_worker;
struct hac_req;

/* the worker, at the end of a transfer libcurl completed */
void hac_hist_record(struct hac_worker *w, const struct hac_req *r);
/* this worker's quantile q (0..1] of origin's phase (HAC_H_*) in us, or -1
   with fewer than HAC_HIST_MIN_SAMPLES samples (worker thread only) */
int64_t hac_hist_quantile(struct hac_worker *w, const char *origin_key,
                          int phase, double q);
/* free a worker's histograms (client destroy, threads joined) */
void hac_hist_fini(struct hac_worker *w);

#endif /* HAC_HIST_H */
