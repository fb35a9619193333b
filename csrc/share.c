/*
 * share.c - what a worker's handles share for TLS: the SSL session cache
 * (a CURLSH, on a libcurl whose multi handle does not keep one itself) and
 * what the library's build says about its default trust store.
 */
#include "internal.h"

/* libcurl 8.12.0 moved the SSL session cache from each easy handle to the
   multi handle: every handle of a worker already resumes the sessions of
   the others */
#define HAC_MULTI_SCACHE 0x080c00

/*
 * Before 8.12 each easy handle kept its own five sessions, so a pooled
 * handle that never talked to a host made a full handshake with it.  One
 * CURLSH per worker shares them; only the worker's thread touches its
 * handles, so the share needs no lock callbacks.  DNS is not shared here:
 * the multi handle's DNS cache already serves all of its handles.
 * 0, or -1 when out of memory.
 */
int hac_share_init(struct hac_worker *w)
{
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  /* a default CA file: without our own CA source we use it alone (see
     easy.c), the only way libcurl caches a loaded trust store */
  w->ca_default_file = v->cainfo && *v->cainfo;
  w->share = NULL;
  if(v->version_num >= HAC_MULTI_SCACHE)
    return 0;
  w->share = curl_share_init();
  if(!w->share)
    return -1;
  if(curl_share_setopt(w->share, CURLSHOPT_SHARE,
                       CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
    curl_share_cleanup(w->share);
    w->share = NULL;
    return -1;
  }
  return 0;
}

/* After every easy handle of the worker is cleaned up. */
void hac_share_fini(struct hac_worker *w)
{
  if(w->share)
    curl_share_cleanup(w->share);
  w->share = NULL;
}

/* A new handle joins the worker's share (curl_easy_reset() keeps it). */
CURLcode hac_share_attach(struct hac_worker *w, CURL *e)
{
  if(!w->share)
    return CURLE_OK;
  return curl_easy_setopt(e, CURLOPT_SHARE, w->share);
}
