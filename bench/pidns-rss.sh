#!/usr/bin/env bash
# Resident memory of pidns's two long-lived processes, the monitor (caller's pid namespace)
# and the init (PID 1), for `pidns -- sleep 100`; tini and catatonit side by side (their one
# process each, the payload excluded). Prints a Markdown table, in kB.
#   bash bench/pidns-rss.sh                 uses target/release/pidns
#   PIDNS=path/to/pidns bash bench/pidns-rss.sh
# Needs root, or unprivileged user namespaces (then it runs under unshare --user --map-root-user).
set -euo pipefail
cd "$(dirname "$0")/.."

PIDNS=${PIDNS:-target/release/pidns}
if [ ! -x "$PIDNS" ]; then
	echo "pidns-rss: $PIDNS is not built (cargo build --release -p pidns)" >&2
	exit 1
fi
PIDNS=$(realpath "$PIDNS")
wrap=()
if [ "$(id -u)" != 0 ]; then
	wrap=(unshare --user --map-root-user)
fi

tmp=$(mktemp -d)
started=()
cleanup() {
	for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

field() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
pss() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo "?"; }
row() { printf '| %-28s | %6s | %6s | %6s |\n' "$1" "$(field "$2" VmRSS)" "$(field "$2" RssAnon)" "$(pss "$2")"; }

# Waits until $1 has a child, and prints it.
child_of() {
	local pid=$1 kids=""
	for _ in $(seq 100); do
		kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)
		[ -n "$kids" ] && break
		sleep 0.02
	done
	echo "${kids%% *}"
}

echo "| process (\`X -- sleep 100\`)  | VmRSS  | anon   | Pss    |"
echo "|------------------------------|--------|--------|--------|"

"${wrap[@]}" "$PIDNS" --status-fd 3 -- sleep 100 3>"$tmp/status" &
outer=$!
started+=("$outer")
for _ in $(seq 100); do [ -s "$tmp/status" ] && break; sleep 0.02; done
init=$(sed -n '1s/.*"pid":\([0-9]*\).*/\1/p' "$tmp/status")
monitor=$(awk '$1 == "PPid:" {print $2}' "/proc/$init/status")
child_of "$init" >/dev/null
sleep 0.2
row "pidns monitor" "$monitor"
row "pidns init (PID 1)" "$init"

for anchor in "tini -s" "catatonit"; do
	if ! command -v "${anchor%% *}" >/dev/null; then
		echo "| ${anchor%% *} (not installed) | | | |"
		continue
	fi
	# shellcheck disable=SC2086 # the anchor's options are words
	$anchor -- sleep 100 2>/dev/null &
	pid=$!
	started+=("$pid")
	child_of "$pid" >/dev/null
	sleep 0.2
	row "${anchor%% *}" "$pid"
done
