#!/usr/bin/env bash
# bench/pgbench-compare.sh: pgbench -S through nothing, PgBouncer and shardwire, on one Postgres.
#
# Run from the repo root:  bench/pgbench-compare.sh
# Environment: T (seconds per run, default 15), REPS (default 3), CLIENTS (default "16 64"),
# MODES (default "simple prepared"), SCALE (default 10), POOL_SIZE (default 20),
# SHARDWIRE_REV (build that commit, e.g. HEAD, instead of the working tree),
# RAW (file to keep the per-run TSV in; default: only printed).
#
# Runs are interleaved: within each repetition every (mode, clients) configuration runs once
# against each target in turn, and the order of the targets rotates between repetitions. For
# each run the script records tps, the transactions processed and the CPU time the proxy process
# used during the run (utime+stime from /proc/PID/stat), and prints medians per configuration.
# A run that fails (PgBouncer < 1.21 with -M prepared in transaction mode) is recorded as
# "fails" and the script goes on.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

T=${T:-15}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-"16 64"}
MODES=${MODES:-"simple prepared"}
SCALE=${SCALE:-10}
TARGETS=(direct pgbouncer shardwire)

trap bench_cleanup EXIT INT TERM
raise_nofile
bench_tmpdir
build_shardwire
start_postgres
log "pgbench -i -s $SCALE"
"${PGCLIENT[@]}" pgbench -i -q -s "$SCALE" -p "$PG_PORT" app >"$BENCH_TMP/init.log" 2>&1 || { cat "$BENCH_TMP/init.log" >&2; exit 1; }
"${PGCLIENT[@]}" psql -X -q -p "$PG_PORT" -c 'vacuum analyze pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history' >/dev/null
start_pgbouncer
start_shardwire

port_of() { case $1 in direct) echo "$PG_PORT" ;; pgbouncer) echo "$PGB_PORT" ;; shardwire) echo "$SW_PORT" ;; esac; }
pid_of() { case $1 in direct) echo "" ;; pgbouncer) echo "$PGB_PID" ;; shardwire) echo "$SW_PID" ;; esac; }

# one_run TARGET MODE CLIENTS REP: appends one TSV line to $RUNS.
RUNS=$BENCH_TMP/runs.tsv
printf 'rep\tmode\tclients\ttarget\tstatus\ttps\txacts\tcpu_s\tcpu_ms_per_1k\n' >"$RUNS"
one_run() {
	local target=$1 mode=$2 clients=$3 rep=$4 port pid t0=0 t1=0 rc=0 out
	port=$(port_of "$target")
	pid=$(pid_of "$target")
	out=$BENCH_TMP/run-$rep-$mode-$clients-$target.log
	[[ -n $pid ]] && t0=$(cpu_ticks "$pid")
	"${PGCLIENT[@]}" pgbench -n -S -M "$mode" -c "$clients" -j 2 -T "$T" -p "$port" app >"$out" 2>&1 || rc=$?
	[[ -n $pid ]] && t1=$(cpu_ticks "$pid")
	local tps xacts failed aborted status=ok cpu_s=- cpu_k=-
	read -r tps xacts failed < <(pgbench_result "$out")
	[[ $tps == - ]] && tps=""
	[[ $xacts == - ]] && xacts=""
	[[ $failed == - ]] && failed=""
	aborted=$(grep -c 'aborted' "$out" || true)
	if [[ $rc != 0 || -z $tps || -z $xacts || ${failed:-0} != 0 || $aborted != 0 ]]; then
		status=fails
		log "$target $mode c=$clients rep $rep: FAILS (exit $rc): $(grep -m1 -iE 'error|abort|fatal' "$out" || tail -1 "$out")"
	fi
	if [[ -n $pid ]]; then
		cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')
		if [[ $status == ok && ${xacts:-0} -gt 0 ]]; then
			# pgbench -S: one query per transaction.
			cpu_k=$(awk -v c="$cpu_s" -v n="$xacts" 'BEGIN {printf "%.3f", c * 1000 / (n / 1000)}')
		fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$mode" "$clients" "$target" "$status" \
		"${tps:--}" "${xacts:--}" "$cpu_s" "$cpu_k" >>"$RUNS"
	[[ $status == ok ]] && log "$target $mode c=$clients rep $rep: tps $tps, proxy cpu ${cpu_s}s (${cpu_k} ms/1k q)"
	return 0
}

total=$((REPS * $(wc -w <<<"$MODES") * $(wc -w <<<"$CLIENTS") * ${#TARGETS[@]}))
log "$total runs of ${T}s each"
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

echo
echo "## Runs (pgbench -S, -j 2, -T $T, scale $SCALE, pool size $POOL_SIZE, $REPS interleaved repetitions)"
echo
column -t -s $'\t' "$RUNS"
echo
echo "## Medians"
echo
awk -F'\t' "$AWK_MEDIAN"'
function cell(k) { return (k in nfail && !(k in tps)) ? "fails" : (k in tps ? sprintf("%.0f", median(tps[k])) : "-") }
NR == 1 { next }
{
	cfg = $2 " " $3; if (!(cfg in seen)) { seen[cfg] = 1; order[++ncfg] = cfg }
	k = cfg SUBSEP $4
	if ($5 == "ok") { tps[k] = tps[k] " " $6; if ($9 != "-") cpu[k] = cpu[k] " " $9 } else nfail[k]++
}
END {
	printf "| mode | clients | direct tps | pgbouncer tps | shardwire tps | shardwire/direct | shardwire/pgbouncer | pgbouncer CPU ms/1k q | shardwire CPU ms/1k q |\n"
	printf "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
	for (i = 1; i <= ncfg; i++) {
		cfg = order[i]; split(cfg, c, " ")
		d = cell(cfg SUBSEP "direct"); b = cell(cfg SUBSEP "pgbouncer"); s = cell(cfg SUBSEP "shardwire")
		rd = (d + 0 > 0 && s + 0 > 0) ? sprintf("%.3f", median(tps[cfg SUBSEP "shardwire"]) / median(tps[cfg SUBSEP "direct"])) : "-"
		rb = (b + 0 > 0 && s + 0 > 0) ? sprintf("%.3f", median(tps[cfg SUBSEP "shardwire"]) / median(tps[cfg SUBSEP "pgbouncer"])) : "-"
		cb = (cfg SUBSEP "pgbouncer") in cpu ? sprintf("%.1f", median(cpu[cfg SUBSEP "pgbouncer"])) : (b == "fails" ? "fails" : "-")
		cs = (cfg SUBSEP "shardwire") in cpu ? sprintf("%.1f", median(cpu[cfg SUBSEP "shardwire"])) : (s == "fails" ? "fails" : "-")
		fails = ""
		for (t in nfail) { split(t, u, SUBSEP); if (u[1] == cfg) fails = fails " " u[2] ":" nfail[t] "/" '"$REPS"' }
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c[1], c[2], d, b, s, rd, rb, cb, cs
		if (fails != "") notes = notes sprintf("\n%s %s clients, failed runs:%s", c[1], c[2], fails)
	}
	if (notes != "") print notes
}' "$RUNS"
echo
echo "pgbouncer: $("$PGBOUNCER" --version | head -1); shardwire: $SHARDWIRE_DESC; pgbench: $(pgbench --version)"
