#!/usr/bin/env bash
# Local services for tests and development (CONTRACT section 9).
#
#   scripts/services.sh start   install what is missing, start every service on 127.0.0.1 (idempotent):
#                               Redis, InfluxDB 1.x, VictoriaMetrics (the InfluxDB v2 write API), tansu;
#                               installs Chromium and tmux (dashboard and `rtsa top` tests) and Python clients;
#                               write target/services.env (export NAME=value lines)
#   scripts/services.sh stop    stop what `start` started, by PID
#   scripts/services.sh status  show what is running
#
# Data lives under target/services/; installs that take long are cached under ~/.cache/rtsa/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="$root/target/services"
env_file="$root/target/services.env"
cache="${RTSA_CACHE:-$HOME/.cache/rtsa}"
redis_port="${RTSA_REDIS_PORT:-16379}"
kafka_port="${RTSA_KAFKA_PORT:-19092}"
influxdb_port="${RTSA_INFLUXDB_PORT:-18086}"
influxdb_rpc_port="${RTSA_INFLUXDB_RPC_PORT:-18088}"
victoria_port="${RTSA_VICTORIA_PORT:-18428}"
# tansu 0.6.0 with SQLite storage (dynostore + libsql): the tests' SASL broker needs a storage
# that keeps its users across the restart that turns authentication on.
tansu_version=0.6.0
tansu_root="$cache/tansu-$tansu_version-libsql"
tansu="$tansu_root/bin/tansu"
venv="$cache/venv"

log() { echo "services: $*" >&2; }

running() { # running NAME → true when its PID file names a live process
  local pid_file="$data/$1.pid"
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

wait_for_port() { # wait_for_port NAME PORT
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$1 did not open 127.0.0.1:$2; its log: $data/$1.log"
  tail -n 20 "$data/$1.log" >&2 || true
  return 1
}

apt_install() { # apt_install PACKAGE... (only the missing ones)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]} (apt)"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_redis() {
  if running redis; then return 0; fi
  apt_install redis-server
  mkdir -p "$data/redis"
  /usr/bin/redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$data/redis" --save "" --appendonly no \
    --daemonize no --protected-mode yes >"$data/redis.log" 2>&1 &
  echo $! >"$data/redis.pid"
  wait_for_port redis "$redis_port"
  log "redis on 127.0.0.1:$redis_port"
}

start_influxdb() { # InfluxDB 1.x (Debian's influxdb): /write, /query
  if running influxdb; then return 0; fi
  apt_install influxdb
  mkdir -p "$data/influxdb"
  cat >"$data/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$influxdb_rpc_port"
[meta]
  dir = "$data/influxdb/meta"
[data]
  dir = "$data/influxdb/data"
  wal-dir = "$data/influxdb/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$influxdb_port"
  log-enabled = false
[ifql]
  enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
CONF
  /usr/bin/influxd -config "$data/influxdb.conf" >"$data/influxdb.log" 2>&1 &
  echo $! >"$data/influxdb.pid"
  wait_for_port influxdb "$influxdb_port"
  log "influxdb (1.x API) on 127.0.0.1:$influxdb_port"
}

start_victoria_metrics() { # takes the InfluxDB v2 write API (/api/v2/write); read back with /api/v1/export
  if running victoria-metrics; then return 0; fi
  apt_install victoria-metrics
  mkdir -p "$data/victoria-metrics"
  /usr/bin/victoria-metrics -httpListenAddr "127.0.0.1:$victoria_port" -storageDataPath "$data/victoria-metrics" \
    -retentionPeriod 100y -search.latencyOffset 0s -search.disableCache -loggerLevel WARN >"$data/victoria-metrics.log" 2>&1 &
  echo $! >"$data/victoria-metrics.pid"
  wait_for_port victoria-metrics "$victoria_port"
  log "victoria-metrics (InfluxDB v2 write API) on 127.0.0.1:$victoria_port"
}

install_tansu() { # the Kafka-protocol broker, built once per machine (20-35 minutes)
  [[ -x "$tansu" ]] && return 0
  log "building the tansu $tansu_version Kafka broker from crates.io into $tansu_root (once per machine, 20-35 minutes)"
  cargo install tansu --version "$tansu_version" --locked --features "dynostore libsql" --root "$tansu_root" \
    --target-dir "$cache/tansu-target" >"$cache/tansu-build.log" 2>&1 || { tail -n 30 "$cache/tansu-build.log" >&2; return 1; }
  rm -rf "$cache/tansu-target" "$cache/tansu" # and an older build's
}

start_kafka() {
  if running tansu; then return 0; fi
  install_tansu
  mkdir -p "$data"
  "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ >"$data/tansu.log" 2>&1 &
  echo $! >"$data/tansu.pid"
  wait_for_port tansu "$kafka_port"
  log "kafka (tansu) on 127.0.0.1:$kafka_port"
}

install_python_clients() { # independent clients for tests: Kafka, the Prometheus text parser, Chromium's DevTools protocol
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import kafka, lz4, prometheus_client, websocket" 2>/dev/null; then return 0; fi
  log "installing kafka-python, lz4, prometheus_client and websocket-client into $venv (pip)"
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check kafka-python lz4 prometheus_client websocket-client
}

write_env() {
  cat >"$env_file" <<ENV
export RTSA_REDIS_URL=redis://127.0.0.1:$redis_port
export RTSA_KAFKA_BROKERS=127.0.0.1:$kafka_port
export RTSA_PYTHON=$venv/bin/python
export RTSA_TANSU=$tansu
export RTSA_CHROMIUM=/usr/bin/chromium
export RTSA_INFLUXDB_V1_URL=http://127.0.0.1:$influxdb_port
export RTSA_INFLUXDB_V2_URL=http://127.0.0.1:$victoria_port
ENV
}

stop_one() {
  local pid_file="$data/$1.pid"
  [[ -f "$pid_file" ]] || return 0
  local pid; pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
  start)
    mkdir -p "$data" "$cache"
    apt_install stunnel4 openssl # TLS in front of test servers, and their test certificates
    apt_install chromium tmux    # the dashboard page in a real browser; rtsa top in a terminal
    start_redis
    start_influxdb
    start_victoria_metrics
    start_kafka
    install_python_clients
    write_env
    log "environment in $env_file"
    ;;
  stop)
    stop_one redis
    stop_one influxdb
    stop_one victoria-metrics
    stop_one tansu
    ;;
  status)
    for s in redis influxdb victoria-metrics tansu; do
      if running "$s"; then echo "$s: running (pid $(cat "$data/$s.pid"))"; else echo "$s: stopped"; fi
    done
    ;;
  *)
    echo "usage: scripts/services.sh start|stop|status" >&2
    exit 2
    ;;
esac
