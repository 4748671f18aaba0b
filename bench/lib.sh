# bench/lib.sh: shared set-up for the benchmark scripts in bench/. Source it from the repo root
# after `set -euo pipefail`. It starts one Postgres (through `shardwire dev`), PgBouncer and a
# separate `shardwire serve` process, and stops every process it started on exit.
#
# Knobs (environment): POOL_SIZE (default 20); SHARDWIRE_REV (build that commit instead of the
# working tree); SHARDWIRE_BIN (use this binary, no build; run as `$SHARDWIRE_BIN serve`).

POOL_SIZE=${POOL_SIZE:-20}
SHARDWIRE_BIN_SET=${SHARDWIRE_BIN:+1}
SHARDWIRE_BIN=${SHARDWIRE_BIN:-bin/shardwire}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
CLK_TCK=$(getconf CLK_TCK)
# Client settings go only to psql and pgbench, never into the environment of the proxies: libpq
# variables in shardwire's environment change how it dials its backends (PGHOST=127.0.0.1
# makes it insist on TLS to a Postgres without TLS; see bench/RESULTS.md).
PGCLIENT=(env PGPASSWORD=app PGUSER=app PGDATABASE=app PGHOST=127.0.0.1 PGSSLMODE=disable)

BENCH_PIDS=()

# AWK_MEDIAN defines median(list) for awk programs: the median of the space-separated numbers
# in list, "" when it is empty.
AWK_MEDIAN='
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	if (n == 0) return ""
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

'

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# bench_tmpdir creates $BENCH_TMP, readable by the postgres OS user (Postgres and PgBouncer
# run as it when we are root).
bench_tmpdir() {
	BENCH_TMP=$(mktemp -d /tmp/shardwire-bench.XXXXXX)
	chmod 755 "$BENCH_TMP"
}

# bench_cleanup stops what we started, newest first: SIGINT, then SIGKILL after 10 s.
bench_cleanup() {
	local rc=$? pid i
	for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
		pid=${BENCH_PIDS[i]}
		kill -INT "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [[ -n ${BENCH_TMP:-} && -z ${KEEP_TMP:-} ]]; then rm -rf "$BENCH_TMP"; fi
	exit "$rc"
}

# raise_nofile raises the open-file limit as far as allowed (65536, or the hard limit if lower).
raise_nofile() {
	local want=65536 hard
	hard=$(ulimit -Hn)
	if [[ $hard != unlimited && $hard -lt $want ]]; then
		ulimit -n "$want" 2>/dev/null || ulimit -n "$hard"
	else
		ulimit -n "$want"
	fi
	log "open-file limit: $(ulimit -n) (hard $(ulimit -Hn))"
}

# free_port prints a TCP port nothing listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if [[ -z $(ss -Hltn "sport = :$p") ]]; then echo "$p"; return; fi
	done
}

# wait_sql waits until a query succeeds on PORT (30 s).
wait_sql() {
	local port=$1
	for _ in $(seq 300); do
		if "${PGCLIENT[@]}" psql -X -q -p "$port" -Atc 'select 1' >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	log "nothing answers on port $port"
	return 1
}

# build_shardwire builds the proxy: the working tree into bin/shardwire, or, when SHARDWIRE_REV is
# set (e.g. HEAD), that commit (via git archive, leaving the working tree alone) into
# $BENCH_TMP/shardwire. Sets SHARDWIRE_BIN and SHARDWIRE_DESC unless SHARDWIRE_BIN was given.
build_shardwire() {
	if [[ -n ${SHARDWIRE_BIN_SET:-} ]]; then SHARDWIRE_DESC=$SHARDWIRE_BIN; return; fi
	if [[ -n ${SHARDWIRE_REV:-} ]]; then
		local rev
		rev=$(git rev-parse --short "$SHARDWIRE_REV")
		log "building shardwire at $rev (git archive) into $BENCH_TMP/bin/shardwire"
		mkdir -p "$BENCH_TMP/src"
		git archive "$rev" | tar -x -C "$BENCH_TMP/src"
		(cd "$BENCH_TMP/src" && go build -o "$BENCH_TMP/bin/shardwire" ./cmd/shardwire)
		SHARDWIRE_BIN=$BENCH_TMP/bin/shardwire
		SHARDWIRE_DESC="commit $rev"
	else
		log "building bin/shardwire from the working tree"
		go build -o bin/shardwire ./cmd/shardwire
		SHARDWIRE_BIN=bin/shardwire
		SHARDWIRE_DESC="working tree at $(git rev-parse --short HEAD)"
		git diff --quiet -- . ':!bench' || SHARDWIRE_DESC+=" with uncommitted changes in: $(git diff --name-only -- . ':!bench' | tr '\n' ' ')"
	fi
}

# start_postgres runs `shardwire dev` for its Postgres and sets PG_PORT (the writer's port).
# The dev proxy node it also starts stays idle.
start_postgres() {
	local devport
	devport=$(free_port)
	# Only Postgres is wanted: one proxy node (unused), no Redis, no invoice service.
	"$SHARDWIRE_BIN" dev --dir "$BENCH_TMP/dev" --port "$devport" --proxies 1 --redis=false --invoiced=false \
		>"$BENCH_TMP/dev.log" 2>&1 &
	BENCH_PIDS+=($!)
	for _ in $(seq 600); do
		grep -q 'dev: ready' "$BENCH_TMP/dev.log" 2>/dev/null && break
		kill -0 "${BENCH_PIDS[-1]}" 2>/dev/null || { cat "$BENCH_TMP/dev.log" >&2; return 1; }
		sleep 0.2
	done
	local writer
	writer=$(jq -r '.groups[0].writer' "$BENCH_TMP/dev/cluster.json")
	PG_PORT=$(sed -E 's#^.*@[^:]+:([0-9]+)/.*$#\1#' <<<"$writer")
	log "postgres: $writer (port $PG_PORT)"
	wait_sql "$PG_PORT"
}

# start_pgbouncer starts PgBouncer in transaction mode on a free port; sets PGB_PORT, PGB_PID.
start_pgbouncer() {
	PGB_PORT=$(free_port)
	local d=$BENCH_TMP/pgbouncer
	mkdir -p "$d"
	cat >"$d/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $d/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 20000
max_db_connections = 0
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
ignore_startup_parameters = extra_float_digits
EOF
	printf '"app" "app"\n' >"$d/userlist.txt"
	chmod 755 "$d"
	chmod 644 "$d"/*
	local user_flag=()
	[[ $(id -u) == 0 ]] && user_flag=(-u postgres)
	"$PGBOUNCER" "${user_flag[@]}" "$d/pgbouncer.ini" >"$d/pgbouncer.log" 2>&1 &
	PGB_PID=$!
	BENCH_PIDS+=("$PGB_PID")
	wait_sql "$PGB_PORT" || { cat "$d/pgbouncer.log" >&2; return 1; }
	log "pgbouncer: pid $PGB_PID port $PGB_PORT ($("$PGBOUNCER" --version | head -1))"
}

# start_shardwire starts `$SHARDWIRE_BIN serve` in transaction mode on a free port; sets SW_PORT, SW_PID.
# SW_NAME names the instance's directory (several may run); SW_EXTRA_CONFIG is appended to
# its configuration file; SW_ADMIN_LISTEN is its admin (metrics) address, default none.
start_shardwire() {
	SW_PORT=$(free_port)
	local d=$BENCH_TMP/shardwire${SW_NAME:-}
	mkdir -p "$d"
	cat >"$d/config.yaml" <<EOF
node_name: bench
listen: 127.0.0.1:$SW_PORT
admin_listen: "${SW_ADMIN_LISTEN:-}"
max_client_conn: 20000
pool:
  mode: transaction
  default_pool_size: $POOL_SIZE
users:
  - name: app
    password: app
groups:
  - name: g0
    writer: 127.0.0.1:$PG_PORT
${SW_EXTRA_CONFIG:-}
EOF
	local cmd=("$SHARDWIRE_BIN" serve --config "$d/config.yaml" --log-level warn)
	# SW_PROFSERVE: run bench/profserve (same proxy, with profiling) instead; SW_PROFSERVE_ARGS adds flags.
	[[ -n ${SW_PROFSERVE:-} ]] && cmd=("$SW_PROFSERVE" -config "$d/config.yaml" ${SW_PROFSERVE_ARGS:-})
	"${cmd[@]}" >"$d/shardwire.log" 2>&1 &
	SW_PID=$!
	BENCH_PIDS+=("$SW_PID")
	wait_sql "$SW_PORT" || { cat "$d/shardwire.log" >&2; return 1; }
	log "shardwire: pid $SW_PID port $SW_PORT (${cmd[*]})"
}

# cpu_ticks prints utime+stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) } # drop "pid (comm) "; the next field is field 3
	awk '{print $12 + $13}' <<<"$stat"
}

# rss_kb prints VmRSS of PID in kB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# pgbench_result FILE prints "tps transactions failed" from a pgbench log ("-" for what it
# lacks): tps without the initial connection time, transactions actually processed, failed
# transactions.
pgbench_result() {
	awk -F': ' '
		/^tps = .*without initial connection time/ { split($0, t, " "); tps = t[3] }
		/^number of transactions actually processed/ { split($2, a, "/"); xacts = a[1] }
		/^number of failed transactions/ { split($2, f, " "); failed = f[1] }
		END { printf "%s %s %s\n", (tps == "" ? "-" : tps), (xacts == "" ? "-" : xacts), (failed == "" ? "-" : failed) }
	' "$1"
}
