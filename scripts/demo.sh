#!/usr/bin/env bash
# The README's demo (`npm run demo`): two styx daemons in two network
# namespaces build an IKEv2 tunnel between 10.1.0.0/24 and 10.2.0.0/24.
#
#   left   ns styx-demo-l  192.0.2.1  etc/styx.yaml            initiator
#   right  ns styx-demo-r  192.0.2.2  etc/examples/right.yaml  responder
#
# Usage: scripts/demo.sh [--keep | --down]
#   --keep   leave both daemons and namespaces running, and say how to use them
#   --down   remove what an earlier --keep left behind, and exit
# Needs root (network namespaces), Node 20 and npm; installs iproute2, ping and iperf3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
# shellcheck source=lib/deps.sh
. scripts/lib/deps.sh

PREFIX=styx-demo
LEFT_NS=$PREFIX-l
RIGHT_NS=$PREFIX-r
RUN=${STYX_DEMO_DIR:-${TMPDIR:-/tmp}/styx-demo}
LEFT_CONF=$ROOT/etc/styx.yaml
RIGHT_CONF=$ROOT/etc/examples/right.yaml
STYXD=$ROOT/dist/src/bin/styxd.js
STYX=$ROOT/dist/src/bin/styx.js

keep=0
case ${1:-} in
  --keep) keep=1 ;;
  --down) ;;
  '') ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || { styx_log "the demo needs root to create network namespaces"; exit 1; }

# Stops only the daemons this script started, by the pids it recorded.
stop_daemons() {
  local side pid
  for side in left right; do
    [ -f "$RUN/$side.pid" ] || continue
    pid=$(cat "$RUN/$side.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$side.pid"
  done
}

teardown() {
  stop_daemons
  bash scripts/lib/netns.sh down "$PREFIX"
}

if [ "${1:-}" = --down ]; then
  teardown
  styx_log "demo removed"
  exit 0
fi

styx_check_node
styx_apt_install "${STYX_APT_DEMO_PACKAGES[@]}"
styx_npm_install
styx_log "npm run build"
npm run build --silent || styx_log "the build reported type errors; trying the emitted code anyway"
for f in "$STYXD" "$STYX" "$LEFT_CONF" "$RIGHT_CONF"; do
  [ -f "$f" ] || { styx_log "missing $f"; exit 1; }
done

# A previous demo may still be running; start clean.
teardown
mkdir -p "$RUN"
rm -f "$RUN"/*.sock "$RUN"/*.log

cleanup_on_exit() {
  local rc=$?
  if [ $keep = 0 ] || [ $rc -ne 0 ]; then
    teardown
    [ $rc -eq 0 ] || styx_log "demo failed; daemon logs were in $RUN/left.log and $RUN/right.log"
  fi
  exit $rc
}
trap cleanup_on_exit EXIT
trap 'exit 130' INT TERM

styx_log "creating namespaces $LEFT_NS and $RIGHT_NS"
bash scripts/lib/netns.sh up "$PREFIX"

# start_styxd SIDE NS CONFIG: each daemon gets its own control socket, since
# both configurations would otherwise default to paths under /run/styx.
start_styxd() {
  local side=$1 ns=$2 conf=$3
  ip netns exec "$ns" node "$STYXD" --config "$conf" --socket "$RUN/$side.sock" \
    >"$RUN/$side.log" 2>&1 &
  echo $! > "$RUN/$side.pid"
  local i
  for i in $(seq 1 100); do
    [ -S "$RUN/$side.sock" ] && return 0
    if ! kill -0 "$(cat "$RUN/$side.pid")" 2>/dev/null; then
      styx_log "styxd ($side) exited during start-up:"; cat "$RUN/$side.log" >&2; return 1
    fi
    sleep 0.2
  done
  styx_log "styxd ($side) did not open $RUN/$side.sock within 20 s:"; cat "$RUN/$side.log" >&2
  return 1
}

styx() { local side=$1; shift; node "$STYX" --socket "$RUN/$side.sock" "$@"; }

# The responder first, so the initiator's first IKE_SA_INIT finds it listening.
styx_log "starting styxd (right, responder) in $RIGHT_NS"
start_styxd right "$RIGHT_NS" "$RIGHT_CONF"
styx_log "starting styxd (left, initiator) in $LEFT_NS"
start_styxd left "$LEFT_NS" "$LEFT_CONF"

styx_log "waiting for the tunnel"
up=0
for _ in $(seq 1 60); do
  out=$(styx left list 2>/dev/null || true)
  if grep -q 'ESTABLISHED' <<<"$out" && grep -q 'INSTALLED' <<<"$out"; then up=1; break; fi
  sleep 0.5
done

echo
echo "=== styx list (left, $LEFT_NS) ==="
styx left list || true
echo
echo "=== styx list (right, $RIGHT_NS) ==="
styx right list || true
echo

if [ $up = 0 ]; then
  styx_log "the tunnel did not come up within 30 s; last lines of the daemon logs:"
  tail -n 20 "$RUN/left.log" "$RUN/right.log" >&2 || true
  exit 1
fi
styx_log "tunnel up: IKE SA ESTABLISHED, CHILD_SA INSTALLED"

# The default configuration uses the userspace data plane: traffic between
# the inner networks crosses the tunnel as ESP in UDP. A ping and a short TCP
# transfer show it, then the ESP counters of both daemons.
ping_ok=0 tcp_ok=0
echo "=== ping 10.1.0.1 -> 10.2.0.1 ==="
if ip netns exec "$LEFT_NS" ping -n -c 5 -i 0.2 -W 1 -I 10.1.0.1 10.2.0.1; then ping_ok=1; fi
echo
echo "=== TCP transfer 10.1.0.1 -> 10.2.0.1 (iperf3, 3 s) ==="
ip netns exec "$RIGHT_NS" iperf3 -s -1 -B 10.2.0.1 >"$RUN/iperf3-server.out" 2>&1 &
iperf_server=$!
sleep 0.5
if ip netns exec "$LEFT_NS" iperf3 -c 10.2.0.1 -B 10.1.0.1 -t 3 -f m 2>&1 | tail -n 4; then tcp_ok=1; fi
wait $iperf_server 2>/dev/null || true
echo
echo "=== ESP counters after the traffic (left) ==="
styx left list | grep -E '^\s+(in|out) ' || true
echo
if [ $ping_ok = 1 ] && [ $tcp_ok = 1 ]; then
  styx_log "traffic crossed the tunnel: ping and TCP ok"
else
  styx_log "traffic did not cross the tunnel (ping ok=$ping_ok, tcp ok=$tcp_ok); last lines of the daemon logs:"
  tail -n 20 "$RUN/left.log" "$RUN/right.log" >&2 || true
  [ $keep = 1 ] || exit 1
fi

if [ $keep = 1 ]; then
  cat <<EOT

The demo is still running.
  node dist/src/bin/styx.js --socket $RUN/left.sock list
  node dist/src/bin/styx.js --socket $RUN/right.sock list
  ip netns exec $LEFT_NS ping -I 10.1.0.1 10.2.0.1
  logs: $RUN/left.log $RUN/right.log
Remove it with: bash scripts/demo.sh --down
EOT
else
  styx_log "tearing down (use --keep to leave it running)"
fi
