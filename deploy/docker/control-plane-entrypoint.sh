#!/bin/sh
# Picks the control-plane service to run; exec so the service is PID 1 and gets SIGTERM itself.
set -eu
case "${1:-}" in
  gateway | scheduler | billing)
    exec node "/app/services/$1/src/main.ts"
    ;;
  healthcheck)
    shift
    exec node /app/deploy/docker/healthcheck.ts "$@"
    ;;
  *)
    echo "usage: <image> gateway|scheduler|billing, or healthcheck grpc <host:port> | http <url> (got \"${1:-}\")" >&2
    exit 2
    ;;
esac
