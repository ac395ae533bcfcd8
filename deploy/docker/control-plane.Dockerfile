# syntax=docker/dockerfile:1
# The FrameFleet control plane: gateway, scheduler and billing in one image; the container's first argument picks
# the service (gateway | scheduler | billing). Build from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t registry.example.com/framefleet/control-plane:0.1.0 .
# Base images are pinned by tag; for reproducible builds append the digest, e.g.
#   --build-arg NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:<digest>   (docker buildx imagetools inspect <tag>)
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# Only the npm manifests, at their paths, so the dependency layer is rebuilt only when one of them changes.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY package.json package-lock.json ./
COPY gen/package.json gen/
COPY services/ services/
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && find gen services -maxdepth 2 -name package.json -exec cp --parents {} /out/ \;

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
# Production dependencies of the three services only: gpu-render (and with it ffmpeg-static) stays out of this
# image. The lockfile is used as committed (npm ci refuses lockfiles written without other platforms' packages).
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
      -w services/gateway -w services/scheduler -w services/billing \
 && npm cache clean --force

FROM ${NODE_IMAGE}
# openssl: the scheduler makes each lease's TLS certificate with it (FRAMEFLEET_RENDER_TLS=true).
# Debian replaces package versions with security updates, so they are not pinned here (the base image is).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/ ./
# Node runs the TypeScript directly: the sources are the build.
COPY gen/ gen/
COPY services/common/ services/common/
COPY services/gateway/ services/gateway/
COPY services/scheduler/ services/scheduler/
COPY services/billing/ services/billing/
COPY deploy/docker/control-plane-entrypoint.sh deploy/docker/healthcheck.ts deploy/docker/
ENV NODE_ENV=production \
    FRAMEFLEET_GATEWAY_ADDR=0.0.0.0:8080 \
    FRAMEFLEET_SCHEDULER_ADDR=0.0.0.0:8081 \
    FRAMEFLEET_BILLING_ADDR=0.0.0.0:8082
# The node image's unprivileged user (uid 1000); Kubernetes checks runAsNonRoot against the numeric id.
USER 1000:1000
EXPOSE 8080 8081 8082
ENTRYPOINT ["/app/deploy/docker/control-plane-entrypoint.sh"]
CMD ["gateway"]
