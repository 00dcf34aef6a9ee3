# shellcheck shell=bash
# System and npm dependencies for scripts/test.sh and scripts/demo.sh.
# Source it; it defines functions and changes nothing by itself.

# Everything the interop tests drive: strongSwan as the peer, iproute2 for
# namespaces, ping/iperf3 for traffic, nftables for loss and NAT, conntrack
# to make the NAT forget its mappings, tcpdump for captures.
STYX_APT_TEST_PACKAGES=(
  strongswan-charon strongswan-swanctl strongswan-pki
  libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
  iproute2 iputils-ping iperf3 nftables conntrack tcpdump
)
# The demo needs namespaces, ping and iperf3.
STYX_APT_DEMO_PACKAGES=(iproute2 iputils-ping iperf3)

styx_log() { printf '==> %s\n' "$*" >&2; }

styx_pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# styx_apt_install PKG...: installs those not yet installed. Without root or
# apt it says what is missing and returns 0, so a developer can still run the
# parts that need none of it (interop tests then skip, or fail under CI=true).
styx_apt_install() {
  local missing=() p
  command -v dpkg-query >/dev/null 2>&1 || { styx_log "no dpkg: not installing $*"; return 0; }
  for p in "$@"; do styx_pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    styx_log "not root: cannot install ${missing[*]}"
    return 0
  fi
  styx_log "installing ${missing[*]}"
  # Keep maintainer scripts from starting services (Debian's strongSwan
  # packages start a system charon): a policy-rc.d answering 101 forbids it.
  # An existing policy-rc.d (as in container images) is left alone.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
  if [ $rc -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
  fi
  [ $made_policy -eq 1 ] && rm -f "$policy"
  [ $rc -eq 0 ] || styx_log "apt-get failed (exit $rc)"
  return $rc
}

# A strongSwan started by the system (systemd unit, or the starter under
# another init) would hold the host's /run/charon.pid and IKE ports in the
# root namespace. The tests' own charons run in their own namespaces and
# /run, but a system one still confuses anyone reading `ps` or the logs, so
# it is stopped. Only processes named by strongSwan's own pid files are touched.
styx_stop_system_strongswan() {
  [ "$(id -u)" = 0 ] || return 0
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    local svc
    for svc in strongswan-starter.service strongswan.service; do
      if systemctl list-unit-files "$svc" >/dev/null 2>&1 && systemctl is-enabled --quiet "$svc" 2>/dev/null; then
        styx_log "disabling $svc"
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      elif systemctl is-active --quiet "$svc" 2>/dev/null; then
        styx_log "stopping $svc"
        systemctl stop "$svc" >/dev/null 2>&1 || true
      fi
    done
  fi
  local pidfile pid comm
  for pidfile in /run/starter.charon.pid /run/charon.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || continue
    comm=$(cat "/proc/$pid/comm")
    case $comm in
      starter|charon)
        styx_log "stopping system $comm (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        ;;
    esac
  done
}

styx_check_node() {
  command -v node >/dev/null 2>&1 || { styx_log "node is not installed (Node 20 or later is required)"; return 1; }
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    styx_log "Node $(node --version) is too old: 20 or later is required"
    return 1
  fi
}

# npm ci when node_modules is missing or older than the lockfile; npm install
# when there is no lockfile. Skipping an up-to-date tree keeps repeated local
# runs fast; CI starts from a fresh clone, so it always installs.
styx_npm_install() {
  if [ -f package-lock.json ]; then
    if [ -f node_modules/.package-lock.json ] \
       && [ node_modules/.package-lock.json -nt package-lock.json ] \
       && [ node_modules/.package-lock.json -nt package.json ] \
       && [ "${STYX_FORCE_NPM_CI:-0}" != 1 ]; then
      styx_log "node_modules is up to date with package-lock.json"
      # npm ci runs the addon build; a tree that skipped it still needs the addon.
      if [ ! -f native/build/Release/styx_tun.node ]; then
        styx_log "building the TUN addon"
        node native/build.mjs || return 1
      fi
      return 0
    fi
    styx_log "npm ci"
    npm ci --no-audit --no-fund
  else
    styx_log "npm install (no package-lock.json)"
    npm install --no-audit --no-fund
  fi
}
