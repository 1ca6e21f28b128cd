#!/usr/bin/env bash
# Starts redis-server, PostgreSQL and nats-server for the tests and benchmarks, installing
# them from Debian packages (apt-get) when missing, in a temporary directory on
# free loopback ports, and stops them when the sourcing script exits.
#
#   source dev/servers.sh   # then: start_redis; start_postgres; start_nats
#
# Exports FLOWGATE_TEST_REDIS_URL and FLOWGATE_TEST_POSTGRES_URL (the shared
# servers), and what tests need to run PRIVATE instances of their own, which
# they may stop and restart without disturbing the tests running beside them:
#
#   FLOWGATE_TEST_REDIS_SERVER  the redis-server binary            (start_redis)
#   FLOWGATE_TEST_PG_BIN        the directory of initdb, pg_ctl and postgres
#                                                                (start_postgres)
#   FLOWGATE_TEST_REDIS_CLUSTER_URL  a node of a 3-node Redis Cluster
#                               (start_redis_cluster; no replicas)
#   FLOWGATE_TEST_NATS_SERVER   the nats-server binary (start_nats; the NATS
#                               tests run a private JetStream server each)
#   FLOWGATE_TEST_PG_RUN_AS     the user PostgreSQL's tools must run as (set
#                               only when running as root: PostgreSQL refuses
#                               root, so data directories belong to that user)
#   FLOWGATE_TEST_TMPDIR        where private instances keep their data; on
#                               exit any instance left there (a test binary that
#                               was killed before its cleanup ran) is stopped

log() { printf 'dev/servers.sh: %s\n' "$*" >&2; }

tmp=$(mktemp -d -t flowgate-test.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/private"
chmod 755 "$tmp/private"
export FLOWGATE_TEST_TMPDIR="$tmp/private"
redis_pid=""
cluster_pids=""
pg_data=""
pg_bin=""

# Stops private instances that tests left behind in $tmp/private (the layout of
# crates/flowgate-cli/tests/support: INSTANCE/data/postmaster.pid for
# PostgreSQL, INSTANCE/redis.pid for redis-server).
stop_private_leftovers() {
  local pidfile pid dir
  for pidfile in "$tmp"/private/*/data/postmaster.pid; do
    [ -f "$pidfile" ] || continue
    dir=$(dirname "$pidfile")
    if [ -n "$pg_bin" ]; then
      as_pg "$pg_bin/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1
    fi
    pid=$(head -n 1 "$pidfile" 2>/dev/null)
    is_running "$pid" postgres && kill -9 "$pid" 2>/dev/null
  done
  for pidfile in "$tmp"/private/*/nats.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(head -n 1 "$pidfile" 2>/dev/null)
    is_running "$pid" nats-server && kill -9 "$pid" 2>/dev/null
  done
  for pidfile in "$tmp"/private/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(head -n 1 "$pidfile" 2>/dev/null)
    is_running "$pid" redis-server && kill -9 "$pid" 2>/dev/null
  done
}

# Whether process $1 runs and its command line contains $2 (a pid file may be
# stale and its pid reused).
is_running() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}

cleanup() {
  set +e
  stop_private_leftovers
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  local pid
  for pid in $cluster_pids; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w stop >/dev/null 2>&1
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Runs a command as root (directly, or through sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages, refreshing the package lists only if needed.
apt_install() {
  command -v apt-get >/dev/null || { log "apt-get not found: install $* yourself"; exit 1; }
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q --no-install-recommends "$@" >"$tmp/apt.log" 2>&1 || {
    as_root apt-get update -q >>"$tmp/apt.log" 2>&1
    as_root apt-get install -y -q --no-install-recommends "$@" >>"$tmp/apt.log" 2>&1 || {
      cat "$tmp/apt.log" >&2
      exit 1
    }
  }
}

# Prints a loopback port nothing listens on, starting the search at $1.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  echo "$port"
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  FLOWGATE_TEST_REDIS_SERVER=$(command -v redis-server)
  export FLOWGATE_TEST_REDIS_SERVER
  local port=16379 attempt
  mkdir -p "$tmp/redis"
  # Another script may take the free port between the check and the bind:
  # then this redis-server exits, and the next port is tried.
  for attempt in 1 2 3 4 5; do
    port=$(free_port "$port")
    redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/redis" \
      --save '' --appendonly no --logfile "$tmp/redis/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 100); do
      if ! kill -0 "$redis_pid" 2>/dev/null; then
        break
      fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && kill -0 "$redis_pid" 2>/dev/null; then
        export FLOWGATE_TEST_REDIS_URL="redis://127.0.0.1:$port/"
        log "redis-server on port $port"
        return
      fi
      sleep 0.1
    done
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=""
    log "redis-server did not start on port $port (attempt $attempt)"
    port=$((port + 1))
  done
  cat "$tmp/redis/redis.log" >&2
  log "redis-server did not start"
  exit 1
}

find_pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return
    fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"
  fi
}

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  pg_bin=$(find_pg_bin)
  if [ -z "$pg_bin" ]; then
    apt_install postgresql
    pg_bin=$(find_pg_bin)
  fi
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home postgres
  fi
  export FLOWGATE_TEST_PG_BIN="$pg_bin"
  if [ "$(id -u)" -eq 0 ]; then
    export FLOWGATE_TEST_PG_RUN_AS=postgres
  fi
  local port=15432 attempt started=""
  pg_data="$tmp/pg"
  mkdir -p "$pg_data"
  [ "$(id -u)" -eq 0 ] && chown postgres "$pg_data"
  as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 >"$tmp/initdb.log" 2>&1 || {
    cat "$tmp/initdb.log" >&2
    exit 1
  }
  # Another script may take the free port between the check and the bind:
  # then the next port is tried.
  for attempt in 1 2 3 4 5; do
    port=$(free_port "$port")
    local opts="-p $port -k $pg_data -c listen_addresses=127.0.0.1 -c max_connections=200"
    # fsync off for tests: their data need not survive a power cut, and it is
    # much faster. FLOWGATE_PG_DURABLE=1 (benchmarks) keeps PostgreSQL's defaults.
    if [ "${FLOWGATE_PG_DURABLE:-0}" != 1 ]; then
      opts="$opts -c fsync=off -c synchronous_commit=off"
    fi
    if as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -o "$opts" start >/dev/null; then
      started=1
      break
    fi
    log "postgres did not start on port $port (attempt $attempt)"
    port=$((port + 1))
  done
  if [ -z "$started" ]; then
    cat "$pg_data/server.log" >&2
    exit 1
  fi
  export FLOWGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "postgres on port $port"
}


# nats-server (Debian's 2.9 has JetStream): the tests start private servers
# (`nats-server -js -a 127.0.0.1 -p PORT -sd DIR`) themselves; this makes sure
# the binary is there and tells them where.
start_nats() {
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  FLOWGATE_TEST_NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
  export FLOWGATE_TEST_NATS_SERVER
  log "nats-server at $FLOWGATE_TEST_NATS_SERVER ($("$FLOWGATE_TEST_NATS_SERVER" --version))"
}

# A Redis Cluster of three masters (no replicas) on free loopback ports:
# `redis-cli --cluster create`, then waits until every slot is served.
start_redis_cluster() {
  command -v redis-server >/dev/null || apt_install redis-server
  local port=17000 nodes="" i pid
  for i in 1 2 3; do
    port=$(free_port "$port")
    mkdir -p "$tmp/cluster/$port"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/cluster/$port" \
      --cluster-enabled yes --cluster-config-file "$tmp/cluster/$port/nodes.conf" \
      --save '' --appendonly no --logfile "$tmp/cluster/$port/redis.log" &
    pid=$!
    cluster_pids="$cluster_pids $pid"
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    nodes="$nodes 127.0.0.1:$port"
    port=$((port + 1))
  done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes >"$tmp/cluster/create.log" 2>&1 || {
    cat "$tmp/cluster/create.log" >&2
    log "redis cluster create failed"
    exit 1
  }
  local first=${nodes# }
  first=${first%% *}
  for _ in $(seq 1 100); do
    redis-cli -h 127.0.0.1 -p "${first#*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  export FLOWGATE_TEST_REDIS_CLUSTER_URL="redis://$first/"
  log "redis cluster on$nodes"
}

# For the benchmarks: CPU ticks of PostgreSQL — the postmaster, its live
# children, and (cutime, cstime) the children it has reaped, such as the
# backends of closed connections.
pg_ticks() {
  local master total child
  master=$(head -n 1 "$pg_data/postmaster.pid")
  total=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$master/stat")
  for child in $(ps -o pid= --ppid "$master"); do
    if [ -r "/proc/$child/stat" ]; then
      total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$child/stat" 2>/dev/null || echo 0)))
    fi
  done
  echo "$total"
}

# For the benchmarks: waits until PostgreSQL has no client backend left (a
# finished contender's backends exit, and are reaped, shortly after it closed
# its connections), so that the next one's PostgreSQL CPU is its own.
pg_settle() {
  local i
  for i in $(seq 1 50); do
    [ "$(psql -tA "$FLOWGATE_TEST_POSTGRES_URL" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && return
    sleep 0.1
  done
}
