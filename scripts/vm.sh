#!/usr/bin/env bash
# Runs one command inside a throwaway QEMU/KVM virtual machine that boots
# Debian's own kernel (linux-image-amd64), for tests that need kernel
# features the host kernel may lack: the XFRM (kernel IPsec) data plane
# needs esp4/esp6, which container and CI kernels often leave out.
#
#   bash scripts/vm.sh run [--mem 2G] [--cpus N] [--timeout SECS] -- COMMAND [ARG...]
#   bash scripts/vm.sh prepare      # only download and build what `run` needs
#
# The guest sees the host's root file system read-only (over virtio-9p) under
# a tmpfs overlay, so it can write anywhere without changing the host, and
# the current directory (or STYX_VM_SHARE) read-write at the same path, so
# what the command writes there (dist/, logs) stays on the host. COMMAND runs
# there as root, with the host's tools (node, strongSwan, iproute2, nft);
# its output appears on the terminal as it runs, and vm.sh exits with its
# status. The VM has no network device: tests build their own namespaces.
#
# Environment:
#   STYX_VM_CACHE    where the kernel and initramfs are kept (default /var/cache/styx-vm)
#   STYX_VM_SHARE    the directory shared read-write (default: the current directory)
#   STYX_VM_ENV      extra variable names to pass into the VM (space separated);
#                    CI, TERM, NO_COLOR, FORCE_COLOR, TZ and every STYX_* always pass
#   STYX_VM_ACCEL    kvm or tcg instead of the automatic choice
#   STYX_VM_DEBUG=1  kernel messages on the console and a trace of the VM's init
#   STYX_TEST_SLOW   how many times longer tests wait (default 10 under TCG)
#
# Exit status: COMMAND's; 124 when --timeout expired; 125 when the VM failed
# to boot or died before COMMAND finished (the console's last lines are shown).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/deps.sh
. "$here/lib/deps.sh"

cache=${STYX_VM_CACHE:-/var/cache/styx-vm}
init_script=$here/lib/vm/init.sh

# Modules the initramfs carries and loads at boot, dependencies added from
# modules.dep. The first four are needed to mount the root at all; the rest
# is what the kernel data plane and the interop tests use (ESP with every
# algorithm styx negotiates, tunnels, TUN, veth, nftables NAT), loaded up
# front so a test never depends on on-demand loading. Names that are built
# into the kernel (CONFIG_...=y) are skipped.
boot_modules=(virtio_pci 9pnet_virtio 9p overlay)
extra_modules=(
  tun veth dummy
  xfrm_algo xfrm_user esp4 esp6 xfrm4_tunnel tunnel4 xfrm6_tunnel tunnel6 xfrm_interface
  authenc authencesn echainiv seqiv gcm ccm ctr cbc hmac cmac xcbc
  ghash-generic ghash-clmulni-intel aesni-intel aes_generic
  sha256_generic sha512_generic sha256-ssse3 sha512-ssse3
  chacha20poly1305 chacha_generic poly1305_generic chacha-x86_64 poly1305-x86_64
  des_generic des3_ede-x86_64
  crc32c_generic crc32c-intel
  nf_tables nf_conntrack nf_nat nft_chain_nat nft_masq nft_nat nft_ct nf_conntrack_netlink
)

vm_log() { printf 'styx vm: %s\n' "$*" >&2; }
die() { vm_log "$*"; exit 125; }

usage() {
  sed -n '7,8p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}

# --- preparation (idempotent; everything lands in $cache) ----------------

ensure_host_packages() {
  local missing=() p
  for p in qemu-system-x86 busybox-static; do
    styx_pkg_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "not root: cannot install ${missing[*]}"
  styx_apt_install "${missing[@]}" >&2 || die "apt-get could not install ${missing[*]}"
}

# The concrete kernel package behind the linux-image-amd64 metapackage, e.g.
# linux-image-6.1.0-56-amd64. Without apt lists (or offline) the newest
# kernel already in the cache is used.
kernel_package() {
  local pkg memo=$cache/kernel-package
  # apt-cache takes over a second; its answer only changes with the apt
  # lists, so it is remembered until they are updated.
  if [ -s "$memo" ] && [ "$memo" -nt /var/lib/apt/lists ]; then
    cat "$memo"; return
  fi
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    vm_log "apt knows no linux-image-amd64; running apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || true
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
  fi
  if [ -z "$pkg" ]; then
    local have
    have=$(find "$cache/kernel" -mindepth 2 -maxdepth 2 -name .complete 2>/dev/null | sort -V | tail -1)
    [ -n "$have" ] || die "cannot find the kernel package that linux-image-amd64 depends on"
    pkg=linux-image-$(basename "$(dirname "$have")")
    vm_log "using the cached $pkg"
  else
    printf '%s\n' "$pkg" > "$memo"
  fi
  printf '%s\n' "$pkg"
}

# Downloads (never installs) the kernel package and unpacks it into
# $cache/kernel/KVER, with a modules.dep for it (the package's postinst would
# run depmod; we run it on the unpacked tree instead).
ensure_kernel() {
  local kver=$1 dir=$cache/kernel/$1 kmod=$2
  if [ -f "$dir/.complete" ]; then
    # A tree indexed by busybox before kmod was at hand gets kmod's binary
    # indexes too, which kmod's modprobe needs.
    if [ -n "$kmod" ] && [ ! -f "$dir/lib/modules/$kver/modules.dep.bin" ]; then
      (exec -a depmod "$kmod" -b "$dir" "$kver")
    fi
    return 0
  fi
  local pkg=linux-image-$kver tmp
  vm_log "fetching $pkg (not installed on the host, only unpacked into $dir)"
  tmp=$(mktemp -d "$cache/download.XXXXXX")
  # apt drops privileges to _apt for downloads; let it write here.
  chown _apt "$tmp" 2>/dev/null || true
  # Exactly this one package: a pattern would match every kernel flavour.
  (cd "$tmp" && apt-get download -q "$pkg" >&2) || { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
  rm -rf "$dir"
  mkdir -p "$dir"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dir" || { rm -rf "$tmp" "$dir"; die "cannot unpack $pkg"; }
  rm -rf "$tmp"
  [ -f "$dir/boot/vmlinuz-$kver" ] || die "$pkg has no boot/vmlinuz-$kver"
  # kmod's depmod also writes the binary indexes kmod's modprobe needs;
  # without kmod, busybox's writes the same modules.dep and modules.alias.
  if [ -n "$kmod" ]; then
    (exec -a depmod "$kmod" -b "$dir" "$kver")
  else
    busybox depmod -b "$dir" "$kver"
  fi
  touch "$dir/.complete"
}

# kmod (modprobe, lsmod, modinfo, depmod) for hosts that lack it, as
# Debian's container images do: the package is downloaded and unpacked into
# $cache/kmod, not installed; the guest links its module tools to it (it
# needs only libkmod2 and libraries every Debian system has). Prints the
# kmod binary to use, or nothing (busybox's tools are used then).
ensure_kmod() {
  if command -v kmod >/dev/null 2>&1; then command -v kmod; return; fi
  local dir=$cache/kmod
  if [ ! -f "$dir/.complete" ]; then
    local tmp
    tmp=$(mktemp -d "$cache/download.XXXXXX")
    chown _apt "$tmp" 2>/dev/null || true
    if (cd "$tmp" && apt-get download -q kmod >&2) && rm -rf "$dir" && dpkg-deb -x "$tmp"/kmod_*.deb "$dir"; then
      touch "$dir/.complete"
    else
      vm_log "note: could not fetch kmod; the guest uses busybox's module tools"
    fi
    rm -rf "$tmp"
  fi
  if [ -f "$dir/.complete" ] && "$dir/bin/kmod" --version >/dev/null 2>&1; then
    echo "$dir/bin/kmod"
  fi
}

# resolve_modules MODDIR NAME...: prints the modules.dep keys (paths relative
# to MODDIR) of the named modules and all they depend on, then one line
# "name NAME" per requested module that exists as a module, and
# "builtin NAME" / "missing NAME" for the others.
resolve_modules() {
  local moddir=$1; shift
  awk -v want="$*" -v builtin_file="$moddir/modules.builtin" '
    function norm(s) { gsub(/-/, "_", s); return s }
    function modname(p,   n) { n = p; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); return norm(n) }
    function add(k,   i, n, d) {
      if (k in seen) return
      seen[k] = 1; print k
      n = split(deps[k], d, " ")
      for (i = 1; i <= n; i++) add(d[i])
    }
    {
      k = $1; sub(/:$/, "", k)
      path[modname(k)] = k
      $1 = ""; deps[k] = $0
    }
    END {
      while ((getline line < builtin_file) > 0) builtin[modname(line)] = 1
      n = split(want, w, " ")
      for (i = 1; i <= n; i++) {
        m = norm(w[i])
        if (m in path) { add(path[m]); names[++nn] = "name " m }
        else if (m in builtin) names[++nn] = "builtin " m
        else names[++nn] = "missing " m
      }
      for (i = 1; i <= nn; i++) print names[i]
    }
  ' "$moddir/modules.dep"
}

# Builds $cache/initramfs-KVER.cpio.gz: busybox, /init and the modules. It
# is rebuilt only when its inputs change (init.sh, the module list, busybox,
# the kernel), recorded as a hash next to it.
ensure_initramfs() {
  local kver=$1 moddir=$cache/kernel/$1/lib/modules/$1
  local out=$cache/initramfs-$kver.cpio.gz busybox_bin
  busybox_bin=$(command -v busybox) || die "busybox not found"
  local key
  key=$( { echo "$kver"; cat "$init_script"; echo "${boot_modules[*]} ${extra_modules[*]}";
           sha256sum "$busybox_bin" "$moddir/modules.dep"; declare -f resolve_modules; } | sha256sum | cut -d' ' -f1)
  if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  vm_log "building the initramfs for $kver"
  local stage resolved
  stage=$(mktemp -d "$cache/initramfs.XXXXXX")
  resolved=$(resolve_modules "$moddir" "${boot_modules[@]}" "${extra_modules[@]}")
  local m
  for m in "${boot_modules[@]}"; do
    m=${m//-/_}
    grep -qx "name $m\|builtin $m" <<<"$resolved" || { rm -rf "$stage"; die "kernel $kver has no $m: the VM cannot mount its root"; }
  done
  while read -r m; do vm_log "note: kernel $kver has no module ${m#missing }"; done < <(grep '^missing ' <<<"$resolved" || true)

  mkdir -p "$stage/bin" "$stage/sbin" "$stage/etc/styx-vm" "$stage/lib/modules/$kver"
  cp "$busybox_bin" "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  ln -s ../bin/busybox "$stage/sbin/modprobe"
  install -m 0755 "$init_script" "$stage/init"
  local k
  while read -r k; do
    mkdir -p "$stage/lib/modules/$kver/$(dirname "$k")"
    cp "$moddir/$k" "$stage/lib/modules/$kver/$k"
  done < <(grep -v '^\(name\|builtin\|missing\) ' <<<"$resolved")
  # A modules.dep with just the modules carried here.
  grep -v '^\(name\|builtin\|missing\) ' <<<"$resolved" \
    | awk 'NR == FNR { keep[$1 ":"] = 1; next } $1 in keep' - "$moddir/modules.dep" \
    > "$stage/lib/modules/$kver/modules.dep"
  grep '^name ' <<<"$resolved" | cut -d' ' -f2 > "$stage/etc/styx-vm/modules"
  (cd "$stage" && find . -print0 | busybox cpio -o -H newc -0 2>/dev/null) | gzip -6 > "$out.tmp"
  mv "$out.tmp" "$out"
  echo "$key" > "$out.key"
  rm -rf "$stage"
}

prepare() {
  mkdir -p "$cache"
  ensure_host_packages
  local pkg kver kmod
  pkg=$(kernel_package)
  kver=${pkg#linux-image-}
  kmod=$(ensure_kmod)
  ensure_kernel "$kver" "$kmod"
  ensure_initramfs "$kver"
  printf '%s\n' "$kmod" > "$cache/kmod-path"
  printf '%s\n' "$kver"
}

# --- running ------------------------------------------------------------

# Writes the script the guest runs: the allow-listed environment, the
# working directory and the command, each word quoted for bash.
write_cmd_script() {
  local file=$1 cwd=$2; shift 2
  local names=(CI TERM NO_COLOR FORCE_COLOR TZ) n
  # shellcheck disable=SC2206
  names+=(${STYX_VM_ENV:-})
  while IFS= read -r n; do names+=("$n"); done < <(compgen -e | grep '^STYX_' || true)
  {
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    echo 'export HOME=/root LANG=C.UTF-8'
    for n in "${names[@]}"; do
      [[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
      [ -n "${!n+set}" ] || continue
      printf 'export %s=%q\n' "$n" "${!n}"
    done
    printf 'cd %q || exit 126\n' "$cwd"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
  } > "$file"
}

run() {
  local mem=2G cpus timeout=3600
  cpus=$(nproc 2>/dev/null || echo 1)
  [ "$cpus" -gt 2 ] && cpus=2
  while [ $# -gt 0 ]; do
    case $1 in
      --mem) mem=${2:?--mem needs a size}; shift 2 ;;
      --cpus) cpus=${2:?--cpus needs a number}; shift 2 ;;
      --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
      --) shift; break ;;
      *) usage ;;
    esac
  done
  [ $# -gt 0 ] || usage
  [[ $timeout =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"

  local kver
  kver=$(prepare)

  local share cwd
  share=$(cd "${STYX_VM_SHARE:-.}" && pwd -P)
  [ "$share" != / ] || die "cannot share / read-write; run from the checkout or set STYX_VM_SHARE"
  cwd=$(pwd -P)
  case $cwd/ in "$share"/*) ;; *) cwd=$share ;; esac

  # The run's spec, read by the guest's /init through the read-only root.
  local rundir
  rundir=$(mktemp -d "$cache/run.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$rundir'" EXIT
  local accel
  case $(pick_accel) in
    kvm) accel=(-accel kvm -cpu host) ;;
    *)
      accel=(-accel tcg,thread=multi -cpu max)
      # Tests stretch their waits by this factor (test/interop/lib/exec.ts
      # slow()): under emulation node alone takes seconds to start.
      export STYX_TEST_SLOW=${STYX_TEST_SLOW:-10}
      ;;
  esac
  write_cmd_script "$rundir/cmd.sh" "$cwd" "$@"
  printf '%s\n' "$share" > "$rundir/share"
  printf '%s\n' "$kver" > "$rundir/kver"
  printf '%s\n' "$cache/kernel/$kver/lib/modules/$kver" > "$rundir/moddir"
  cp "$cache/kmod-path" "$rundir/kmod"
  if [ -t 1 ]; then
    echo "1 $(stty size 2>/dev/null || true)" > "$rundir/tty"
  else
    echo 0 > "$rundir/tty"
  fi
  : > "$rundir/status"

  # cryptomgr.notests: the crypto self-tests run when each module loads
  # and cost seconds under TCG; these VMs test styx, not the kernel crypto.
  local append="console=ttyS0 panic=-1 cryptomgr.notests=1 styx.run=$rundir"
  if [ "${STYX_VM_DEBUG:-0}" = 1 ]; then
    append+=" loglevel=7 styx.debug=1"
  else
    # loglevel=1: only KERN_EMERG reaches the console. Not 0: a panic raises
    # the level to print its report only when it is not 0.
    append+=" quiet loglevel=1"
  fi

  local qemu=(
    qemu-system-x86_64 "${accel[@]}" -m "$mem" -smp "$cpus"
    -nographic -nodefaults -no-user-config -no-reboot
    # qboot: a minimal firmware that boots a -kernel faster than SeaBIOS and
    # prints nothing.
    -bios qboot.rom
    -kernel "$cache/kernel/$kver/boot/vmlinuz-$kver"
    -initrd "$cache/initramfs-$kver.cpio.gz"
    -append "$append"
    # ttyS0: the console, on our terminal and copied to a log for failures.
    # signal=on: Ctrl-C stops the VM.
    -chardev "stdio,id=con,signal=on,logfile=$rundir/console.log"
    -serial chardev:con
    # ttyS1: where the guest reports the command's exit status.
    -serial "file:$rundir/status"
    # multidevs=remap: the host root spans several file systems; without it
    # their inode numbers could collide in the guest.
    -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -fsdev "local,id=share,path=$share,security_model=none,multidevs=remap"
    -device virtio-9p-pci,fsdev=share,mount_tag=styxshare
  )

  local rc=0 started
  started=$(date +%s.%N)
  # --foreground: qemu keeps the terminal (its stdio chardev may need it).
  timeout --foreground -k 10 "$timeout" "${qemu[@]}" || rc=$?
  local took
  took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    vm_log "timed out after ${timeout}s; last console lines:"
    tail_console "$rundir/console.log"
    exit 124
  fi
  local status
  status=$(tr -d '\r' < "$rundir/status" | awk '$1 == "STYX-VM-STATUS" { print $2 }' | tail -1)
  if [ -z "$status" ]; then
    if grep -q STYX-VM-BOOT-FAILED "$rundir/status"; then
      vm_log "the VM failed to boot (qemu exit $rc, ${took}s); last console lines:"
    else
      vm_log "the VM stopped before the command finished (qemu exit $rc, ${took}s: a kernel panic?); last console lines:"
    fi
    tail_console "$rundir/console.log"
    vm_log "STYX_VM_DEBUG=1 shows kernel messages and traces the VM's init"
    exit 125
  fi
  [ "${STYX_VM_DEBUG:-0}" = 1 ] && vm_log "command exited $status; VM ran ${took}s"
  exit "$status"
}

# kvm when /dev/kvm can run an ordinary kernel, else tcg (with a warning).
# STYX_VM_ACCEL=kvm|tcg overrides the choice.
pick_accel() {
  case ${STYX_VM_ACCEL:-auto} in
    kvm|tcg) echo "$STYX_VM_ACCEL"; return ;;
    auto) ;;
    *) die "STYX_VM_ACCEL must be kvm, tcg or auto" ;;
  esac
  if ! { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
    vm_log "warning: /dev/kvm is not usable; emulating the CPU (TCG), which is many times slower"
    echo tcg; return
  fi
  # A /dev/kvm served by PVM (kvm_pvm, nested virtualization without
  # hardware support, as some cloud sandboxes offer) runs only kernels built
  # as PVM guests; Debian's kernel hangs there before printing a line.
  if [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
    vm_log "warning: /dev/kvm is PVM (kvm_pvm), which cannot run Debian's kernel; emulating the CPU (TCG), which is many times slower"
    echo tcg; return
  fi
  echo kvm
}

tail_console() {
  if [ -s "$1" ]; then
    tail -n 40 "$1" | tr -d '\r' | sed 's/^/  | /' >&2
  else
    echo "  (the console printed nothing)" >&2
  fi
}

[ $# -ge 1 ] || usage
case $1 in
  run) shift; run "$@" ;;
  prepare) shift; [ "$(id -u)" = 0 ] || die "must run as root"; prepare ;;
  *) usage ;;
esac
