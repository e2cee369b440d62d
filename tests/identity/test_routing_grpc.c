/* test_routing_grpc.c - end-to-end check of the TLS-routing path (docs/teleport-wire.md §3.4):
 *
 *   tpd_tlsdial_connect (ALPN teleport-auth@<hex>.teleport.cluster.local, h2)
 *     -> an in-test ALPN router acting like Teleport's Proxy: it reads the ClientHello without
 *        terminating TLS, takes the cluster from the first ALPN value, and copies raw bytes to
 *     -> the fake Teleport Auth Service (tests/lib/tpdtest/fake_teleport.py, grpcio, mTLS)
 *   and then a real gRPC unary call proto.AuthService/Ping over grpc_channel_create_from_fd with
 *   insecure credentials, as the Teleport client does on this path.
 *
 * Asserts: the router saw the teleport-auth@ ALPN first and decoded our cluster from it, the
 * end-to-end handshake negotiated h2 with the Auth server (as a real Auth server would: it only
 * speaks h2), the Ping answer carries the fake's cluster name, and closing the channel stops
 * the pump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "teleport_authservice.pb-c.h"
#include "tpd/err.h"
#include "tpd/identity.h"
#include "tpd/tlsdial.h"
#include "tpd/util.h"

#define CLUSTER "routing.example.com"

typedef struct {
	int lfd, port, upstream_port;
	pthread_t thr;
	char first_alpn[300], cluster[128];
	/* Set (release) after first_alpn and cluster are written: the main thread reads those only
	 * after seeing it (acquire). The TCP round trip orders them too, but TSan cannot see that. */
	atomic_bool forwarded;
} router;

/* Reads exactly n bytes (blocking) into b. */
static bool read_full(int fd, unsigned char *b, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

/* Finds the first ALPN protocol in a TLS ClientHello record (RFC 8446 §4.1.2, RFC 7301). */
static bool client_hello_alpn(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	size_t i = 4 + 2 + 32; /* handshake header, legacy_version, random */
	if (n < i + 1 || p[0] != 1)
		return false;
	i += 1 + p[i]; /* session id */
	if (i + 2 > n)
		return false;
	i += 2 + ((size_t)p[i] << 8 | p[i + 1]); /* cipher suites */
	if (i + 1 > n)
		return false;
	i += 1 + p[i]; /* compression methods */
	if (i + 2 > n)
		return false;
	size_t end = i + 2 + ((size_t)p[i] << 8 | p[i + 1]);
	i += 2;
	while (i + 4 <= end && end <= n) {
		unsigned type = (unsigned)p[i] << 8 | p[i + 1];
		size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
		i += 4;
		if (type == 16 && len >= 3 && i + 3 <= n) {
			size_t l = p[i + 2];
			if (i + 3 + l > n || l + 1 > outlen)
				return false;
			memcpy(out, p + i + 3, l);
			out[l] = '\0';
			return true;
		}
		i += len;
	}
	return false;
}

static void *router_main(void *arg)
{
	router *r = arg;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	unsigned char hdr[5], *rec = NULL, buf[16384];
	int c = -1, u = -1;
	struct pollfd p[2];
	size_t len;
	const char *suffix = ".teleport.cluster.local";

	p[0].fd = r->lfd;
	p[0].events = POLLIN;
	if (poll(p, 1, 20000) != 1 || (c = accept(r->lfd, NULL, NULL)) < 0)
		goto out;
	if (!read_full(c, hdr, 5) || hdr[0] != 22)
		goto out;
	len = (size_t)hdr[3] << 8 | hdr[4];
	rec = xmalloc(len);
	if (!read_full(c, rec, len) || !client_hello_alpn(rec, len, r->first_alpn, sizeof(r->first_alpn)))
		goto out;
	/* Teleport's router: prefix teleport-auth@, then DecodeClusterName(hex before the suffix). */
	if (tpd_str_startswith(r->first_alpn, "teleport-auth@") && tpd_str_endswith(r->first_alpn, suffix)) {
		const char *h = r->first_alpn + 14;
		size_t hl = strlen(h) - strlen(suffix);
		for (size_t k = 0; k + 2 <= hl && k / 2 < sizeof(r->cluster) - 1; k += 2) {
			unsigned v;
			if (sscanf(h + k, "%2x", &v) != 1)
				break;
			r->cluster[k / 2] = (char)v;
		}
	}
	if (strcmp(r->cluster, CLUSTER) != 0)
		goto out; /* unknown cluster: drop, as the proxy would */
	a.sin_port = htons((uint16_t)r->upstream_port);
	u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u < 0 || connect(u, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto out;
	if (send(u, hdr, 5, MSG_NOSIGNAL) != 5 || send(u, rec, len, MSG_NOSIGNAL) != (ssize_t)len)
		goto out;
	atomic_store(&r->forwarded, true);
	for (;;) {
		p[0].fd = c;
		p[1].fd = u;
		p[0].events = p[1].events = POLLIN;
		if (poll(p, 2, 30000) <= 0)
			break;
		int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
		ssize_t n = read(p[from].fd, buf, sizeof(buf));
		if (n <= 0 || send(p[1 - from].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	}
out:
	free(rec);
	if (c >= 0)
		close(c);
	if (u >= 0)
		close(u);
	return NULL;
}

static pid_t fake_pid;
static int fake_port;
static char pki[512];

static int setup(void **state)
{
	const char *bd = getenv("TPD_BUILD_DIR");
	char cmd[1200], line[2048] = "", *ap;
	int pfd[2];
	size_t got = 0;
	int64_t deadline;

	(void)state;
	snprintf(pki, sizeof(pki), "%s/routing-pki", bd && *bd ? bd : "/tmp");
	snprintf(cmd, sizeof(cmd), "tests/pki/gen.sh '%s' " CLUSTER " plugin-bot", pki);
	if (system(cmd) != 0 || pipe(pfd) != 0)
		return -1;
	fake_pid = fork();
	if (fake_pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl("/usr/bin/python3", "python3", "tests/lib/tpdtest/fake_teleport.py", "--port", "0",
		      "--pki-dir", pki, "--cluster", CLUSTER, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	deadline = tpd_now_ms() + 90000;
	while (!strchr(line, '\n') && got < sizeof(line) - 1) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int64_t left = deadline - tpd_now_ms();
		ssize_t n;
		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			break;
		n = read(pfd[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		line[got] = '\0';
	}
	close(pfd[0]);
	ap = strstr(line, "\"addr\": \"127.0.0.1:");
	if (!ap) {
		fprintf(stderr, "fake_teleport did not start: %s\n", line);
		return -1;
	}
	fake_port = atoi(ap + strlen("\"addr\": \"127.0.0.1:"));
	return fake_port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (fake_pid > 0) {
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
	}
	return 0;
}

/* One unary Ping over the channel; returns the cluster name (caller frees) or NULL. */
static char *ping(grpc_channel *ch, grpc_status_code *status)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(20, GPR_TIMESPAN));
	grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
	                                           grpc_slice_from_static_string("/proto.AuthService/Ping"),
	                                           NULL, dl, NULL);
	grpc_slice empty = grpc_empty_slice();
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&empty, 1), *recv = NULL;
	grpc_metadata_array md_init, md_trail;
	grpc_slice details;
	grpc_op ops[6];
	grpc_event ev;
	char *cluster = NULL;

	grpc_metadata_array_init(&md_init);
	grpc_metadata_array_init(&md_trail);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
	ops[5].data.recv_status_on_client.status = status;
	ops[5].data.recv_status_on_client.status_details = &details;
	assert_int_equal(grpc_call_start_batch(call, ops, 6, (void *)1, NULL), GRPC_CALL_OK);
	ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	assert_int_equal(ev.type, GRPC_OP_COMPLETE);
	if (*status == GRPC_STATUS_OK && recv) {
		grpc_byte_buffer_reader rd;
		grpc_slice s;
		Proto__PingResponse *pr;
		assert_true(grpc_byte_buffer_reader_init(&rd, recv));
		s = grpc_byte_buffer_reader_readall(&rd);
		pr = proto__ping_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
		if (pr) {
			cluster = xstrdup(pr->clustername);
			proto__ping_response__free_unpacked(pr, NULL);
		}
		grpc_slice_unref(s);
		grpc_byte_buffer_reader_destroy(&rd);
	} else {
		char *d = grpc_slice_to_c_string(details);
		print_message("Ping failed: status %d: %s\n", (int)*status, d);
		gpr_free(d);
	}
	grpc_slice_unref(details);
	grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_metadata_array_destroy(&md_init);
	grpc_metadata_array_destroy(&md_trail);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	return cluster;
}

static void test_ping_through_alpn_router(void **state)
{
	router r = {.upstream_port = fake_port};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	char err[TPD_ERRLEN] = "", *idp, *addr, *cluster;
	tpd_identity *id = NULL;
	tpd_tlsdial *t = NULL;
	int fd = -1;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;

	(void)state;
	idp = xasprintf("%s/identity", pki);
	assert_int_equal(tpd_identity_load_file(idp, &id, err), TPD_ERR_OK);
	assert_string_equal(tpd_identity_cluster_name(id), CLUSTER);
	r.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(r.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(r.lfd, 4), 0);
	assert_int_equal(getsockname(r.lfd, (struct sockaddr *)&a, &al), 0);
	r.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&r.thr, NULL, router_main, &r), 0);
	addr = xasprintf("127.0.0.1:%d", r.port);

	tpd_tlsdial_opts o = {.addr = addr, .id = id, .tls_routing = true, .timeout_ms = 20000};
	if (tpd_tlsdial_connect(&o, &t, &fd, err))
		fail_msg("%s", err);
	assert_true(atomic_load(&r.forwarded));
	assert_string_equal(r.first_alpn,
	                    "teleport-auth@726f7574696e672e6578616d706c652e636f6d.teleport.cluster.local");
	assert_string_equal(r.cluster, CLUSTER);
	/* The Auth server behind the router picks h2, the only protocol it speaks. */
	assert_string_equal(tpd_tlsdial_alpn(t), "h2");

	grpc_init();
	{
		grpc_arg arg = {.type = GRPC_ARG_STRING,
		                .key = (char *)GRPC_ARG_DEFAULT_AUTHORITY,
		                .value.string = (char *)TPD_TELEPORT_API_DOMAIN};
		grpc_channel_args args = {.num_args = 1, .args = &arg};
		grpc_channel_credentials *creds = grpc_insecure_credentials_create();
		grpc_channel *ch = grpc_channel_create_from_fd("tls-routing", fd, creds, &args);
		grpc_channel_credentials_release(creds);
		cluster = ping(ch, &status);
		assert_int_equal(status, GRPC_STATUS_OK);
		assert_non_null(cluster);
		assert_string_equal(cluster, CLUSTER);
		free(cluster);
		grpc_channel_destroy(ch);
	}
	grpc_shutdown_blocking();
	/* gRPC closed its end: the pump must have stopped; freeing closes the TCP connection, which
	 * ends the router's relay. */
	tpd_tlsdial_free(t);
	pthread_join(r.thr, NULL);
	close(r.lfd);
	tpd_identity_free(id);
	free(idp);
	free(addr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ping_through_alpn_router),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
