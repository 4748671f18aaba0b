#!/usr/bin/env bash
# Ensures the system packages that the test suite and `make dev` need are
# installed:
#   postgresql         server binaries (initdb, postgres, pg_basebackup) and
#                      the postgres OS user that servers run as under root
#   postgresql-client  psql, pgbench
#   pgbouncer          for benchmarks (its service is left stopped)
#   redis-server       for the cache and rate-limit tests and `make dev` (its
#                      service is left stopped; tests start their own)
#   prometheus         promtool, which checks and unit-tests the alert rules in
#                      deploy/prometheus (its service is left stopped)
#   chromium           the headless browser the admin dashboard's test drives
# Prints nothing and exits 0 when everything is present. As root with apt-get,
# installs what is missing; otherwise prints the command to run and exits 1.
set -euo pipefail

missing=()

# Server binaries: initdb on PATH or in /usr/lib/postgresql/*/bin (Debian),
# next to postgres and pg_basebackup.
have_server=false
for dir in "$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || echo /nonexistent)")")" /usr/lib/postgresql/*/bin; do
	if [[ -x "$dir/initdb" && -x "$dir/postgres" && -x "$dir/pg_basebackup" ]]; then
		have_server=true
		break
	fi
done
if ! $have_server || { [[ $EUID -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; }; then
	missing+=(postgresql)
fi

if ! command -v psql >/dev/null 2>&1 || ! command -v pgbench >/dev/null 2>&1; then
	missing+=(postgresql-client)
fi

if ! command -v pgbouncer >/dev/null 2>&1 && [[ ! -x /usr/sbin/pgbouncer ]]; then
	missing+=(pgbouncer)
fi

if ! command -v redis-server >/dev/null 2>&1 && [[ ! -x /usr/bin/redis-server ]]; then
	missing+=(redis-server)
fi

if ! command -v promtool >/dev/null 2>&1; then
	missing+=(prometheus)
fi

if ! command -v chromium >/dev/null 2>&1; then
	missing+=(chromium)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi

if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing packages: ${missing[*]}" >&2
	if command -v apt-get >/dev/null 2>&1; then
		echo "deps.sh: install them with:" >&2
		echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	else
		echo "deps.sh: no apt-get here; install the equivalent packages with your package manager" >&2
	fi
	exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2

# Keep package scripts from starting services (a Postgres cluster on 5432,
# pgbouncer on 6432, redis on 6379, prometheus on 9090): policy-rc.d answering
# 101 forbids invoke-rc.d and deb-systemd-invoke to start anything. Leave an
# existing policy alone.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=true
fi
cleanup() {
	if $own_policy; then
		rm -f "$policy"
	fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Whatever the policy, make sure pgbouncer, redis and prometheus do not run as
# services.
for svc in pgbouncer redis-server prometheus; do
	if [[ " ${missing[*]} " != *" $svc "* ]]; then
		continue
	fi
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	else
		service "$svc" stop >/dev/null 2>&1 || true
		update-rc.d "$svc" disable >/dev/null 2>&1 || true
	fi
done
