#!/usr/bin/env bash
# bench/idle-rss.sh: resident memory per idle authenticated client connection, shardwire next to
# PgBouncer, on one Postgres.
#
# Run from the repo root:  bench/idle-rss.sh
# Environment: N (connections, default 10000), POOL_SIZE (default 20), SETTLE (seconds to wait
# before reading RSS, default 5), SHARDWIRE_REV / SHARDWIRE_BIN (see bench/lib.sh).
#
# For each proxy: one query through it (so its pool and caches exist), read VmRSS, open N
# connections with bench/idleconns (SCRAM-SHA-256 authenticated, then idle), wait SETTLE
# seconds, read VmRSS again, close them. KB per connection = (after - before) / N.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

N=${N:-10000}
SETTLE=${SETTLE:-5}

trap bench_cleanup EXIT INT TERM
raise_nofile
bench_tmpdir
build_shardwire
log "building bench/idleconns"
go build -o "$BENCH_TMP/idleconns" ./bench/idleconns
start_postgres
start_pgbouncer
start_shardwire

RES=$BENCH_TMP/idle.tsv
printf 'proxy\tconnections\trss_before_kb\trss_after_kb\tkb_per_conn\tconnect_s\n' >"$RES"
measure() {
	local name=$1 port=$2 pid=$3 before after up secs fifo=$BENCH_TMP/hold-$1 out=$BENCH_TMP/idle-$1.log
	"${PGCLIENT[@]}" psql -X -q -p "$port" -Atc 'select 1' >/dev/null
	sleep 1
	before=$(rss_kb "$pid")
	mkfifo "$fifo"
	"$BENCH_TMP/idleconns" -n "$N" -dsn "postgres://app:app@127.0.0.1:$port/app?sslmode=disable" <"$fifo" >"$out" 2>&1 &
	local ic=$!
	BENCH_PIDS+=("$ic")
	exec 3>"$fifo" # hold the fifo open; closing it ends idleconns
	while ! grep -q '^up ' "$out"; do
		kill -0 "$ic" 2>/dev/null || { cat "$out" >&2; return 1; }
		sleep 0.5
	done
	sleep "$SETTLE"
	after=$(rss_kb "$pid")
	up=$(awk '/^up / {print $2}' "$out")
	secs=$(awk '/^up / {print $6}' "$out")
	grep -v '^up ' "$out" | head -5 >&2 || true
	exec 3>&-
	wait "$ic" || log "$name: idleconns exited non-zero (some connections failed; see above)"
	local per
	per=$(awk -v a="$before" -v b="$after" -v n="$up" 'BEGIN {printf "%.2f", (b - a) / n}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$up" "$before" "$after" "$per" "$secs" >>"$RES"
	log "$name: $up idle connections up in $secs; VmRSS $before kB -> $after kB = $per kB per connection"
	rm -f "$fifo"
	sleep 2
}
measure shardwire "$SW_PORT" "$SW_PID"
measure pgbouncer "$PGB_PORT" "$PGB_PID"

echo
echo "## Idle client connections: VmRSS of the proxy process (N=$N, SCRAM-SHA-256, pool size $POOL_SIZE)"
echo
awk -F'\t' 'NR == 1 {print "| proxy | connections up | RSS before (kB) | RSS with them (kB) | kB per connection | time to open all |"; print "| --- | ---: | ---: | ---: | ---: | ---: |"; next}
	{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' "$RES"
echo
echo "pgbouncer: $("$PGBOUNCER" --version | head -1); shardwire: $SHARDWIRE_DESC; open-file limit $(ulimit -n)"
