/*
 * proto.h - the C core's internal functions, file by file (internal.h
 * says who may call whom).  Included by internal.h after the structures;
 * never on its own.
 */
#ifndef HAC_PROTO_H
#define HAC_PROTO_H

/* ---- req.c ---- */
extern const char *const hac_method_names[HAC_M_OPTIONS + 1]; /* HAC_M_* */
struct hac_req *hac_req_parse(const char *blob, size_t len, size_t *used);
void hac_req_free(struct hac_req *r);
const char *hac_req_opt(const struct hac_req *r, int key);
long hac_req_opt_long(const struct hac_req *r, int key, long dflt);
const char *hac_req_opt_str(const struct hac_req *r, int key,
                            const char *dflt);

/* RFC 9110 9.2.2: of our methods, POST and PATCH are not idempotent */
static inline bool hac_req_idempotent(const struct hac_req *r)
{
  return r->method != HAC_M_POST && r->method != HAC_M_PATCH;
}

/* ---- queue.c ---- */
int hac_done_init(struct hac_client *c);
void hac_done_push(struct hac_client *c, struct hac_list *batch, size_t n);
void hac_done_close_fd(struct hac_client *c);
void hac_done_signal(struct hac_client *c);
void hac_done_clear(struct hac_client *c);
int hac_post(struct hac_client *c, uint64_t id, bool resume);
void hac_done_fini(struct hac_client *c);
void hac_log_add(struct hac_client *c, const char *text, size_t n);

/* ---- reqhash.c ---- */
int hac_table_init(struct hac_worker *w, size_t buckets);
void hac_table_add(struct hac_worker *w, struct hac_req *r);
void hac_table_del(struct hac_worker *w, struct hac_req *r);
struct hac_req *hac_table_find(struct hac_worker *w, uint64_t id);
struct hac_req *hac_table_next(struct hac_worker *w, size_t *cursor);
void hac_table_fini(struct hac_worker *w);

/* ---- conn.c ---- */
curl_socket_t hac_conn_open(void *clientp, curlsocktype purpose,
                            struct curl_sockaddr *a);
struct hac_conn *hac_conn_closing(struct hac_worker *w, curl_socket_t fd);
void hac_conn_watch(struct hac_worker *w, curl_socket_t fd, bool on);
uint32_t hac_conn_gen(struct hac_worker *w, curl_socket_t fd);
struct hac_conn *hac_conn_find(struct hac_worker *w, const char *ip,
                               long port, long lport);
curl_socket_t hac_conn_fd(struct hac_worker *w, const struct hac_conn *k);
void hac_conn_dead(struct hac_worker *w, const struct hac_req *r);
bool hac_conn_trusted(struct hac_worker *w, const char *ip, long port,
                      long lport);
void hac_conn_fini(struct hac_worker *w);

/* ---- mux.c ---- */
#define HAC_H2C_STREAMS 100    /* CURLMOPT_MAX_CONCURRENT_STREAMS we set */
/* hac_mux_gate(): what xfer.c does with the request */
#define HAC_GATE_GO 0          /* hand it to libcurl (hac_req.mux: how) */
#define HAC_GATE_WAIT 1        /* it is in its origin's queue: park it */
#define HAC_GATE_NOMEM 2       /* no memory for its origin: fail it */
int hac_mux_gate(struct hac_worker *w, struct hac_req *r, bool promoted);
struct hac_req *hac_mux_next(struct hac_worker *w, struct hac_origin **cur);
CURLcode hac_mux_version(struct hac_req *r);
bool hac_mux_prereq(struct hac_worker *w, struct hac_req *r, bool fresh,
                    const char *ip, long port, long lport);
void hac_mux_learn(struct hac_worker *w, struct hac_req *r, const char *line,
                   size_t len);
bool hac_mux_detach(struct hac_worker *w, struct hac_req *r);
int hac_mux_close_socket(void *clientp, curl_socket_t fd);
void hac_mux_fini(struct hac_worker *w);

/* ---- capture.c ---- */
size_t hac_on_header(char *data, size_t size, size_t n, void *userp);
size_t hac_on_body(char *data, size_t size, size_t n, void *userp);
int hac_on_debug(CURL *e, curl_infotype type, char *data, size_t size,
                 void *userp);
int hac_on_prereq(void *userp, char *ip, char *local_ip, int port,
                  int local_port);
void hac_result_done(struct hac_worker *w, struct hac_req *r, CURLcode rc);
void hac_result_fail(struct hac_worker *w, struct hac_req *r,
                     uint32_t rflags, const char *msg);

/* The response as captured: the last header block and the body (small,
   on every request: inline) */
static inline void hac_result_fill(struct hac_req *r)
{
  if(!r->in_body)
    r->res.body_off = r->buf.len;
  r->res.raw = r->buf.p ? r->buf.p : "";
  r->res.raw_len = r->buf.len;
}

/* libcurl's codes for a connection that closed or broke under a request */
static inline bool hac_conn_broke(CURLcode rc)
{
  switch(rc) {
  case CURLE_GOT_NOTHING:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return true;
  default:
    return false;
  }
}

void hac_result_count(struct hac_worker *w, const struct hac_req *r);

/* ---- retry.c, hedge.c, dest.c, limit.c ---- */
#define HAC_RETRY_NO 0
#define HAC_RETRY_YES 1
#define HAC_RETRY_LATE 2       /* it may, but the deadline leaves no time */
void hac_policy_load(struct hac_worker *w, struct hac_req *r);
int hac_retry_check(struct hac_worker *w, struct hac_req *r, CURLcode rc,
                    long status, double left_s, double now_s,
                    long *delay_ms);
long hac_hedge_delay(struct hac_worker *w, const struct hac_req *r);
bool hac_hedge_budget(struct hac_worker *w);
struct hac_req *hac_hedge_copy(struct hac_req *r);
#define HAC_DO_NONE 0          /* hac_dest_end() outcomes */
#define HAC_DO_OK 1
#define HAC_DO_FAIL 2
int hac_dest_pick(struct hac_worker *w, struct hac_req *r, char *why,
                  size_t cap);
void hac_dest_end(struct hac_worker *w, struct hac_req *r, int outcome,
                  int64_t us);
void hac_dest_fini(struct hac_client *c);
#define HAC_LIMIT_SHED -1.0    /* hac_limit_take() */
#define HAC_LIMIT_LATE -2.0
int hac_limit_init(struct hac_client *c);
void hac_limit_fini(struct hac_client *c);
double hac_limit_take(struct hac_worker *w, struct hac_req *r, double left_s,
                      double mqw_s, double *rps);

/* ---- files.c, output.c (HAC_F_FILES requests only) ---- */
CURLcode hac_files_setup(struct hac_worker *w, struct hac_req *r);
CURLcode hac_files_commit(struct hac_req *r);
void hac_files_end(struct hac_req *r);
void hac_files_free(struct hac_req *r);
bool hac_files_restartable(const struct hac_req *r);
const char *hac_files_error(const struct hac_req *r);
size_t hac_output_write(struct hac_req *r, const char *data, size_t len);
int hac_output_reset(struct hac_req *r);

/* ---- share.c ---- */
int hac_share_init(struct hac_worker *w);
void hac_share_fini(struct hac_worker *w);
CURLcode hac_share_attach(struct hac_worker *w, CURL *e);

/* ---- stream.c ---- */
void hac_stream_attach(struct hac_req *r);
void hac_stream_detach(struct hac_req *r);
void hac_stream_headers_done(struct hac_req *r);
size_t hac_stream_write(struct hac_req *r, const char *data, size_t len);
void hac_stream_end(struct hac_req *r);
void hac_stream_resume(struct hac_worker *w, uint64_t id);

/* ---- tls.c, transport.c ---- */
CURLcode hac_set_tls(struct hac_worker *w, struct hac_req *r,
                     const char *proxy);
int hac_transport_init(struct hac_worker *w);
void hac_transport_fini(struct hac_worker *w);
void hac_transport_put(struct hac_req *r);
long hac_connect_ms(struct hac_worker *w, const struct hac_req *r,
                    long run_ms);
const char *hac_proxy_of(struct hac_worker *w, const struct hac_req *r);
CURLcode hac_set_transport(struct hac_worker *w, struct hac_req *r,
                           const char *proxy);

/* ---- easy.c ---- */
CURLcode hac_easy_attach(struct hac_worker *w, struct hac_req *r);
void hac_easy_put(struct hac_worker *w, struct hac_req *r, bool keep);
void hac_pool_fini(struct hac_worker *w);

/* ---- xfer.c: the mechanics of a transfer ---- */
void hac_xfer_admit(struct hac_worker *w, struct hac_req *r);
void hac_xfer_promote(struct hac_worker *w);
void hac_xfer_enter(struct hac_worker *w, struct hac_req *r);
void hac_xfer_start(struct hac_worker *w, struct hac_req *r, bool promoted);
void hac_xfer_park(struct hac_worker *w, struct hac_req *r, double s,
                   uint8_t kind);
void hac_xfer_detach(struct hac_worker *w, struct hac_req *r);
void hac_xfer_reset(struct hac_worker *w, struct hac_req *r);

/* ---- end.c: how it ends ---- */
void hac_xfer_done(struct hac_worker *w, struct hac_req *r, CURLcode rc);
void hac_xfer_fail(struct hac_worker *w, struct hac_req *r, uint32_t rflags,
                   const char *msg);
void hac_xfer_hedge_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- sock.c ---- */
int hac_sock_on_socket(CURL *e, curl_socket_t s, int what, void *userp,
                       void *socketp);
void hac_sock_sweep(struct hac_worker *w);
void hac_sock_fini(struct hac_worker *w);

/* ---- worker.c ---- */
int hac_worker_start(struct hac_worker *w);
void hac_worker_flush(struct hac_worker *w);
void hac_worker_stop(struct hac_worker *w);
void hac_worker_release(struct hac_worker *w);
void hac_worker_fini(struct hac_worker *w);

/* ---- drive.c ---- */
int hac_drive_init(struct hac_worker *w);
void hac_drive_fini(struct hac_worker *w);
void hac_drive_leave(struct hac_worker *w);
int hac_drive_wait(struct hac_client *c, int timeout_ms);

#endif /* HAC_PROTO_H */
