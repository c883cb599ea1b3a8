# syntax=docker/dockerfile:1
# Build: release, static Swift stdlib. Run: slim Debian, non-root, read-only root filesystem friendly.
# The Swift version is the one the project is built and tested with. scripts/check-image builds the
# runtime stage here with buildah, the build stage replaced by binaries built on the host.
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY proto ./proto
COPY migrations ./migrations
# Package.swift declares the bench executables' targets too: the package does not load without them.
COPY Benchmarks/GRPCBaseline ./Benchmarks/GRPCBaseline
COPY Benchmarks/FanOut ./Benchmarks/FanOut
RUN swift build -c release --static-swift-stdlib --product tokend \
 && swift build -c release --static-swift-stdlib --product tokenctl \
 && mkdir -p /out \
 && cp "$(swift build -c release --show-bin-path)/tokend" "$(swift build -c release --show-bin-path)/tokenctl" /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates=* libcurl4=* tzdata=* \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tokend --create-home tokend
COPY --from=build /out/tokend /out/tokenctl /usr/local/bin/
COPY migrations /usr/share/tokend/migrations
USER 10001:10001
WORKDIR /var/lib/tokend
# DL3064 (sensitive data in ARG or ENV) matches "TOKEN" in the TOKEND_ prefix: none of these is a
# secret. Secrets (TOKEND_ADMIN_TOKEN, TOKEND_DATABASE_URL) come from the environment at run time,
# never from this file. The ignore covers this ENV instruction only: put no secret in it.
# hadolint ignore=DL3064
ENV TOKEND_HTTP_ADDR=0.0.0.0:8080 \
    TOKEND_ADMIN_ADDR=0.0.0.0:8081 \
    TOKEND_GRPC_ADDR=0.0.0.0:9090 \
    TOKEND_DATA_DIR=/var/lib/tokend \
    TOKEND_LOG_FORMAT=json
EXPOSE 8080 8081 9090
ENTRYPOINT ["/usr/local/bin/tokend"]
CMD ["serve"]
