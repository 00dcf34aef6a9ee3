#!/usr/bin/env bash
# The test topologies, defined once: the interop harness, demo.sh and
# anyone debugging by hand all build them through this script.
#
# Two hosts on one link (`up`):
#
#   PREFIX-l                                   PREFIX-r
#   inner0 10.1.0.1/24                         inner0 10.2.0.1/24
#   out0   192.0.2.1/24  2001:db8::1/64 <-veth-> out0 192.0.2.2/24  2001:db8::2/64
#
# Host A behind a masquerading router, host B outside (`nat-up`, IPv4 only):
#
#   PREFIX-a                 PREFIX-nat                          PREFIX-b
#   inner0 10.1.0.1/24                                           inner0 10.2.0.1/24
#   out0   10.0.0.2/24 <-veth-> in0 10.0.0.1/24
#   default via 10.0.0.1        out0 198.51.100.1/24 <-veth-> out0 198.51.100.2/24
#
#   The router forwards and masquerades what leaves its out0 to source ports
#   20000-20099 (table ip styx_nat; test/interop/lib/nat-topology.ts knows
#   the range and may move it), so a mapping changes both the address and
#   the port, as a NAPT does. B has no route to 10.0.0.0/24, and the router
#   forwards nothing inward but replies within a mapping: A is reached only
#   through a mapping A made.
#
# Usage: netns.sh up PREFIX | nat-up PREFIX | down PREFIX | reap [NAME-PATTERN]
#   up      removes leftovers of the same PREFIX, then creates the two-host topology
#   nat-up  the same for the NAT topology
#   down    removes either topology; succeeds when nothing is there
#   reap    removes namespaces matching 'styxt<pid>x...' whose creating
#           process no longer runs (leftovers of crashed test runs)
set -euo pipefail

die() { echo "netns.sh: $*" >&2; exit 1; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

# Kill what still runs in a namespace before deleting it: a namespace with a
# live process survives `ip netns del` (only its name goes away), which would
# leave charon holding ports and files of a test that is over.
kill_ns_pids() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    sleep 0.2
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

del_ns() {
  local ns=$1
  ns_exists "$ns" || return 0
  kill_ns_pids "$ns"
  ip netns del "$ns" 2>/dev/null || true
}

down() {
  local p=$1 side
  for side in l r a nat b; do del_ns "$p-$side"; done
}

setup_side() {
  local ns=$1 outer4=$2 outer6=$3 inner=$4
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$outer4" dev out0
  ip -n "$ns" addr add "$outer6" dev out0 nodad
  ip -n "$ns" link set out0 up
  # The kernel here has no dummy driver, so the inner LAN is a veth pair kept
  # inside the namespace: inner0 gets an ordinary connected /24 route, as a
  # real LAN interface would (an address on lo would make the whole /24 local).
  ip -n "$ns" link add inner0 type veth peer name inner1
  ip -n "$ns" addr add "$inner" dev inner0
  ip -n "$ns" link set inner1 up
  ip -n "$ns" link set inner0 up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
}

up() {
  local p=$1
  # Interface names are limited to 15 bytes; namespace names are not, but a
  # short prefix keeps `ip netns` output readable.
  [ ${#p} -le 40 ] || die "prefix too long: $p"
  down "$p"
  ip netns add "$p-l"
  ip netns add "$p-r"
  # Without DAD the link-local addresses are usable at once; otherwise the
  # first IPv6 packets wait about a second for neighbour discovery.
  local ns
  for ns in "$p-l" "$p-r"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0
  done
  # Creating both veth ends directly inside the namespaces avoids any name
  # clash in the root namespace between concurrent runs.
  ip link add out0 netns "$p-l" type veth peer name out0 netns "$p-r"
  setup_side "$p-l" 192.0.2.1/24 2001:db8::1/64 10.1.0.1/24
  setup_side "$p-r" 192.0.2.2/24 2001:db8::2/64 10.2.0.1/24
}

# nat_host NS ADDR/LEN INNER/LEN [GATEWAY]: an end host of the NAT topology with its protected LAN.
nat_host() {
  local ns=$1 outer=$2 inner=$3 gw=${4:-}
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$outer" dev out0
  ip -n "$ns" link set out0 up
  # A veth pair kept inside the namespace, for the reason given in setup_side.
  ip -n "$ns" link add inner0 type veth peer name inner1
  ip -n "$ns" addr add "$inner" dev inner0
  ip -n "$ns" link set inner1 up
  ip -n "$ns" link set inner0 up
  [ -z "$gw" ] || ip -n "$ns" route add default via "$gw"
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
}

nat_up() {
  local p=$1
  [ ${#p} -le 40 ] || die "prefix too long: $p"
  down "$p"
  ip netns add "$p-a"
  ip netns add "$p-nat"
  ip netns add "$p-b"
  ip link add out0 netns "$p-a" type veth peer name in0 netns "$p-nat"
  ip link add out0 netns "$p-nat" type veth peer name out0 netns "$p-b"
  nat_host "$p-a" 10.0.0.2/24 10.1.0.1/24 10.0.0.1
  nat_host "$p-b" 198.51.100.2/24 10.2.0.1/24
  local n=$p-nat
  ip -n "$n" link set lo up
  ip -n "$n" addr add 10.0.0.1/24 dev in0
  ip -n "$n" addr add 198.51.100.1/24 dev out0
  ip -n "$n" link set in0 up
  ip -n "$n" link set out0 up
  ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$n" nft -f - <<NFT
table ip styx_nat {
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "in0" oifname "out0" accept
    iifname "out0" oifname "in0" ct state established,related accept
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    # A port range applies to TCP and UDP only; ICMP (ping to B) is masqueraded by the second rule.
    oifname "out0" meta l4proto { tcp, udp } masquerade to :20000-20099
    oifname "out0" masquerade
  }
}
NFT
}

reap() {
  local pattern=${1:-styxt}
  local ns pid
  for ns in $(ip netns list | awk '{print $1}'); do
    case $ns in
      "$pattern"[0-9]*x*) ;;
      *) continue ;;
    esac
    pid=${ns#"$pattern"}
    pid=${pid%%x*}
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      del_ns "$ns"
    fi
  done
}

[ $# -ge 1 ] || die "usage: netns.sh up PREFIX | nat-up PREFIX | down PREFIX | reap [PATTERN]"
[ "$(id -u)" = 0 ] || die "must run as root"
cmd=$1; shift
case $cmd in
  up)   [ $# -eq 1 ] || die "usage: netns.sh up PREFIX"; up "$1" ;;
  nat-up) [ $# -eq 1 ] || die "usage: netns.sh nat-up PREFIX"; nat_up "$1" ;;
  down) [ $# -eq 1 ] || die "usage: netns.sh down PREFIX"; down "$1" ;;
  reap) reap "${1:-styxt}" ;;
  *) die "unknown command: $cmd" ;;
esac
