#!/usr/bin/env bash
# bench/routed-pgbench.sh: pgbench -S through shardwire with pgbench_accounts sharded by aid
# over 4 shard groups, against the same through shardwire with every table on one group.
#
# Run from the repo root:  bench/routed-pgbench.sh
# Environment: T (seconds per run, default 15), REPS (default 3), CLIENTS (default "16 64"),
# MODES (default "simple prepared"), SCALE (default 10), POOL_SIZE (default 20),
# SHARDWIRE_REV / SHARDWIRE_BIN as for bench/lib.sh.
#
# One `shardwire dev` cluster (4 groups, no replicas, so both targets read from writers) serves
# both targets, each a `shardwire serve` process: "sharded" has the 4 groups and the aid rule,
# over database app, each group loaded with pgbench -i and cut to the accounts of its shards;
# "one-group" has only g0 configured, over database one holding every account. Runs are
# interleaved, the target order alternates; medians and the sharded/one-group ratio are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

T=${T:-15}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-"16 64"}
MODES=${MODES:-"simple prepared"}
SCALE=${SCALE:-10}
TARGETS=(sharded one-group)
SUPER=(env PGUSER=postgres PGHOST=127.0.0.1 PGSSLMODE=disable)

trap bench_cleanup EXIT INT TERM
raise_nofile
bench_tmpdir
build_shardwire

devport=$(free_port)
printf 'pool:\n  default_pool_size: %s\nmax_client_conn: 20000\nsharding:\n  tables:\n    - name: pgbench_accounts\n      column: aid\n' \
	"$POOL_SIZE" >"$BENCH_TMP/overlay.yaml"
"$SHARDWIRE_BIN" dev --dir "$BENCH_TMP/dev" --groups 4 --replicas 0 --port "$devport" \
	--config "$BENCH_TMP/overlay.yaml" >"$BENCH_TMP/dev.log" 2>&1 &
DEV_PID=$!
BENCH_PIDS+=("$DEV_PID")
for _ in $(seq 900); do
	grep -q 'dev: ready' "$BENCH_TMP/dev.log" 2>/dev/null && break
	kill -0 "$DEV_PID" 2>/dev/null || { cat "$BENCH_TMP/dev.log" >&2; exit 1; }
	sleep 0.2
done
wait_sql "$devport"
log "dev cluster: 4 groups, sharded proxy on port $devport"

ports=()
for g in 0 1 2 3; do
	w=$(jq -r ".groups[$g].writer" "$BENCH_TMP/dev/cluster.json")
	ports+=("$(sed -E 's#^.*@[^:]+:([0-9]+)/.*$#\1#' <<<"$w")")
done
for g in 0 1 2 3; do
	log "g$g (port ${ports[g]}): pgbench -i -s $SCALE, keeping the accounts of shards $((4 * g))-$((4 * g + 3))"
	"${PGCLIENT[@]}" pgbench -i -q -s "$SCALE" -p "${ports[g]}" app >"$BENCH_TMP/init-$g.log" 2>&1 ||
		{ cat "$BENCH_TMP/init-$g.log" >&2; exit 1; }
	"${PGCLIENT[@]}" psql -X -q -p "${ports[g]}" -c "delete from pgbench_accounts where aid % 16 / 4 <> $g" \
		-c 'vacuum analyze pgbench_accounts' >/dev/null
done
"${SUPER[@]}" psql -X -q -p "${ports[0]}" -d postgres -c 'create database one owner app' >/dev/null
"${PGCLIENT[@]}" pgbench -i -q -s "$SCALE" -p "${ports[0]}" one >"$BENCH_TMP/init-one.log" 2>&1 ||
	{ cat "$BENCH_TMP/init-one.log" >&2; exit 1; }
PG_PORT=${ports[0]}
start_shardwire
# The sharded target is a `shardwire serve` process too (the dev node stays idle), configured
# with the 4 groups and the aid rule.
SH_PORT=$(free_port)
{
	printf 'node_name: bench-sharded
listen: 127.0.0.1:%s
admin_listen: ""
max_client_conn: 20000
' "$SH_PORT"
	printf 'pool:
  mode: transaction
  default_pool_size: %s
users:
  - name: app
    password: app
' "$POOL_SIZE"
	printf 'sharding:
  tables:
    - name: pgbench_accounts
      column: aid
groups:
'
	for g in 0 1 2 3; do printf '  - name: g%s
    writer: 127.0.0.1:%s
' "$g" "${ports[g]}"; done
} >"$BENCH_TMP/sharded.yaml"
"$SHARDWIRE_BIN" serve --config "$BENCH_TMP/sharded.yaml" --log-level warn >"$BENCH_TMP/sharded.log" 2>&1 &
BENCH_PIDS+=($!)
wait_sql "$SH_PORT" || { cat "$BENCH_TMP/sharded.log" >&2; exit 1; }

port_of() { case $1 in sharded) echo "$SH_PORT" ;; one-group) echo "$SW_PORT" ;; esac; }
db_of() { case $1 in sharded) echo app ;; one-group) echo one ;; esac; }

RUNS=$BENCH_TMP/runs.tsv
printf 'rep\tmode\tclients\ttarget\tstatus\ttps\n' >"$RUNS"
for ((rep = 1; rep <= REPS; rep++)); do
	for mode in $MODES; do
		for clients in $CLIENTS; do
			for ((k = 0; k < ${#TARGETS[@]}; k++)); do
				target=${TARGETS[(k + rep - 1) % ${#TARGETS[@]}]}
				out=$BENCH_TMP/run-$rep-$mode-$clients-$target.log
				rc=0
				"${PGCLIENT[@]}" pgbench -n -S -M "$mode" -c "$clients" -j 2 -T "$T" -p "$(port_of "$target")" \
					"$(db_of "$target")" >"$out" 2>&1 || rc=$?
				read -r tps _ failed < <(pgbench_result "$out")
				[[ $tps == - ]] && tps=""
				[[ $failed == - ]] && failed=""
				status=ok
				if [[ $rc != 0 || -z $tps || ${failed:-0} != 0 ]]; then
					status=fails
					log "$target $mode c=$clients rep $rep: FAILS: $(tail -3 "$out")"
				fi
				printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$mode" "$clients" "$target" "$status" "${tps:--}" >>"$RUNS"
				log "$target $mode c=$clients rep $rep: tps ${tps:--}"
			done
		done
	done
done

echo
echo "## Runs (pgbench -S, -j 2, -T $T, scale $SCALE, pool size $POOL_SIZE, $REPS interleaved repetitions)"
echo
column -t -s $'\t' "$RUNS"
echo
echo "## Medians"
echo
awk -F'\t' "$AWK_MEDIAN"'
NR == 1 { next }
{
	cfg = $2 " " $3; if (!(cfg in seen)) { seen[cfg] = 1; order[++n] = cfg }
	if ($5 == "ok") tps[cfg SUBSEP $4] = tps[cfg SUBSEP $4] " " $6
}
END {
	printf "| mode | clients | one-group tps | sharded tps | sharded/one-group |\n| --- | ---: | ---: | ---: | ---: |\n"
	for (i = 1; i <= n; i++) {
		split(order[i], c, " "); o = median(tps[order[i] SUBSEP "one-group"]) + 0; s = median(tps[order[i] SUBSEP "sharded"]) + 0
		printf "| %s | %s | %.0f | %.0f | %s |\n", c[1], c[2], o, s, (o > 0 ? sprintf("%.3f", s / o) : "-")
	}
}' "$RUNS"
echo
echo "shardwire: $SHARDWIRE_DESC; pgbench: $(pgbench --version); $(nproc) cores"
