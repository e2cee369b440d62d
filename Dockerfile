# syntax=docker/dockerfile:1
# teleport-pagerduty container image: a build stage with Debian 12's -dev packages, and a
# runtime stage on debian:bookworm-slim that installs only the runtime libraries the binary
# links against (tests/deploy/dockerfile_check.py keeps this list in step with the binary).
#
#   docker build -t teleport-plugin-pagerduty:0.1.0 .
#   docker run -v "$PWD/teleport-pagerduty.yaml:/etc/teleport-pagerduty/teleport-pagerduty.yaml:ro" \
#       teleport-plugin-pagerduty:0.1.0

FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libgrpc-dev libprotobuf-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev \
      libwebsockets-dev libjson-c-dev libyaml-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DTPD_TESTS=OFF -DTPD_SANITIZE=OFF \
 && cmake --build /build -j2 --target teleport-pagerduty \
 && install -D -m 0755 -s /build/teleport-pagerduty /out/teleport-pagerduty \
 && /out/teleport-pagerduty version

FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# The release version (CMakeLists.txt project version; tests/deploy/tarball.py checks they agree).
LABEL org.opencontainers.image.title="teleport-plugin-pagerduty" \
      org.opencontainers.image.version="0.1.0"
# Runtime libraries: gRPC core, protobuf-c, libwebsockets, json-c, libyaml, libcurl, OpenSSL;
# plus the CA bundle for HTTPS to PagerDuty.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc29 libprotobuf-c1 libwebsockets17 libjson-c5 libyaml-0-2 libcurl4 libssl3 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/teleport-pagerduty /usr/local/bin/teleport-pagerduty
# 65532 = "nonroot" in distroless images; the Helm chart runs the pod with the same ids.
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/teleport-pagerduty"]
CMD ["start", "--config", "/etc/teleport-pagerduty/teleport-pagerduty.yaml"]
