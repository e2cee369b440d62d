/* teleport_call.c - one gRPC call on a Teleport channel: a unary call, or a server stream with a
 * message handler and an optional tick, each on its own completion queue, with metrics and
 * status mapping. See teleport_impl.h. */
#include "teleport_impl.h"

/* --- calls --------------------------------------------------------------------------------- */

static gpr_timespec deadline_in(int64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_byte_buffer *to_bb(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(n);
	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* Reads a byte buffer into a malloc'ed array (the caller frees). */
static uint8_t *from_bb(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, bb)) {
		*len = 0;
		return NULL;
	}
	grpc_slice all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	*len = GRPC_SLICE_LENGTH(all);
	uint8_t *p = xmalloc(*len ? *len : 1);
	memcpy(p, GRPC_SLICE_START_PTR(all), *len);
	grpc_slice_unref(all);
	return p;
}

/* Copies a status detail text, bounded and with control characters replaced. */
static void details_copy(grpc_slice s, char *dst, size_t cap)
{
	size_t n = GRPC_SLICE_LENGTH(s);
	if (n >= cap)
		n = cap - 1;
	const uint8_t *p = GRPC_SLICE_START_PTR(s);
	for (size_t i = 0; i < n; i++)
		dst[i] = (p[i] < 0x20 || p[i] == 0x7f) ? ' ' : (char)p[i];
	dst[n] = '\0';
}

static void observe(tpd_teleport *t, const char *method, int code, int64_t start_ms)
{
	tpd_metric_inc(t->m_req, method, tpd_teleport_code_name(code));
	tpd_metric_observe(t->m_dur, (double)(tpd_now_ms() - start_ms) / 1000.0, method);
}

static tpd_err status_error(const char *method, int code, const char *details, char *err)
{
	tpd_err e = tpd_teleport_status_err(code, details);
	return tpd_seterr(err, e, "Teleport %s: %s: %s", method, tpd_teleport_code_name(code),
	                  tpd_str_empty(details) ? "(no details)" : details);
}

static void cq_drain_destroy(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
}

/* A completion queue for a unary call: an idle one if there is one. */
static grpc_completion_queue *cq_take(tpd_teleport *t)
{
	grpc_completion_queue *cq = NULL;

	pthread_mutex_lock(&t->mu);
	if (t->n_cq_idle > 0)
		cq = t->cq_idle[--t->n_cq_idle];
	pthread_mutex_unlock(&t->mu);
	return cq ? cq : grpc_completion_queue_create_for_next(NULL);
}

/* Gives back the queue of a finished unary call (its one batch completed and was taken, so
 * nothing is left on it). */
static void cq_give(tpd_teleport *t, grpc_completion_queue *cq)
{
	pthread_mutex_lock(&t->mu);
	if (t->n_cq_idle < CQ_IDLE_MAX) {
		t->cq_idle[t->n_cq_idle++] = cq;
		cq = NULL;
	}
	pthread_mutex_unlock(&t->mu);
	if (cq)
		cq_drain_destroy(cq);
}

void tp_cq_idle_free(tpd_teleport *t)
{
	while (t->n_cq_idle > 0)
		cq_drain_destroy(t->cq_idle[--t->n_cq_idle]);
}

/* One call's gRPC resources, from call_open to call_close. */
typedef struct {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *send, *recv;
	grpc_metadata_array md_init, md_trail;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
} call_state;

/* The four ops that open a call: metadata, the one request message, half-close, the server's
 * initial metadata (ops zeroed by the caller). */
static void start_ops(call_state *cs, grpc_op *ops)
{
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = cs->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &cs->md_init;
}

/* The op that receives the call's status and trailing metadata (op zeroed by the caller). */
static void status_op(call_state *cs, grpc_op *op)
{
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &cs->md_trail;
	op->data.recv_status_on_client.status = &cs->status;
	op->data.recv_status_on_client.status_details = &cs->details;
	op->data.recv_status_on_client.error_string = &cs->error_string;
}

/* Creates a call to method: a unary one (t set) on an idle completion queue of t, a stream (t
 * NULL) on a queue of its own and, for the watch, on the channel's watch channel when it has one.
 * cs takes send. */
static void call_open(call_state *cs, tpd_teleport *t, chan *c, bool watch, const char *method,
                      gpr_timespec deadline, grpc_byte_buffer *send)
{
	memset(cs, 0, sizeof(*cs));
	cs->cq = t ? cq_take(t) : grpc_completion_queue_create_for_next(NULL);
	char path[96];
	snprintf(path, sizeof(path), METHOD_PREFIX "%s", method);
	grpc_slice pslice = grpc_slice_from_copied_string(path);
	cs->call = grpc_channel_create_call(watch && c->wch ? c->wch : c->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
	                                    cs->cq, pslice, NULL, deadline, NULL);
	grpc_slice_unref(pslice);
	cs->send = send;
	grpc_metadata_array_init(&cs->md_init);
	grpc_metadata_array_init(&cs->md_trail);
	cs->status = GRPC_STATUS_UNKNOWN;
	cs->details = grpc_empty_slice();
}

/* Frees everything call_open and the call's batches left in cs; t as given to call_open. */
static void call_close(call_state *cs, tpd_teleport *t)
{
	if (cs->recv)
		grpc_byte_buffer_destroy(cs->recv);
	grpc_byte_buffer_destroy(cs->send);
	grpc_slice_unref(cs->details);
	if (cs->error_string)
		gpr_free((void *)cs->error_string);
	grpc_metadata_array_destroy(&cs->md_init);
	grpc_metadata_array_destroy(&cs->md_trail);
	grpc_call_unref(cs->call);
	if (t)
		cq_give(t, cs->cq);
	else
		cq_drain_destroy(cs->cq);
}

/* One unary call with a serialised request. On success resp and resp_len hold the response bytes
 * (caller frees). */
tpd_err tp_unary_raw(tpd_teleport *t, const char *method, const uint8_t *req, size_t req_len, uint8_t **resp,
                     size_t *resp_len, char *err)
{
	int64_t start = tpd_now_ms();
	chan *c = NULL;
	tpd_err rc = tp_chan_get(t, &c, err);
	if (rc) {
		observe(t, method, GRPC_STATUS_UNAVAILABLE, start);
		return rc;
	}
	grpc_slice rs = grpc_slice_from_copied_buffer((const char *)req, req_len);
	call_state cs;
	call_open(&cs, t, c, false, method, deadline_in(t->call_timeout_ms),
	          grpc_raw_byte_buffer_create(&rs, 1));
	grpc_slice_unref(rs);

	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	start_ops(&cs, ops);
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &cs.recv;
	status_op(&cs, &ops[5]);

	grpc_call_error ce = grpc_call_start_batch(cs.call, ops, 6, (void *)1, NULL);
	if (ce != GRPC_CALL_OK) {
		rc =
		    tpd_seterr(err, TPD_ERR_INTERNAL, "Teleport %s: cannot start call (%d)", method, (int)ce);
		cs.status = GRPC_STATUS_INTERNAL;
		goto out;
	}
	/* The call's deadline bounds this wait; the batch always completes. */
	grpc_event ev = grpc_completion_queue_next(cs.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	(void)ev;
	char dtext[400];
	details_copy(cs.details, dtext, sizeof(dtext));
	if (cs.status != GRPC_STATUS_OK) {
		rc = status_error(method, cs.status, dtext, err);
		if (cs.error_string)
			tpd_log(t->log, TPD_LOG_DEBUG, "Teleport call failed", "method", method, "grpc_code",
			        tpd_teleport_code_name(cs.status), "error", cs.error_string, NULL);
		goto out;
	}
	if (!cs.recv) {
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "Teleport %s: OK status without a response message",
		                method);
		goto out;
	}
	*resp = from_bb(cs.recv, resp_len);
	if (!*resp)
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "Teleport %s: unreadable response message", method);
out:
	observe(t, method, cs.status, start);
	call_close(&cs, t);
	tp_chan_release(t, c);
	return rc;
}

/* One unary call with a protobuf-c request message. */
tpd_err tp_unary(tpd_teleport *t, const char *method, const ProtobufCMessage *req, uint8_t **resp,
                 size_t *resp_len, char *err)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *b = xmalloc(n ? n : 1);
	protobuf_c_message_pack(req, b);
	tpd_err rc = tp_unary_raw(t, method, b, n, resp, resp_len, err);
	free(b);
	return rc;
}

/* Server-stream message handler: returns 0 to continue, 1 to stop cleanly, -1 to stop with *rc. */
tpd_err tp_server_stream(tpd_teleport *t, const char *method, const ProtobufCMessage *req,
                         const stream_spec *sp, char *err)
{
	bool local_end = false; /* we ended it: rc/err already set */
	int64_t start = tpd_now_ms();
	chan *c = NULL;
	tpd_err rc = tp_chan_get(t, &c, err);
	if (rc) {
		observe(t, method, GRPC_STATUS_UNAVAILABLE, start);
		return rc;
	}
	gpr_timespec dl =
	    sp->timeout_ms > 0 ? deadline_in(sp->timeout_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC);
	call_state cs;
	call_open(&cs, NULL, c, sp->watch, method, dl, to_bb(req));
	int pending = 0;
	bool got_status = false;

	if (sp->watch) {
		pthread_mutex_lock(&t->wmu);
		if (t->wactive) {
			pthread_mutex_unlock(&t->wmu);
			rc = tpd_seterr(err, TPD_ERR_INVAL,
			                "a Teleport watch is already running on this client");
			local_end = true;
			grpc_call_cancel(cs.call, NULL);
			goto out;
		}
		t->wactive = true;
		t->wcall = cs.call;
		t->wreason = t->wstop ? WATCH_STOP : WATCH_RUN;
		if (t->wstop)
			grpc_call_cancel(cs.call, NULL);
		pthread_mutex_unlock(&t->wmu);
	}

	grpc_op sops[4];
	memset(sops, 0, sizeof(sops));
	start_ops(&cs, sops);
	grpc_op st_op;
	memset(&st_op, 0, sizeof(st_op));
	status_op(&cs, &st_op);
	grpc_op rd_op;
	memset(&rd_op, 0, sizeof(rd_op));
	rd_op.op = GRPC_OP_RECV_MESSAGE;
	rd_op.data.recv_message.recv_message = &cs.recv;

	if (grpc_call_start_batch(cs.call, sops, 4, (void *)1, NULL) == GRPC_CALL_OK)
		pending++;
	if (grpc_call_start_batch(cs.call, &st_op, 1, (void *)2, NULL) == GRPC_CALL_OK)
		pending++;
	if (grpc_call_start_batch(cs.call, &rd_op, 1, (void *)3, NULL) == GRPC_CALL_OK)
		pending++;
	if (pending != 3) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "Teleport %s: cannot start stream", method);
		local_end = true;
		grpc_call_cancel(cs.call, NULL);
	}

	bool ticking = sp->on_tick != NULL;
	while (pending > 0) {
		grpc_event ev = grpc_completion_queue_next(
		    cs.cq, ticking ? deadline_in(200) : gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			int r = !local_end && !got_status && ticking ? sp->on_tick(sp->ud, &rc, err) : 0;
			if (r > 0) {
				local_end = true;
				grpc_call_cancel(cs.call, NULL);
			} else if (r < 0) {
				ticking = false;
			}
			continue;
		}
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		pending--;
		if (ev.tag == (void *)2) {
			got_status = true;
		} else if (ev.tag == (void *)3) {
			if (!ev.success || !cs.recv)
				continue; /* stream over; the status follows */
			size_t n;
			uint8_t *b = from_bb(cs.recv, &n);
			grpc_byte_buffer_destroy(cs.recv);
			cs.recv = NULL;
			int r = local_end
			            ? 1
			            : sp->on_msg(sp->ud, b ? b : (const uint8_t *)"", b ? n : 0, &rc, err);
			free(b);
			if (r != 0 && !local_end) {
				local_end = true;
				if (r > 0) {
					rc = TPD_ERR_OK;
					if (err)
						err[0] = '\0';
				}
				grpc_call_cancel(cs.call, NULL);
			}
			if (!local_end &&
			    grpc_call_start_batch(cs.call, &rd_op, 1, (void *)3, NULL) == GRPC_CALL_OK)
				pending++;
		}
	}

	if (sp->watch) {
		pthread_mutex_lock(&t->wmu);
		int why = t->wreason;
		t->wcall = NULL;
		t->wactive = false;
		pthread_mutex_unlock(&t->wmu);
		if (!local_end && why == WATCH_STOP) {
			local_end = true;
			rc = tpd_seterr(err, TPD_ERR_CANCELLED, "Teleport watch stopped");
		} else if (!local_end && why == WATCH_RECONNECT) {
			local_end = true;
			rc = tpd_seterr(err, TPD_ERR_UNAVAILABLE,
			                "Teleport watch restarted on request (reconnecting)");
		}
	}
	if (!local_end) {
		char dtext[400];
		details_copy(cs.details, dtext, sizeof(dtext));
		if (cs.status != GRPC_STATUS_OK) {
			rc = status_error(method, cs.status, dtext, err);
			if (cs.error_string)
				tpd_log(t->log, TPD_LOG_DEBUG, "Teleport stream failed", "method", method,
				        "grpc_code", tpd_teleport_code_name(cs.status), "error",
				        cs.error_string, NULL);
		} else if (sp->watch) {
			/* A watch never ends by itself: EOF is a broken stream (upstream reconnects). */
			rc = tpd_seterr(err, TPD_ERR_UNAVAILABLE,
			                "Teleport watch stream closed by the server");
		}
	}
out:
	observe(t, method, local_end && rc == TPD_ERR_OK ? GRPC_STATUS_OK : (int)cs.status, start);
	call_close(&cs, NULL);
	tp_chan_release(t, c);
	return rc;
}
