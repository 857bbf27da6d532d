# syntax=docker/dockerfile:1
#
# hopguard image: `hopguard serve` as a non-root process with production dependencies only.
#
#   docker build -t hopguard:0.1.0 .
#   docker run --rm -v "$PWD/examples:/etc/hopguard:ro" \
#     -e HOPGUARD_WORKLOAD_ID=spiffe://prod.example.org/ns/payments/sa/ledger hopguard:0.1.0
#
# test/deploy/package-install.test.ts performs the same production install without Docker
# (npm pack → npm ci --omit=dev → hopguard serve answers gRPC health and a Check).
#
# Node: the major version CI tests on (Node 20: .ci/run, package.json engines), pinned by tag
# and digest so that every build starts from the same bytes. Both stages use it. To bump:
# README "Deployment" (test/deploy/dockerfile.test.ts holds the image to CI's Node major).
ARG NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0

# ---- build: compile and bundle TypeScript (dev dependencies live only in this stage) -----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs ./scripts/
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, the bundled CLI and protos, nothing else ---------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# jemalloc instead of glibc's malloc: after a burst of distinct tokens glibc keeps the freed
# native memory resident (measured: ~40 MB of free chunks in its main arena, RSS ~160 MB
# settled with 100k cached tokens); jemalloc returns it (~115 MB). Its background thread
# purges on a timer, so an idle sidecar shrinks too (without it, 114–145 MB by run).
# bench/RESULTS.md has the figures. One path on every architecture; unset LD_PRELOAD to run
# on glibc's malloc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc\.so\.2$')" /usr/local/lib/libjemalloc.so.2
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 MALLOC_CONF=background_thread:true
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script of any dependency runs in the image build.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# The bundled CLI only (scripts/build.mjs): dist/main.js and its chunks, not the per-module
# tsc output that tests and the bench import.
COPY --from=build /app/dist/main.js /app/dist/main.js.map ./dist/
COPY --from=build /app/dist/chunks ./dist/chunks
COPY proto ./proto
# Numeric, so Kubernetes can verify runAsNonRoot without a passwd lookup; it owns nothing in
# /app (read-only at run time: readOnlyRootFilesystem works).
USER 10001:10001
# 9191: ext_authz gRPC + grpc.health.v1 (keep on loopback); 9464: /metrics /healthz /readyz.
EXPOSE 9191 9464
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve", "--config", "/etc/hopguard/hopguard.yaml"]
