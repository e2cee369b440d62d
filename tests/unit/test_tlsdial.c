/* Unit tests for tlsdial.c against an in-test OpenSSL TLS server on 127.0.0.1 that requires the
 * client certificate, records the offered ALPN list, SNI and client CN, selects a protocol the
 * way a TLS-routing Proxy (teleport-auth@...), an Auth server (h2) or a stranger (none) would,
 * and echoes. Covers both pump directions with 1 MiB, the reported ALPN, cluster SNI, a server
 * certificate from a foreign CA, no ALPN, server close, free while the gRPC end is open,
 * handshake timeout, connection refused, and the pure address/path helpers. */
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
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tpd/err.h"
#include "tpd/identity.h"
#include "tpd/tlsdial.h"
#include "tpd/util.h"

#define CLUSTER "idtest.example.com"
/* hex("idtest.example.com") */
#define CLUSTER_HEX "6964746573742e6578616d706c652e636f6d"
#define AUTH_ALPN   "teleport-auth@" CLUSTER_HEX ".teleport.cluster.local"

static char pki[512];
static tpd_identity *ident;

typedef enum { SRV_PICK_AUTH, SRV_PICK_H2, SRV_PICK_NONE, SRV_CLOSE } srv_mode;

typedef struct {
	srv_mode mode;
	const char *crt, *key;
	int lfd, port;
	pthread_t thr;
	SSL_CTX *ctx;
	char offered[600], sni[300], client_cn[128];
	bool handshake_ok;
	bool got_close_notify;
} server;

static char *pkipath(const char *name)
{
	return xasprintf("%s/%s", pki, name);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
	server *s = arg;
	const unsigned char *h2 = NULL, *auth = NULL;
	size_t off = 0;

	(void)ssl;
	for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
		unsigned l = in[i];
		off += (size_t)snprintf(s->offered + off, sizeof(s->offered) - off, "%s%.*s", off ? "," : "",
		                        (int)l, (const char *)in + i + 1);
		if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0)
			h2 = in + i;
		if (l > 14 && memcmp(in + i + 1, "teleport-auth@", 14) == 0 && !auth)
			auth = in + i;
	}
	if (s->mode == SRV_PICK_NONE)
		return SSL_TLSEXT_ERR_NOACK;
	if (s->mode == SRV_PICK_AUTH && auth) {
		*out = auth + 1;
		*outlen = auth[0];
		return SSL_TLSEXT_ERR_OK;
	}
	if (h2) {
		*out = h2 + 1;
		*outlen = 2;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static void *server_main(void *arg)
{
	server *s = arg;
	struct pollfd p = {.fd = s->lfd, .events = POLLIN};
	SSL *ssl = NULL;
	int c = -1;
	char buf[16384];
	sigset_t set;

	/* The server may write to a client that already gave up (that is the client's right);
	 * SIGPIPE stays deliverable in the test's own threads, so the client code is still checked. */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (poll(&p, 1, 10000) != 1)
		return NULL;
	c = accept(s->lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, c);
	if (SSL_accept(ssl) == 1) {
		X509 *peer = SSL_get0_peer_certificate(ssl);
		const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		s->handshake_ok = true;
		snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
		if (peer)
			X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, s->client_cn,
			                          sizeof(s->client_cn));
		if (s->mode != SRV_CLOSE) {
			for (;;) {
				int n = SSL_read(ssl, buf, sizeof(buf));
				if (n <= 0) {
					s->got_close_notify = SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN;
					break;
				}
				if (SSL_write(ssl, buf, n) != n)
					break;
			}
		}
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(c);
	ERR_clear_error();
	return NULL;
}

static server *server_start(srv_mode mode, const char *crt, const char *key)
{
	server *s = tpd_new(server);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	char *c = pkipath(crt), *k = pkipath(key), *ca = pkipath("ca.crt");

	s->mode = mode;
	s->ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate_file(s->ctx, c, SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, k, SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_load_verify_locations(s->ctx, ca, NULL), 1);
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_alpn_select_cb(s->ctx, alpn_select, s);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thr, NULL, server_main, s), 0);
	free(c);
	free(k);
	free(ca);
	return s;
}

static void server_stop(server *s)
{
	pthread_join(s->thr, NULL);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
	free(s);
}

static char *addr_of(int port)
{
	return xasprintf("127.0.0.1:%d", port);
}

/* Sends len bytes through fd and reads the echo back, both at once, with a deadline. */
static void echo_roundtrip(int fd, size_t len)
{
	unsigned char *out = xmalloc(len), *in = xmalloc(len);
	size_t sent = 0, got = 0;
	int64_t deadline = tpd_now_ms() + 20000;

	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)(i * 131 + (i >> 9));
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	while (got < len) {
		struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (sent < len ? POLLOUT : 0))};
		int64_t left = deadline - tpd_now_ms();
		assert_true(left > 0);
		assert_true(poll(&p, 1, (int)left) >= 0);
		if (sent < len && (p.revents & POLLOUT)) {
			ssize_t n = write(fd, out + sent, len - sent);
			if (n > 0)
				sent += (size_t)n;
		}
		if (p.revents & POLLIN) {
			ssize_t n = read(fd, in + got, len - got);
			assert_true(n > 0 || (n < 0 && errno == EAGAIN));
			if (n > 0)
				got += (size_t)n;
		}
	}
	assert_memory_equal(in, out, len);
	free(out);
	free(in);
}

/* Waits for EOF on the gRPC end (what gRPC sees when the pump stops). */
static void wait_eof(int fd)
{
	char b[256];
	int64_t deadline = tpd_now_ms() + 10000;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - tpd_now_ms();
		assert_true(left > 0);
		if (poll(&p, 1, (int)left) == 1) {
			ssize_t n = read(fd, b, sizeof(b));
			if (n == 0 || (n < 0 && errno != EAGAIN))
				return;
		}
	}
}

static int setup(void **state)
{
	const char *bd = getenv("TPD_BUILD_DIR");
	char cmd[1200], err[TPD_ERRLEN], *idp;

	(void)state;
	if (bd && *bd)
		snprintf(pki, sizeof(pki), "%s/tlsdial-pki", bd);
	else
		snprintf(pki, sizeof(pki), "/tmp/tpd-tlsdial-pki-%d", (int)getuid());
	snprintf(cmd, sizeof(cmd), "tests/pki/gen.sh '%s' " CLUSTER " plugin-bot", pki);
	if (system(cmd) != 0)
		return -1;
	/* A server certificate from the right CA but for another name (hostname check). */
	snprintf(
	    cmd, sizeof(cmd),
	    "cd '%s' && { [ -f wrongname.crt ] || { "
	    "printf 'subjectAltName=DNS:wrong.example\\nextendedKeyUsage=serverAuth\\n' >wrongname.ext && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout wrongname.key "
	    "-out wrongname.csr -subj /CN=wrong.example 2>/dev/null && "
	    "openssl x509 -req -in wrongname.csr -CA ca.crt -CAkey ca.key -set_serial 4242 -days 3650 "
	    "-extfile wrongname.ext -out wrongname.crt 2>/dev/null; }; }",
	    pki);
	if (system(cmd) != 0)
		return -1;
	idp = pkipath("identity");
	if (tpd_identity_load_file(idp, &ident, err)) {
		fprintf(stderr, "%s\n", err);
		free(idp);
		return -1;
	}
	free(idp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tpd_identity_free(ident);
	return 0;
}

static void test_routing_alpn_sni_and_pump(void **state)
{
	server *s = server_start(SRV_PICK_AUTH, "server.crt", "server.key");
	char *addr = addr_of(s->port), err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.addr = addr, .id = ident, .tls_routing = true, .timeout_ms = 10000};
	tpd_tlsdial *t = NULL;
	int fd = -1;

	(void)state;
	if (tpd_tlsdial_connect(&o, &t, &fd, err))
		fail_msg("%s", err);
	assert_true(fd >= 0);
	assert_string_equal(tpd_tlsdial_alpn(t), AUTH_ALPN);
	assert_true(tpd_tlsdial_alive(t));
	assert_true(tpd_str_startswith(tpd_tlsdial_tls_version(t), "TLSv1."));
	echo_roundtrip(fd, 5);
	echo_roundtrip(fd, 1 << 20);
	/* gRPC closes its end: the pump sends close_notify and stops. */
	close(fd);
	server_stop(s);
	assert_false(tpd_tlsdial_alive(t)); /* set before close_notify went out */
	tpd_tlsdial_free(t);
	free(addr);
}

static void check_offer(srv_mode mode, bool routing, bool cluster_sni, const char *cluster,
                        const char *want_offer, const char *want_sni, const char *want_alpn)
{
	server *s = server_start(mode, "server.crt", "server.key");
	char *addr = addr_of(s->port), err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.addr = addr,
	                      .id = ident,
	                      .tls_routing = routing,
	                      .cluster_sni = cluster_sni,
	                      .cluster_name = cluster};
	tpd_tlsdial *t = NULL;
	int fd = -1;

	if (tpd_tlsdial_connect(&o, &t, &fd, err))
		fail_msg("%s", err);
	assert_string_equal(tpd_tlsdial_alpn(t), want_alpn);
	echo_roundtrip(fd, 1000);
	close(fd);
	pthread_join(s->thr, NULL);
	assert_true(s->handshake_ok);
	assert_true(s->got_close_notify);
	assert_string_equal(s->offered, want_offer);
	assert_string_equal(s->sni, want_sni);
	assert_string_equal(s->client_cn, "plugin-bot");
	close(s->lfd);
	SSL_CTX_free(s->ctx);
	free(s);
	tpd_tlsdial_free(t);
	free(addr);
}

static void test_offers(void **state)
{
	(void)state;
	/* TLS routing: teleport-auth@ first, then h2; plain SNI like the Go client. */
	check_offer(SRV_PICK_AUTH, true, false, NULL, AUTH_ALPN ",h2", "teleport.cluster.local", AUTH_ALPN);
	/* An Auth server (or a proxy that answers h2) on the routing path. */
	check_offer(SRV_PICK_H2, true, false, NULL, AUTH_ALPN ",h2", "teleport.cluster.local", "h2");
	/* Direct: h2 only. */
	check_offer(SRV_PICK_AUTH, false, false, NULL, "h2", "teleport.cluster.local", "h2");
	/* Cluster SNI and a configured cluster name overriding the identity's. */
	check_offer(SRV_PICK_AUTH, true, true, "other", "teleport-auth@6f74686572.teleport.cluster.local,h2",
	            "6f74686572.teleport.cluster.local", "teleport-auth@6f74686572.teleport.cluster.local");
}

static void test_no_alpn_rejected(void **state)
{
	server *s = server_start(SRV_PICK_NONE, "server.crt", "server.key");
	char *addr = addr_of(s->port), err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.addr = addr, .id = ident, .tls_routing = true};
	tpd_tlsdial *t = (tpd_tlsdial *)0x1;
	int fd = 7;

	(void)state;
	assert_int_equal(tpd_tlsdial_connect(&o, &t, &fd, err), TPD_ERR_PROTOCOL);
	assert_null(t);
	assert_int_equal(fd, -1);
	print_message("%s\n", err);
	assert_non_null(strstr(err, "negotiated no application protocol"));
	assert_non_null(strstr(err, "TLS routing"));
	server_stop(s);
	free(addr);
}

static void test_wrong_ca_rejected(void **state)
{
	/* evil.crt is issued by a CA the identity does not trust. */
	server *s = server_start(SRV_PICK_AUTH, "evil.crt", "evil.key");
	char *addr = addr_of(s->port), err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.addr = addr, .id = ident, .tls_routing = true};
	tpd_tlsdial *t = NULL;
	int fd = -1;

	(void)state;
	assert_int_equal(tpd_tlsdial_connect(&o, &t, &fd, err), TPD_ERR_PROTOCOL);
	assert_null(t);
	print_message("%s\n", err);
	assert_non_null(strstr(err, "server certificate not trusted"));
	assert_non_null(strstr(err, addr));
	server_stop(s);
	free(addr);
}

static void test_wrong_name_rejected(void **state)
{
	/* Issued by the trusted CA, but not for teleport.cluster.local. */
	server *s = server_start(SRV_PICK_AUTH, "wrongname.crt", "wrongname.key");
	char *addr = addr_of(s->port), err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.addr = addr, .id = ident, .tls_routing = true};
	tpd_tlsdial *t = NULL;
	int fd = -1;

	(void)state;
	assert_int_equal(tpd_tlsdial_connect(&o, &t, &fd, err), TPD_ERR_PROTOCOL);
	print_message("%s\n", err);
	assert_non_null(strstr(err, "hostname mismatch"));
	server_stop(s);
	free(addr);
}

static void test_server_close_and_free_with_grpc_open(void **state)
{
	server *s = server_start(SRV_CLOSE, "server.crt", "server.key");
	char *addr = addr_of(s->port), err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.addr = addr, .id = ident, .tls_routing = true};
	tpd_tlsdial *t = NULL;
	int fd = -1;

	(void)state;
	if (tpd_tlsdial_connect(&o, &t, &fd, err))
		fail_msg("%s", err);
	wait_eof(fd);
	assert_false(tpd_tlsdial_alive(t));
	tpd_tlsdial_free(t);
	close(fd);
	server_stop(s);

	/* Free while the gRPC end is still open and the TLS side is healthy. */
	s = server_start(SRV_PICK_AUTH, "server.crt", "server.key");
	free(addr);
	addr = addr_of(s->port);
	o.addr = addr;
	if (tpd_tlsdial_connect(&o, &t, &fd, err))
		fail_msg("%s", err);
	echo_roundtrip(fd, 100);
	tpd_tlsdial_free(t);
	wait_eof(fd);
	close(fd);
	server_stop(s);
	free(addr);
}

static void test_timeout_and_refused(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd = -1;
	char *addr, err[TPD_ERRLEN] = "";
	tpd_tlsdial_opts o = {.id = ident, .tls_routing = true, .timeout_ms = 300};
	tpd_tlsdial *t = NULL;
	int64_t t0;

	(void)state;
	/* A listener that never speaks TLS: the kernel completes the TCP handshake, TLS hangs. */
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	addr = addr_of(ntohs(a.sin_port));
	o.addr = addr;
	t0 = tpd_now_ms();
	assert_int_equal(tpd_tlsdial_connect(&o, &t, &fd, err), TPD_ERR_TIMEOUT);
	assert_true(tpd_now_ms() - t0 < 5000);
	assert_non_null(strstr(err, "timed out"));
	close(lfd); /* now nothing listens on that port */
	assert_int_equal(tpd_tlsdial_connect(&o, &t, &fd, err), TPD_ERR_UNAVAILABLE);
	assert_non_null(strstr(err, "refused"));
	o.addr = "127.0.0.1";
	assert_int_equal(tpd_tlsdial_connect(&o, &t, &fd, err), TPD_ERR_INVAL);
	assert_non_null(strstr(err, "has no port"));
	free(addr);
}

static void test_pure_helpers(void **state)
{
	char *s, *host = NULL, err[TPD_ERRLEN];
	int port = 0;
	char big[200];

	(void)state;
	s = tpd_tlsdial_auth_alpn("example.com");
	assert_string_equal(s, "teleport-auth@6578616d706c652e636f6d.teleport.cluster.local");
	free(s);
	s = tpd_tlsdial_cluster_sni(CLUSTER);
	assert_string_equal(s, CLUSTER_HEX ".teleport.cluster.local");
	free(s);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_null(tpd_tlsdial_auth_alpn(big));
	assert_null(tpd_tlsdial_auth_alpn(""));

	assert_int_equal(tpd_tlsdial_split_addr("[::1]:3025", &host, &port, err), TPD_ERR_OK);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 3025);
	free(host);
	assert_int_equal(tpd_tlsdial_split_addr("proxy.example.com:443", &host, &port, err), TPD_ERR_OK);
	assert_string_equal(host, "proxy.example.com");
	assert_int_equal(port, 443);
	free(host);
	assert_int_equal(tpd_tlsdial_split_addr("::1", &host, &port, err), TPD_ERR_INVAL);
	assert_int_equal(tpd_tlsdial_split_addr("h:0", &host, &port, err), TPD_ERR_INVAL);
	assert_int_equal(tpd_tlsdial_split_addr("h:99999", &host, &port, err), TPD_ERR_INVAL);
	assert_int_equal(tpd_tlsdial_split_addr(":443", &host, &port, err), TPD_ERR_INVAL);
	assert_int_equal(tpd_tlsdial_split_addr("h:44x", &host, &port, err), TPD_ERR_INVAL);
	assert_null(host);

	assert_int_equal(tpd_tlsdial_choose_path("auth.example.com:3025"), TPD_TLSPATH_DIRECT_ONLY);
	assert_int_equal(tpd_tlsdial_choose_path("[::1]:3025"), TPD_TLSPATH_DIRECT_ONLY);
	assert_int_equal(tpd_tlsdial_choose_path("proxy.example.com:443"), TPD_TLSPATH_ROUTING_FIRST);
	assert_int_equal(tpd_tlsdial_choose_path("proxy.example.com:3080"), TPD_TLSPATH_ROUTING_FIRST);
	assert_int_equal(tpd_tlsdial_choose_path("Tenant.Teleport.SH:443"), TPD_TLSPATH_ROUTING_FIRST);
	assert_int_equal(tpd_tlsdial_choose_path("tenant.teleport.sh:3025"), TPD_TLSPATH_ROUTING_FIRST);
	assert_int_equal(tpd_tlsdial_choose_path("teleport.example.com:8443"), TPD_TLSPATH_DIRECT_FIRST);
	assert_int_equal(tpd_tlsdial_choose_path("garbage"), TPD_TLSPATH_DIRECT_FIRST);
	assert_string_equal(tpd_tlspath_name(TPD_TLSPATH_ROUTING_FIRST), "routing-first");
	tpd_tlsdial_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pure_helpers),
	    cmocka_unit_test(test_routing_alpn_sni_and_pump),
	    cmocka_unit_test(test_offers),
	    cmocka_unit_test(test_no_alpn_rejected),
	    cmocka_unit_test(test_wrong_ca_rejected),
	    cmocka_unit_test(test_wrong_name_rejected),
	    cmocka_unit_test(test_server_close_and_free_with_grpc_open),
	    cmocka_unit_test(test_timeout_and_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
