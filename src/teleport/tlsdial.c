/* tlsdial.c - OpenSSL mTLS dialer with custom ALPN, bridged to a socketpair (see tpd/tlsdial.h).
 *
 * Dial: getaddrinfo, non-blocking connect to each address until one answers within the deadline,
 * then a non-blocking SSL_connect driven by poll() against the same deadline. SIGPIPE is blocked
 * in the dialing thread during the handshake and in the pump thread for its life (OpenSSL's
 * socket BIO uses write(2)), so a peer reset turns into EPIPE instead of killing the process;
 * a SIGPIPE raised meanwhile is consumed before the dialing thread's mask is restored.
 *
 * Pump: one thread owns the SSL object (it must never be used by two threads). It loops over
 * four non-blocking steps until none makes progress - socketpair→up buffer, up buffer→SSL_write,
 * SSL_read→down buffer, down buffer→socketpair - and then polls exactly what the stalled steps
 * wait for, plus an eventfd that tpd_tlsdial_free uses to stop it. When TLS ends, the rest of the
 * down buffer is still delivered before the socketpair is shut down; when gRPC closes its end, a
 * TLS close_notify is sent. */
#include "tpd/tlsdial.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tpd/pem.h"
#include "tpd/util.h"

#define DEFAULT_TIMEOUT_MS 30000
#define PUMP_BUF           16384

struct tpd_tlsdial {
	SSL_CTX *ctx;
	SSL *ssl;
	int tcp, sv1, stopfd;
	pthread_t thr;
	bool thr_started;
	atomic_bool alive;
	char alpn[256];
	const char *version;
};

/* --- pure helpers ------------------------------------------------------------------------------ */

char *tpd_tlsdial_cluster_sni(const char *cluster)
{
	static const char hexd[] = "0123456789abcdef";
	size_t n = strlen(cluster);
	char *s = xmalloc(2 * n + sizeof("." TPD_TELEPORT_API_DOMAIN));
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = hexd[(unsigned char)cluster[i] >> 4];
		s[2 * i + 1] = hexd[(unsigned char)cluster[i] & 15];
	}
	strcpy(s + 2 * n, "." TPD_TELEPORT_API_DOMAIN);
	return s;
}

char *tpd_tlsdial_auth_alpn(const char *cluster)
{
	char *sni, *res;
	if (tpd_str_empty(cluster))
		return NULL;
	sni = tpd_tlsdial_cluster_sni(cluster);
	res = xasprintf(TPD_TELEPORT_AUTH_ALPN_PREFIX "%s", sni);
	free(sni);
	if (strlen(res) > 255) { /* one ALPN entry is length-prefixed by a single byte */
		free(res);
		return NULL;
	}
	return res;
}

tpd_err tpd_tlsdial_split_addr(const char *addr, char **host, int *port, char *err)
{
	const char *colon, *hs, *he;
	char *end;
	long p;

	*host = NULL;
	*port = 0;
	if (tpd_str_empty(addr))
		return tpd_seterr(err, TPD_ERR_INVAL, "empty Teleport address");
	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (!he || he[1] != ':')
			return tpd_seterr(err, TPD_ERR_INVAL, "address \"%s\": expected [ipv6]:port", addr);
		hs = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || strchr(addr, ':') != colon)
			return tpd_seterr(err, TPD_ERR_INVAL,
			                  "address \"%s\" has no port (host:port, e.g. %s:3025)", addr, addr);
		hs = addr;
		he = colon;
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (he == hs || colon[1] == '\0' || *end != '\0' || errno || p < 1 || p > 65535)
		return tpd_seterr(err, TPD_ERR_INVAL, "address \"%s\": bad host or port", addr);
	*host = xstrndup(hs, (size_t)(he - hs));
	*port = (int)p;
	return TPD_ERR_OK;
}

tpd_tlspath tpd_tlsdial_choose_path(const char *addr)
{
	char *host = NULL;
	int port = 0;
	tpd_tlspath p = TPD_TLSPATH_DIRECT_FIRST;

	if (tpd_tlsdial_split_addr(addr, &host, &port, NULL) != TPD_ERR_OK)
		return p;
	/* Teleport Cloud tenants are always behind a TLS-routing proxy. */
	for (char *c = host; *c; c++)
		*c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
	if (tpd_str_endswith(host, ".teleport.sh") || tpd_str_endswith(host, ".teleport.sh."))
		p = TPD_TLSPATH_ROUTING_FIRST;
	else if (port == 3025)
		p = TPD_TLSPATH_DIRECT_ONLY;
	else if (port == 443 || port == 3080)
		p = TPD_TLSPATH_ROUTING_FIRST;
	free(host);
	return p;
}

const char *tpd_tlspath_name(tpd_tlspath p)
{
	switch (p) {
	case TPD_TLSPATH_DIRECT_ONLY:
		return "direct";
	case TPD_TLSPATH_ROUTING_FIRST:
		return "routing-first";
	case TPD_TLSPATH_DIRECT_FIRST:
		return "direct-first";
	}
	return "unknown";
}

/* --- dialing ----------------------------------------------------------------------------------- */

static int ms_left(int64_t deadline)
{
	int64_t l = deadline - tpd_now_ms();
	return l < 0 ? 0 : (int)l;
}

static tpd_err tcp_connect(const char *addr, const char *host, int port, int64_t deadline, int *out,
                           char *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char ports[16], why[160] = "no address";
	tpd_err rc = TPD_ERR_UNAVAILABLE;
	int fd = -1, gai;

	*out = -1;
	snprintf(ports, sizeof(ports), "%d", port);
	gai = getaddrinfo(host, ports, &hints, &res);
	if (gai)
		return tpd_seterr(err, TPD_ERR_UNAVAILABLE, "cannot resolve %s: %s", addr, gai_strerror(gai));
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		int soerr = 0, one = 1, r;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			snprintf(why, sizeof(why), "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
			goto next;
		}
		p.fd = fd;
		p.events = POLLOUT;
		do
			r = poll(&p, 1, ms_left(deadline));
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			rc = TPD_ERR_TIMEOUT;
			snprintf(why, sizeof(why), "connect timed out");
			goto next;
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			snprintf(why, sizeof(why), "%s", strerror(soerr ? soerr : errno));
			goto next;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*out = fd;
		rc = TPD_ERR_OK;
		break;
	next:
		close(fd);
		fd = -1;
		if (ms_left(deadline) == 0)
			break;
	}
	freeaddrinfo(res);
	if (rc)
		tpd_seterr(err, rc, "cannot connect to %s: %s", addr, why);
	return rc;
}

/* Client certificate (+ chain), key and trust roots from the identity. */
static tpd_err setup_ctx(SSL_CTX *ctx, const tpd_identity *id, char *err)
{
	const char *cert = tpd_identity_cert_pem(id), *key = tpd_identity_key_pem(id),
	           *ca = tpd_identity_ca_pem(id);
	STACK_OF(X509) *chain = tpd_pem_read_certs(cert, strlen(cert)), *roots = NULL;
	EVP_PKEY *pk = NULL;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	tpd_err rc = TPD_ERR_INVAL;
	int n = 0;

	if (!chain || SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) != 1) {
		tpd_seterr(err, rc, "identity %s: cannot use the TLS certificate", tpd_identity_name(id));
		goto out;
	}
	for (int i = 1; i < sk_X509_num(chain); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
			tpd_seterr(err, rc, "identity %s: cannot use the certificate chain",
			           tpd_identity_name(id));
			goto out;
		}
	}
	pk = tpd_pem_read_key(key, strlen(key));
	if (!pk || SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		tpd_seterr(err, rc, "identity %s: cannot use the private key", tpd_identity_name(id));
		goto out;
	}
	roots = tpd_pem_read_certs(ca, strlen(ca));
	for (int i = 0; roots && i < sk_X509_num(roots); i++) {
		if (X509_STORE_add_cert(store, sk_X509_value(roots, i)) == 1)
			n++;
	}
	if (n == 0) {
		tpd_seterr(err, rc, "identity %s: no usable TLS CA certificate", tpd_identity_name(id));
		goto out;
	}
	rc = TPD_ERR_OK;
out:
	ERR_clear_error();
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(roots, X509_free);
	EVP_PKEY_free(pk);
	return rc;
}

/* Blocks SIGPIPE in this thread; returns the previous mask in *old. */
static void block_sigpipe(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

/* Consumes a SIGPIPE this thread raised while blocked, then restores the mask. */
static void restore_sigpipe(const sigset_t *old)
{
	sigset_t set, pending;
	struct timespec zero = {0, 0};
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!sigismember(old, SIGPIPE) && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
		sigtimedwait(&set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static tpd_err handshake(tpd_tlsdial *t, const char *addr, int64_t deadline, char *err)
{
	for (;;) {
		int r = SSL_connect(t->ssl), e, pr;
		struct pollfd p = {.fd = t->tcp};
		if (r == 1)
			return TPD_ERR_OK;
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			p.events = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			p.events = POLLOUT;
		else {
			long vr = SSL_get_verify_result(t->ssl);
			unsigned long oe = ERR_peek_last_error();
			char buf[256] = "connection closed during the handshake";
			if (vr != X509_V_OK)
				return tpd_seterr(
				    err, TPD_ERR_PROTOCOL,
				    "TLS handshake with %s failed: server certificate not trusted (%s); "
				    "it must be issued by the identity's TLS CA for " TPD_TELEPORT_API_DOMAIN,
				    addr, X509_verify_cert_error_string(vr));
			if (oe)
				ERR_error_string_n(oe, buf, sizeof(buf));
			else if (e == SSL_ERROR_SYSCALL && errno)
				snprintf(buf, sizeof(buf), "%s", strerror(errno));
			return tpd_seterr(err, TPD_ERR_PROTOCOL, "TLS handshake with %s failed: %s", addr,
			                  buf);
		}
		do
			pr = poll(&p, 1, ms_left(deadline));
		while (pr < 0 && errno == EINTR);
		if (pr == 0)
			return tpd_seterr(err, TPD_ERR_TIMEOUT, "TLS handshake with %s timed out", addr);
	}
}

/* --- the pump ---------------------------------------------------------------------------------- */

static void *pump(void *arg)
{
	tpd_tlsdial *t = arg;
	unsigned char *up = xmalloc(PUMP_BUF), *down = xmalloc(PUMP_BUF);
	size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
	bool grpc_eof = false, tls_eof = false, tls_failed = false;
	sigset_t old;

	block_sigpipe(&old);
	for (;;) {
		bool progress = true, tcp_in = false, tcp_out = false;
		struct pollfd p[3];
		while (progress) {
			progress = false;
			tcp_in = tcp_out = false;
			if (!grpc_eof && up_len == 0) {
				ssize_t n = read(t->sv1, up, PUMP_BUF);
				if (n > 0) {
					up_len = (size_t)n;
					up_off = 0;
					progress = true;
				} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
					grpc_eof = true;
				}
			}
			if (!tls_eof && up_off < up_len) {
				int r = SSL_write(t->ssl, up + up_off, (int)(up_len - up_off));
				if (r > 0) {
					up_off += (size_t)r;
					if (up_off == up_len)
						up_off = up_len = 0;
					progress = true;
				} else {
					int e = SSL_get_error(t->ssl, r);
					if (e == SSL_ERROR_WANT_READ)
						tcp_in = true;
					else if (e == SSL_ERROR_WANT_WRITE)
						tcp_out = true;
					else
						tls_eof = tls_failed = true;
				}
			}
			if (!tls_eof && down_len == 0) {
				int r = SSL_read(t->ssl, down, PUMP_BUF);
				if (r > 0) {
					down_len = (size_t)r;
					down_off = 0;
					progress = true;
				} else {
					int e = SSL_get_error(t->ssl, r);
					if (e == SSL_ERROR_WANT_READ)
						tcp_in = true;
					else if (e == SSL_ERROR_WANT_WRITE)
						tcp_out = true;
					else {
						tls_eof = true;
						tls_failed = e != SSL_ERROR_ZERO_RETURN;
					}
				}
			}
			if (down_off < down_len) {
				ssize_t n = send(t->sv1, down + down_off, down_len - down_off,
				                 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (n > 0) {
					down_off += (size_t)n;
					if (down_off == down_len)
						down_off = down_len = 0;
					progress = true;
				} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
					grpc_eof = true; /* gRPC closed its end: nothing more to deliver */
					down_off = down_len = 0;
				}
			}
		}
		ERR_clear_error();
		if (tls_eof && down_len == 0)
			break;
		if (grpc_eof && up_len == 0)
			break;
		p[0].fd = (tcp_in || tcp_out) ? t->tcp : -1;
		p[0].events = (short)((tcp_in ? POLLIN : 0) | (tcp_out ? POLLOUT : 0));
		p[1].events = (short)((!grpc_eof && up_len == 0 ? POLLIN : 0) | (down_len ? POLLOUT : 0));
		p[1].fd = p[1].events ? t->sv1 : -1;
		p[2].fd = t->stopfd;
		p[2].events = POLLIN;
		p[0].revents = p[1].revents = p[2].revents = 0;
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[2].revents)
			break;
	}
	atomic_store(&t->alive, false);
	if (!tls_failed)
		SSL_shutdown(t->ssl); /* best effort close_notify; non-blocking */
	ERR_clear_error();
	shutdown(t->sv1, SHUT_RDWR);
	free(up);
	free(down);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return NULL;
}

/* --- public ------------------------------------------------------------------------------------ */

tpd_err tpd_tlsdial_connect(const tpd_tlsdial_opts *o, tpd_tlsdial **out, int *fd_for_grpc, char *err)
{
	tpd_tlsdial *t = tpd_new(tpd_tlsdial);
	const char *cluster = o->cluster_name;
	char *host = NULL, *auth_alpn = NULL, *sni = NULL;
	unsigned char wire[300];
	size_t wlen = 0;
	const unsigned char *sel = NULL;
	unsigned int sel_len = 0;
	int port = 0, sv[2] = {-1, -1};
	int64_t deadline = tpd_now_ms() + (o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
	sigset_t old;
	bool sig_blocked = false;
	tpd_err rc;

	*out = NULL;
	*fd_for_grpc = -1;
	t->tcp = t->sv1 = t->stopfd = -1;
	atomic_init(&t->alive, false);
	if (!o->id) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "tlsdial: no identity");
		goto out;
	}
	rc = tpd_tlsdial_split_addr(o->addr, &host, &port, err);
	if (rc)
		goto out;
	if (tpd_str_empty(cluster))
		cluster = tpd_identity_cluster_name(o->id);
	if (o->tls_routing || o->cluster_sni) {
		if (tpd_str_empty(cluster)) {
			rc = tpd_seterr(
			    err, TPD_ERR_CONFIG,
			    "TLS routing to %s needs the cluster name, but identity %s carries none; set it "
			    "in the configuration",
			    o->addr, tpd_identity_name(o->id));
			goto out;
		}
		auth_alpn = tpd_tlsdial_auth_alpn(cluster);
		if (!auth_alpn) {
			rc = tpd_seterr(err, TPD_ERR_CONFIG,
			                "cluster name \"%s\" is too long for TLS routing", cluster);
			goto out;
		}
	}
	if (o->tls_routing) {
		wire[wlen++] = (unsigned char)strlen(auth_alpn);
		memcpy(wire + wlen, auth_alpn, strlen(auth_alpn));
		wlen += strlen(auth_alpn);
	}
	memcpy(wire + wlen, "\x02h2", 3);
	wlen += 3;
	sni = o->cluster_sni ? tpd_tlsdial_cluster_sni(cluster) : xstrdup(TPD_TELEPORT_API_DOMAIN);

	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "tlsdial: SSL_CTX_new failed");
		goto out;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_alpn_protos(t->ctx, wire, (unsigned)wlen) != 0) { /* 0 = success here */
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "tlsdial: cannot set ALPN");
		goto out;
	}
	rc = setup_ctx(t->ctx, o->id, err);
	if (rc)
		goto out;

	rc = tcp_connect(o->addr, host, port, deadline, &t->tcp, err);
	if (rc)
		goto out;
	t->ssl = SSL_new(t->ctx);
	if (!t->ssl || SSL_set_fd(t->ssl, t->tcp) != 1 || SSL_set_tlsext_host_name(t->ssl, sni) != 1 ||
	    SSL_set1_host(t->ssl, TPD_TELEPORT_API_DOMAIN) != 1) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "tlsdial: cannot set up the TLS connection");
		goto out;
	}
	block_sigpipe(&old);
	sig_blocked = true;
	rc = handshake(t, o->addr, deadline, err);
	if (rc)
		goto out;
	SSL_get0_alpn_selected(t->ssl, &sel, &sel_len);
	if (sel_len == 0 || sel_len >= sizeof(t->alpn)) {
		rc = tpd_seterr(
		    err, TPD_ERR_PROTOCOL, "%s negotiated no application protocol (offered %s%sh2): %s",
		    o->addr, o->tls_routing ? auth_alpn : "", o->tls_routing ? ", " : "",
		    o->tls_routing ? "is it a Teleport Proxy with TLS routing (proxy_listener_mode: "
		                     "multiplex) or an Auth Service?"
		                   : "is it a Teleport Auth Service?");
		goto out;
	}
	memcpy(t->alpn, sel, sel_len);
	t->alpn[sel_len] = '\0';
	if (strcmp(t->alpn, "h2") != 0 && !(auth_alpn && o->tls_routing && strcmp(t->alpn, auth_alpn) == 0)) {
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "%s negotiated an unexpected application protocol",
		                o->addr);
		goto out;
	}
	t->version = SSL_get_version(t->ssl);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) < 0) {
		rc = tpd_seterr(err, TPD_ERR_IO, "tlsdial: socketpair: %s", strerror(errno));
		goto out;
	}
	t->sv1 = sv[1];
	sv[1] = -1;
	t->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->stopfd < 0) {
		rc = tpd_seterr(err, TPD_ERR_IO, "tlsdial: eventfd: %s", strerror(errno));
		goto out;
	}
	atomic_store(&t->alive, true);
	if (pthread_create(&t->thr, NULL, pump, t) != 0) {
		atomic_store(&t->alive, false);
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "tlsdial: cannot start the pump thread");
		goto out;
	}
	t->thr_started = true;
	pthread_setname_np(t->thr, "tpd-tlspump");
	*fd_for_grpc = sv[0];
	sv[0] = -1;
out:
	if (sig_blocked)
		restore_sigpipe(&old);
	ERR_clear_error();
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(host);
	free(auth_alpn);
	free(sni);
	if (rc) {
		tpd_tlsdial_free(t);
		t = NULL;
	}
	*out = t;
	return rc;
}

const char *tpd_tlsdial_alpn(const tpd_tlsdial *t)
{
	return t->alpn;
}

const char *tpd_tlsdial_tls_version(const tpd_tlsdial *t)
{
	return t->version ? t->version : "";
}

bool tpd_tlsdial_alive(const tpd_tlsdial *t)
{
	return atomic_load(&((tpd_tlsdial *)t)->alive);
}

void tpd_tlsdial_free(tpd_tlsdial *t)
{
	if (!t)
		return;
	if (t->thr_started) {
		uint64_t one = 1;
		if (write(t->stopfd, &one, sizeof(one)) < 0) {
			/* an eventfd write only fails on counter overflow; the pump is stopping anyway */
		}
		pthread_join(t->thr, NULL);
	}
	if (t->sv1 >= 0)
		close(t->sv1);
	if (t->stopfd >= 0)
		close(t->stopfd);
	SSL_free(t->ssl);
	if (t->tcp >= 0)
		close(t->tcp);
	SSL_CTX_free(t->ctx);
	ERR_clear_error();
	free(t);
}
