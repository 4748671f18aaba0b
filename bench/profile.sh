#!/usr/bin/env bash
# bench/profile.sh: where shardwire's CPU and memory go, with bench/profserve (the same proxy
# code as `shardwire serve`, plus runtime/pprof).
#
# Run from the repo root:  bench/profile.sh
# Environment: T (seconds per pgbench run, default 15), CLIENTS (default 64), MODES (default
# "simple prepared"), N (idle connections for the heap profile, default 10000; 0 skips it),
# OUT (directory for the profiles, default bench/out), SHARDWIRE_REV (see bench/lib.sh).
#
# For each mode: a fresh proxy with a CPU profile, one `pgbench -S -M MODE -c CLIENTS -j 2`
# run through it, then `go tool pprof -top`. Then a fresh proxy, N idle connections, a heap
# profile while they are held, and `go tool pprof -top -sample_index=inuse_space`.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

T=${T:-15}
CLIENTS=${CLIENTS:-64}
MODES=${MODES:-"simple prepared"}
N=${N:-10000}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

trap bench_cleanup EXIT INT TERM
raise_nofile
bench_tmpdir
build_shardwire
src=.
[[ -n ${SHARDWIRE_REV:-} ]] && src=$BENCH_TMP/src && mkdir -p "$src/bench" && cp -r bench/profserve bench/idleconns "$src/bench/"
log "building bench/profserve and bench/idleconns"
(cd "$src" && go build -o "$BENCH_TMP/profserve" ./bench/profserve && go build -o "$BENCH_TMP/idleconns" ./bench/idleconns)
SW_PROFSERVE=$BENCH_TMP/profserve
start_postgres
"${PGCLIENT[@]}" pgbench -i -q -s 10 -p "$PG_PORT" app >"$BENCH_TMP/init.log" 2>&1 || { cat "$BENCH_TMP/init.log" >&2; exit 1; }

stop_sw() {
	kill -INT "$SW_PID"
	wait "$SW_PID" || true
}

for mode in $MODES; do
	SW_PROFSERVE_ARGS="-cpuprofile $OUT/cpu-$mode-c$CLIENTS.pprof"
	start_shardwire
	rc=0
	"${PGCLIENT[@]}" pgbench -n -S -M "$mode" -c "$CLIENTS" -j 2 -T "$T" -p "$SW_PORT" app >"$BENCH_TMP/pgbench-$mode.log" 2>&1 || rc=$?
	grep -E '^(tps|number of failed)' "$BENCH_TMP/pgbench-$mode.log" >&2 || true
	[[ $rc == 0 ]] || { log "pgbench exited $rc:"; grep -v '^WARNING' "$BENCH_TMP/pgbench-$mode.log" | tail -15 >&2; }
	stop_sw
	echo "## CPU profile: pgbench -S -M $mode -c $CLIENTS -j 2 -T $T ($OUT/cpu-$mode-c$CLIENTS.pprof)"
	go tool pprof -top -nodecount 30 "$BENCH_TMP/profserve" "$OUT/cpu-$mode-c$CLIENTS.pprof" 2>/dev/null
	echo "### cumulative"
	go tool pprof -top -cum -nodecount 40 "$BENCH_TMP/profserve" "$OUT/cpu-$mode-c$CLIENTS.pprof" 2>/dev/null | tail -n +6
	echo
done

if [[ $N -gt 0 ]]; then
	SW_PROFSERVE_ARGS="-heapprofile $OUT/heap-idle-$N.pprof"
	start_shardwire
	fifo=$BENCH_TMP/hold
	mkfifo "$fifo"
	"$BENCH_TMP/idleconns" -n "$N" -dsn "postgres://app:app@127.0.0.1:$SW_PORT/app?sslmode=disable" <"$fifo" >"$BENCH_TMP/idle.log" 2>&1 &
	ic=$!
	BENCH_PIDS+=("$ic")
	exec 3>"$fifo"
	while ! grep -q '^up ' "$BENCH_TMP/idle.log"; do kill -0 "$ic" || exit 1; sleep 0.5; done
	sleep 3
	rss=$(rss_kb "$SW_PID")
	goroutines=$(ls /proc/"$SW_PID"/task | wc -l)
	kill -USR1 "$SW_PID"
	sleep 3
	exec 3>&-
	wait "$ic" || true
	echo "## Heap profile with $(awk '/^up /{print $2}' "$BENCH_TMP/idle.log") idle clients (VmRSS $rss kB, $goroutines OS threads) ($OUT/heap-idle-$N.pprof)"
	go tool pprof -top -sample_index=inuse_space -nodecount 25 "$BENCH_TMP/profserve" "$OUT/heap-idle-$N.pprof" 2>/dev/null
	stop_sw
fi
