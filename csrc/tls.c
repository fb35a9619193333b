/*
 * tls.c - what a request trusts and shows: verification, TLS version,
 * client certificate, the trust store (a CA file, directory or PEM blob),
 * public-key pins, and the same trust for an HTTPS proxy.
 */
#include "internal.h"

#include <string.h>
#include <strings.h>

#define SET(opt, val) \
  do { rc = curl_easy_setopt(e, opt, val); if(rc) return rc; } while(0)

/*
 * Where the trust store comes from.  libcurl keeps a loaded store for the
 * next handshakes of the same multi handle (CURLOPT_CA_CACHE_TIMEOUT,
 * 7.87.0, OpenSSL) only when it comes from a CA file alone: a CA
 * directory (CURLOPT_CAPATH), a CA blob or a CRL file make every handshake
 * load it again.  Debian's libcurl is built with both a default file and a
 * default directory (/etc/ssl/certs, the same CAs), so left alone it parses
 * the whole system bundle for every new connection.  Hence:
 * - the caller names a file, a directory and/or a PEM blob: those alone
 *   are trusted (as Python's ssl does with cafile/capath/cadata), not the
 *   defaults as well;
 * - none: the default file alone, without the default directory.
 * A directory is read lazily by OpenSSL (one small file per issuer it
 * needs), so leaving it uncached costs little.  proxy: the same for the
 * HTTPS proxy's certificate (CURLOPT_PROXY_*).
 */
static CURLcode set_trust(struct hac_worker *w, struct hac_req *r, bool proxy)
{
  const hac_config *cfg = &w->c->cfg;
  CURL *e = r->easy;
  const char *file = hac_req_opt_str(r, HAC_O_CA_FILE, cfg->tls_ca_file);
  const char *dir = hac_req_opt_str(r, HAC_O_CA_PATH, cfg->tls_ca_path);
  const char *pem = hac_req_opt_str(r, HAC_O_CA_BLOB, cfg->tls_ca_blob);
  CURLcode rc = CURLE_OK;
  if(pem) {
    struct curl_blob blob;
    blob.data = (void *)pem;
    blob.len = strlen(pem);
    blob.flags = CURL_BLOB_COPY;
    SET(proxy ? CURLOPT_PROXY_CAINFO_BLOB : CURLOPT_CAINFO_BLOB, &blob);
  }
  if(file || dir || pem) {
    SET(proxy ? CURLOPT_PROXY_CAINFO : CURLOPT_CAINFO, file);
    rc = curl_easy_setopt(e, proxy ? CURLOPT_PROXY_CAPATH : CURLOPT_CAPATH,
                          dir);
    /* no CA directories in this TLS backend: nothing to turn off */
    if(rc == CURLE_NOT_BUILT_IN && !dir)
      rc = CURLE_OK;
  }
  else if(w->ca_default_file &&
          curl_easy_setopt(e, proxy ? CURLOPT_PROXY_CAPATH : CURLOPT_CAPATH,
                           NULL) == CURLE_OUT_OF_MEMORY)
    /* CURLE_NOT_BUILT_IN: a backend without CA directories has no default
       one either */
    rc = CURLE_OUT_OF_MEMORY;
#if LIBCURL_VERSION_NUM >= 0x075700
  /* the bound on how long a replaced CA file goes unnoticed; an older
     library or another TLS backend has no such cache */
  if(!rc && !proxy &&
     curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, cfg->tls_ca_cache))
    rc = CURLE_OK;
#endif
  return rc;
}

/* Verification, version, client certificate, pins, trust store; the
   proxy's verification and trust follow the server's when the proxy
   speaks TLS. */
CURLcode hac_set_tls(struct hac_worker *w, struct hac_req *r,
                     const char *proxy)
{
  const hac_config *cfg = &w->c->cfg;
  CURL *e = r->easy;
  const char *s;
  long host = hac_req_opt_long(r, HAC_O_VERIFY_HOST, cfg->tls_verify_host) ?
    2L : 0L;
  long peer = hac_req_opt_long(r, HAC_O_VERIFY_PEER, cfg->tls_verify_peer) ?
    1L : 0L;
  CURLcode rc;
  SET(CURLOPT_SSL_VERIFYHOST, host);
  SET(CURLOPT_SSL_VERIFYPEER, peer);
  SET(CURLOPT_SSLVERSION,
      hac_req_opt_long(r, HAC_O_TLS_VERSION, cfg->tls_version));
  s = hac_req_opt_str(r, HAC_O_CLIENT_CERT, cfg->tls_client_cert);
  if(s)
    SET(CURLOPT_SSLCERT, s);
  s = hac_req_opt_str(r, HAC_O_CLIENT_KEY, cfg->tls_client_key);
  if(s)
    SET(CURLOPT_SSLKEY, s);
  s = hac_req_opt_str(r, HAC_O_PINNED_PUBKEY, cfg->tls_pinned_pubkey);
  if(s)
    SET(CURLOPT_PINNEDPUBLICKEY, s);
  if(proxy && !strncasecmp(proxy, "https:", 6)) {
    SET(CURLOPT_PROXY_SSL_VERIFYHOST, host);
    SET(CURLOPT_PROXY_SSL_VERIFYPEER, peer);
    rc = set_trust(w, r, true);
    if(rc)
      return rc;
  }
  return set_trust(w, r, false);
}
#undef SET
