/*
 * fuzz_common.h - what the harnesses share: a worker that exists only to
 * configure easy handles (no thread, no loop, no multi) and the client
 * configuration it reads.  Built with clang -fsanitize=fuzzer,address,
 * undefined against every csrc/ file (fuzz/build.sh).
 */
#ifndef HAC_FUZZ_COMMON_H
#define HAC_FUZZ_COMMON_H

#include "../csrc/internal.h"

#include <stdlib.h>
#include <string.h>

/* One client and one worker for the whole run, made on first use. */
static struct hac_client fuzz_client;
static struct hac_worker fuzz_worker;

static struct hac_worker *fuzz_worker_get(void)
{
  static int ready;
  int effective;
  if(ready)
    return &fuzz_worker;
  if(hac_global_init(HAC_MM_SYS, &effective))
    abort(); /* the harness cannot run at all: not the code under test */
  fuzz_client.cfg.workers = 1;
  fuzz_client.cfg.connection_timeout = 2000;
  fuzz_client.cfg.tls_verify_host = 2;
  fuzz_client.cfg.tls_verify_peer = 1;
  fuzz_client.cfg.max_redirects = 5;
  fuzz_client.cfg.authmethod = (long)CURLAUTH_BASIC;
  fuzz_client.cfg.max_body_size = 1 << 20;
  fuzz_client.cfg.max_connections = 16;
  fuzz_client.cfg.dns_cache_timeout = 60;
  fuzz_client.nworkers = 1;
  fuzz_client.workers = &fuzz_worker;
  fuzz_worker.c = &fuzz_client;
  if(hac_transport_init(&fuzz_worker))
    abort();
  ready = 1;
  return &fuzz_worker;
}

#endif /* HAC_FUZZ_COMMON_H */
