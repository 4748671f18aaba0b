#!/usr/bin/env bash
# bench/cache-pgbench.sh: pgbench -S against Postgres directly, through shardwire without a
# cache, and through shardwire with pgbench_accounts cacheable and warm (Redis L2, ristretto
# L1), on one Postgres.
#
# Run from the repo root:  bench/cache-pgbench.sh
# Environment: T (seconds per run, default 15), REPS (default 3), CLIENTS (default "16 64"),
# MODES (default "simple prepared"), SCALE (default 1: 100,000 accounts, all of them fit in
# the L1 budget; every one is read once per mode to warm the cache), POOL_SIZE,
# SHARDWIRE_REV (build that commit instead of the working tree), RAW (keep the runs' TSV).
#
# Runs are interleaved as in pgbench-compare.sh; the medians table gives each target's tps and
# the ratios against direct Postgres measured in the same repetitions. The cached instance's
# hit rate over the measured runs is printed from its metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

T=${T:-15}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-"16 64"}
MODES=${MODES:-"simple prepared"}
SCALE=${SCALE:-1}
TARGETS=(direct shardwire cached)

command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install -y redis-server" >&2; exit 1; }
trap bench_cleanup EXIT INT TERM
raise_nofile
bench_tmpdir
build_shardwire
start_postgres
log "pgbench -i -s $SCALE"
"${PGCLIENT[@]}" pgbench -i -q -s "$SCALE" -p "$PG_PORT" app >"$BENCH_TMP/init.log" 2>&1 || { cat "$BENCH_TMP/init.log" >&2; exit 1; }
"${PGCLIENT[@]}" psql -X -q -p "$PG_PORT" -c 'vacuum analyze pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history' >/dev/null

REDIS_PORT=$(free_port)
mkdir -p "$BENCH_TMP/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$BENCH_TMP/redis" \
	--maxmemory 1gb --maxmemory-policy volatile-lru >"$BENCH_TMP/redis/redis.log" 2>&1 &
BENCH_PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
log "redis: port $REDIS_PORT"

SW_NAME=-plain start_shardwire
PLAIN_PORT=$SW_PORT PLAIN_PID=$SW_PID
CACHED_ADMIN=$(free_port)
SW_NAME=-cached SW_ADMIN_LISTEN=127.0.0.1:$CACHED_ADMIN SW_EXTRA_CONFIG="cache:
  tables: {pgbench_accounts: 10m}
  redis: {addrs: [127.0.0.1:$REDIS_PORT]}
  l1_bytes: 268435456
  change_feed: false" start_shardwire
CACHED_PORT=$SW_PORT CACHED_PID=$SW_PID

metric() { curl -s "http://127.0.0.1:$CACHED_ADMIN/metrics" | awk -v m="$1" '$1 == m {s += $2} END {printf "%.0f", s}'; }
hits() { echo $(($(metric 'shardwire_cache_hits_total{layer="l1"}') + $(metric 'shardwire_cache_hits_total{layer="l2"}'))); }

# Warm every account once per protocol mode (the simple protocol's key holds the literal,
# the extended one's the parameter): the same statement pgbench -S sends, aids in turn.
NACC=$((100000 * SCALE))
cat >"$BENCH_TMP/warm.sql" <<'SQL'
\set n :n + 1
\set aid (:n * :nclients + :client_id) % (100000 * :scale) + 1
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL
for mode in $MODES; do
	log "warming the cache: every account once, -M $mode"
	"${PGCLIENT[@]}" pgbench -n -M "$mode" -c 8 -j 2 -t $((NACC / 8 + 1)) -D n=0 -D nclients=8 -f "$BENCH_TMP/warm.sql" \
		-p "$CACHED_PORT" app >"$BENCH_TMP/warm-$mode.log" 2>&1 || { cat "$BENCH_TMP/warm-$mode.log" >&2; exit 1; }
done
log "after warm-up: $(hits) hits, $(metric shardwire_cache_misses_total) misses, $(metric 'shardwire_cache_entries{layer="l1"}') entries in L1"
HITS0=$(hits) MISSES0=$(metric shardwire_cache_misses_total)

port_of() { case $1 in direct) echo "$PG_PORT" ;; shardwire) echo "$PLAIN_PORT" ;; cached) echo "$CACHED_PORT" ;; esac; }
pid_of() { case $1 in direct) echo "" ;; shardwire) echo "$PLAIN_PID" ;; cached) echo "$CACHED_PID" ;; esac; }

RUNS=$BENCH_TMP/runs.tsv
printf 'rep\tmode\tclients\ttarget\tstatus\ttps\txacts\tcpu_s\n' >"$RUNS"
one_run() {
	local target=$1 mode=$2 clients=$3 rep=$4 port pid t0=0 t1=0 rc=0 out
	port=$(port_of "$target")
	pid=$(pid_of "$target")
	out=$BENCH_TMP/run-$rep-$mode-$clients-$target.log
	[[ -n $pid ]] && t0=$(cpu_ticks "$pid")
	"${PGCLIENT[@]}" pgbench -n -S -M "$mode" -c "$clients" -j 2 -T "$T" -p "$port" app >"$out" 2>&1 || rc=$?
	[[ -n $pid ]] && t1=$(cpu_ticks "$pid")
	local tps xacts failed status=ok cpu_s=-
	read -r tps xacts failed < <(pgbench_result "$out")
	[[ $tps == - ]] && tps=""
	[[ $xacts == - ]] && xacts=""
	[[ $failed == - ]] && failed=""
	if [[ $rc != 0 || -z $tps || ${failed:-0} != 0 ]]; then
		status=fails
		log "$target $mode c=$clients rep $rep: FAILS (exit $rc): $(grep -m1 -iE 'error|abort|fatal' "$out" || tail -1 "$out")"
	fi
	[[ -n $pid ]] && cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$mode" "$clients" "$target" "$status" "${tps:--}" "${xacts:--}" "$cpu_s" >>"$RUNS"
	[[ $status == ok ]] && log "$target $mode c=$clients rep $rep: tps $tps, proxy cpu ${cpu_s}s"
	return 0
}

for ((rep = 1; rep <= REPS; rep++)); do
	for mode in $MODES; do
		for clients in $CLIENTS; do
			for ((k = 0; k < ${#TARGETS[@]}; k++)); do
				one_run "${TARGETS[(k + rep - 1) % ${#TARGETS[@]}]}" "$mode" "$clients" "$rep"
			done
		done
	done
done
[[ -n ${RAW:-} ]] && cp "$RUNS" "$RAW"
HITS=$(($(hits) - HITS0)) MISSES=$(($(metric shardwire_cache_misses_total) - MISSES0))

echo
echo "## Runs (pgbench -S, -j 2, -T $T, scale $SCALE, pool size $POOL_SIZE, $REPS interleaved repetitions)"
echo
column -t -s $'\t' "$RUNS"
echo
echo "## Medians"
echo
awk -F'\t' "$AWK_MEDIAN"'
function cell(k) { return (k in tps) ? sprintf("%.0f", median(tps[k])) : "fails" }
function ratio(a, b) { return ((a in tps) && (b in tps)) ? sprintf("%.2f", median(tps[a]) / median(tps[b])) : "-" }
NR == 1 { next }
{
	cfg = $2 " " $3; if (!(cfg in seen)) { seen[cfg] = 1; order[++ncfg] = cfg }
	if ($5 == "ok") tps[cfg SUBSEP $4] = tps[cfg SUBSEP $4] " " $6
}
END {
	printf "| mode | clients | direct tps | shardwire tps | shardwire cached tps | cached/direct | cached/uncached | uncached/direct |\n"
	printf "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
	for (i = 1; i <= ncfg; i++) {
		cfg = order[i]; split(cfg, c, " ")
		d = cfg SUBSEP "direct"; s = cfg SUBSEP "shardwire"; k = cfg SUBSEP "cached"
		printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c[1], c[2], cell(d), cell(s), cell(k), ratio(k, d), ratio(k, s), ratio(s, d)
	}
}' "$RUNS"
echo
echo "cached instance over the measured runs: $HITS hits, $MISSES misses (hit rate $(awk -v h="$HITS" -v m="$MISSES" 'BEGIN {if (h + m > 0) printf "%.4f", h / (h + m); else print "-"}'))"
echo "shardwire: $SHARDWIRE_DESC; pgbench: $(pgbench --version); $(redis-server --version | cut -d' ' -f1-3)"
