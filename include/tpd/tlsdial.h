/* tlsdial.h - our own OpenSSL mTLS connection to Teleport Auth, bridged to a socketpair for
 * grpc_channel_create_from_fd (docs/teleport-wire.md §3, §3.4).
 *
 * Why: gRPC C core's TLS offers a fixed ALPN list, but reaching Auth through a Proxy with TLS
 * routing needs ALPN "teleport-auth@<hex(cluster)>.teleport.cluster.local" first, then "h2".
 * The Proxy does not terminate that TLS: it reads the ALPN, picks the cluster and copies bytes to
 * an Auth server, so the handshake is end to end with Auth. Hence:
 *   - trust roots = the identity's TLS CA certificates ONLY (the cluster Host CA), exactly like
 *     the Go client's RootCAs. The Proxy's own web certificate is never presented on this path,
 *     so no public or system CA (SSL_CERT_FILE/SSL_CERT_DIR) is consulted or needed;
 *   - the verified name is "teleport.cluster.local" (every Auth certificate carries it);
 *   - SNI is "teleport.cluster.local" like the Go client (or "<hex(cluster)>.teleport.cluster.local",
 *     which Auth also accepts, with cluster_sni);
 *   - the identity's client certificate is always sent.
 * The same dialer serves the direct path (ALPN "h2" only).
 *
 * After the handshake a pump thread (the only user of the SSL object) copies bytes between the
 * TLS connection and one end of a socketpair; the other end goes to grpc_channel_create_from_fd
 * with insecure credentials and GRPC_ARG_DEFAULT_AUTHORITY = "teleport.cluster.local". Such a
 * channel never reconnects: when tpd_tlsdial_alive() turns false (or calls fail UNAVAILABLE)
 * build a new dial and channel. With TLS 1.3 a server that rejects the client certificate still
 * completes the handshake; the rejection shows on the first read, so do a first RPC (Ping)
 * before declaring the connection good. */
#ifndef TPD_TLSDIAL_H
#define TPD_TLSDIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tpd/err.h"
#include "tpd/identity.h"

#define TPD_TELEPORT_API_DOMAIN       "teleport.cluster.local"
#define TPD_TELEPORT_AUTH_ALPN_PREFIX "teleport-auth@"

/* Which connection path an address calls for (like upstream's choice of dialers). */
typedef enum {
	TPD_TLSPATH_DIRECT_ONLY,   /* port 3025: the Auth Service itself */
	TPD_TLSPATH_ROUTING_FIRST, /* port 443/3080 or *.teleport.sh: Proxy TLS routing, then direct */
	TPD_TLSPATH_DIRECT_FIRST,  /* any other port: direct, then TLS routing */
} tpd_tlspath;

typedef struct {
	const char *addr;         /* "host:port" or "[v6]:port" */
	const tpd_identity *id;   /* client cert/key; its TLS CAs are the only trust roots */
	bool tls_routing;         /* offer teleport-auth@<hex(cluster)>... before h2 */
	const char *cluster_name; /* NULL or "" = tpd_identity_cluster_name(id) */
	bool cluster_sni;         /* SNI <hex(cluster)>.teleport.cluster.local instead of the plain one */
	int64_t timeout_ms;       /* TCP connect + TLS handshake; 0 = 30 s (upstream DialTimeout) */
} tpd_tlsdial_opts;

typedef struct tpd_tlsdial tpd_tlsdial;

/* Connects, handshakes, checks the negotiated ALPN and starts the pump. *fd_for_grpc receives the
 * caller's end of the socketpair (hand it to grpc_channel_create_from_fd, which takes ownership,
 * or close it). Errors: UNAVAILABLE (connect), TIMEOUT, PROTOCOL (handshake, verification, ALPN),
 * INVAL/CONFIG (options). */
tpd_err tpd_tlsdial_connect(const tpd_tlsdial_opts *o, tpd_tlsdial **out, int *fd_for_grpc, char *err);
/* The negotiated ALPN protocol ("h2" or the teleport-auth@ one). */
const char *tpd_tlsdial_alpn(const tpd_tlsdial *t);
/* The TLS version negotiated, e.g. "TLSv1.3". */
const char *tpd_tlsdial_tls_version(const tpd_tlsdial *t);
/* False once either side has closed or failed and the pump stopped. */
bool tpd_tlsdial_alive(const tpd_tlsdial *t);
/* Stops the pump and closes the TLS connection and our socketpair end. Safe while gRPC still holds
 * its end (it sees EOF). NULL is a no-op. */
void tpd_tlsdial_free(tpd_tlsdial *t);

/* "teleport-auth@" + hex(cluster) + ".teleport.cluster.local"; NULL if too long for ALPN. Caller frees. */
char *tpd_tlsdial_auth_alpn(const char *cluster);
/* hex(cluster) + ".teleport.cluster.local" (Teleport's EncodeClusterName). Caller frees. */
char *tpd_tlsdial_cluster_sni(const char *cluster);
/* Splits "host:port" / "[v6]:port"; *host is allocated. A missing or bad port is TPD_ERR_INVAL. */
tpd_err tpd_tlsdial_split_addr(const char *addr, char **host, int *port, char *err);
/* Pure: the connection path for an address (unparsable addresses give DIRECT_FIRST). */
tpd_tlspath tpd_tlsdial_choose_path(const char *addr);
/* "direct", "routing-first", "direct-first". */
const char *tpd_tlspath_name(tpd_tlspath p);

#endif
