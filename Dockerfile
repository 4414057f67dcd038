# syntax=docker/dockerfile:1
# One image per service, each holding only that service's executable (built from its own entry,
# src/entries/<service>.ts, so it carries no other service's code):
#   docker build --build-arg SERVICE=chat -t adiuva/chat-service .
# (compose.yaml builds all six.)

FROM oven/bun:1.4.4 AS build
WORKDIR /src
# Everything up to the build step is the same for the six images, so they share these layers and
# their cache: SERVICE is declared only after them (a build arg in scope changes every RUN's key).
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
ARG SERVICE
RUN case "$SERVICE" in auth|chat|agent|billing|storage|plugins) ;; \
      *) echo "build with --build-arg SERVICE=auth|chat|agent|billing|storage|plugins (got '$SERVICE')" >&2; exit 1 ;; esac
RUN bun scripts/build.ts "$SERVICE"

# The executable links only against glibc; distroless adds CA certificates and tzdata, and no shell
# or package manager. The :nonroot variant runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.title="adiuva-${SERVICE}-service"
COPY --from=build /src/dist/${SERVICE}-service /app/service
USER 65532:65532
WORKDIR /app
ENV NODE_ENV=production PORT=8000 METRICS_PORT=9464
# Only the API port is exposed. Prometheus reaches METRICS_PORT over the compose network, which
# needs no EXPOSE, and Traefik never picks an unexposed port when a label does not name one.
EXPOSE 8000
# No curl in the image: the executable probes its own /health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/app/service", "healthcheck"]
ENTRYPOINT ["/app/service"]
