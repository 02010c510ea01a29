#!/usr/bin/env bash
# Install everything hoptrace needs to build, test and run its demo on
# Debian 12. This is the ONE place dependencies are installed: add new
# packages to HT_PACKAGES below, nowhere else.
#
# Idempotent: when every package is already installed it does nothing (and
# needs no root). Otherwise it installs the missing ones with apt-get, as
# root, or through sudo when run by another user.
set -euo pipefail

HT_PACKAGES=(
  build-essential
  cmake
  pkg-config
  librdkafka-dev
  libjansson-dev
  liblmdb-dev
  libcurl4-openssl-dev
  zlib1g-dev
  libsimdjson-dev
  libdeflate-dev
  python3
  graphviz
  lmdb-utils
  prometheus-alertmanager
  libssl-dev
  libprotobuf-c-dev
  protobuf-c-compiler
  libmicrohttpd-dev
  wrk
  prometheus
  chromium
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing_packages() {
  local p
  for p in "${HT_PACKAGES[@]}"; do
    is_installed "$p" || printf '%s\n' "$p"
  done
}

# kinesalite (npm), the Kinesis emulator the e2e tests run against, goes
# into the project-local, git-ignored .deps/. Debian's nodejs + npm are
# installed only when there is no npm at all. A failure is a warning: the
# tests that need kinesalite then report SKIP.
HT_DEPS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.deps"
install_kinesalite() {
  [[ -x "$HT_DEPS/node_modules/.bin/kinesalite" ]] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    log "npm not found: apt-get install nodejs npm"
    if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=300 update &&
           "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=300 \
             install --no-install-recommends nodejs npm; } >/dev/null 2>&1; then
      log "warning: could not install nodejs and npm; the Kinesis tests will be skipped"
      return 0
    fi
  fi
  log "npm install kinesalite into $HT_DEPS"
  npm install --prefix "$HT_DEPS" --no-audit --no-fund --loglevel=error kinesalite@3.3.3 >/dev/null 2>&1 ||
    log "warning: npm install kinesalite failed; the Kinesis tests will be skipped"
}

# The OpenTelemetry JS SDK, its OTLP exporters and its aws-sdk
# instrumentation with the SQS client, for the OTLP e2e test
# (tests/e2e/otel_sdk.py); pinned to versions that run on Node 20. A
# failure is a warning: that test then reports SKIP.
HT_OTEL_NPM=(
  @opentelemetry/api@1.9.0
  @opentelemetry/sdk-trace-base@1.30.1
  @opentelemetry/sdk-trace-node@1.30.1
  @opentelemetry/resources@1.30.1
  @opentelemetry/semantic-conventions@1.28.0
  @opentelemetry/exporter-trace-otlp-http@0.57.2
  @opentelemetry/exporter-trace-otlp-proto@0.57.2
  @opentelemetry/instrumentation@0.57.2
  @opentelemetry/instrumentation-aws-sdk@0.49.1
  @aws-sdk/client-sqs@3.699.0
)
install_otel_npm() {
  [[ -d "$HT_DEPS/node_modules/@opentelemetry/instrumentation-aws-sdk" &&
     -d "$HT_DEPS/node_modules/@aws-sdk/client-sqs" ]] && return 0
  command -v npm >/dev/null 2>&1 || { log "warning: no npm; the OTel SDK test will be skipped"; return 0; }
  log "npm install the OpenTelemetry JS SDK into $HT_DEPS"
  npm install --prefix "$HT_DEPS" --no-audit --no-fund --loglevel=error "${HT_OTEL_NPM[@]}" >/dev/null 2>&1 ||
    log "warning: npm install of the OpenTelemetry JS SDK failed; the OTel SDK test will be skipped"
}

command -v dpkg-query >/dev/null 2>&1 ||
  die "dpkg-query not found: this script supports Debian 12 (or a derivative); install the packages listed at the top of $0 by hand"

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} == 0)); then
  log "all ${#HT_PACKAGES[@]} required packages are installed"
  install_kinesalite
  install_otel_npm
  exit 0
fi

log "missing packages: ${missing[*]}"

SUDO=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
    log "not root: using sudo"
  else
    die "need root to install packages (run as root, or install sudo), or install them yourself: apt-get install ${missing[*]}"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq
     -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
aptlog="$(mktemp "${TMPDIR:-/tmp}/hoptrace-setup.XXXXXX")"
trap 'rm -f "$aptlog"' EXIT

run_apt() {
  if ! "${APT[@]}" "$@" >"$aptlog" 2>&1; then
    cat "$aptlog" >&2
    die "apt-get $1 failed (output above)"
  fi
}

# A package is missing: refresh the package lists first, so that a fresh
# machine (empty or stale lists) can find it.
log "apt-get update"
run_apt update
log "apt-get install ${missing[*]}"
run_apt install --no-install-recommends "${missing[@]}"

mapfile -t still < <(missing_packages)
((${#still[@]} == 0)) || die "still missing after install: ${still[*]}"
log "installed ${#missing[@]} package(s); all ${#HT_PACKAGES[@]} required packages are present"
install_kinesalite
install_otel_npm
