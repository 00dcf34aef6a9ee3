#!/bin/sh
# /init of the initramfs that scripts/vm.sh builds: it runs as PID 1 under
# busybox sh inside the VM. It loads the kernel modules the initramfs
# carries, builds a writable root from the host's root (read-only 9p lower
# layer, tmpfs upper layer), mounts the styx checkout read-write at the same
# path as on the host, runs one command in a chroot there and powers off.
#
# The host learns the command's exit status from the second serial port
# (ttyS1, a file on the host): "STYX-VM-STATUS <n>". No such line means the
# VM died before the command finished, which vm.sh reports as a failure.
#
# Kernel command line parameters (set by vm.sh):
#   styx.run=DIR    host directory holding this run's spec (cmd.sh, share, tty)
#   styx.debug=1    trace this script and keep kernel messages on the console

PATH=/bin:/sbin
export PATH

/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /lower /overlay /newroot
/bin/busybox --install -s /bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

run= debug=0
for arg in $(cat /proc/cmdline); do
  case $arg in
    styx.run=*) run=${arg#styx.run=} ;;
    styx.debug=1) debug=1 ;;
  esac
done

if [ "$debug" = 1 ]; then
  set -x
else
  # Only KERN_EMERG on the console, also for what modules print later. Not
  # 0: a panic raises the level to print its report only when it is not 0.
  echo 1 > /proc/sys/kernel/printk
fi

# report STATUS: hands the exit status to the host and powers off.
report() {
  echo "STYX-VM-STATUS $1" > /dev/ttyS1
  sync
  # "reboot: Power down" is KERN_EMERG; nobody needs it after the command.
  [ "$debug" = 1 ] || echo 0 > /proc/sys/kernel/printk
  poweroff -f
}

# fail MESSAGE: boot went wrong. The kernel log is quiet by default, so its
# tail is printed to the console for whoever has to debug it.
fail() {
  echo "styx-vm: $*" >&2
  echo "styx-vm: last kernel messages:" >&2
  dmesg | tail -n 30 >&2
  echo "STYX-VM-BOOT-FAILED" > /dev/ttyS1
  sync
  poweroff -f
}

[ -n "$run" ] || fail "no styx.run= on the kernel command line"

# Load what the initramfs carries (listed by vm.sh; busybox modprobe resolves
# the order from modules.dep). One by one, so a module the CPU cannot use
# (aesni-intel without AES-NI under TCG) does not stop the others.
for m in $(cat /etc/styx-vm/modules); do
  modprobe "$m" 2>/dev/null || echo "styx-vm: could not load module $m" >&2
done

# 9p over virtio: msize sets the request size (bigger means fewer round trips
# when node reads its large binary); cache=loose lets the guest cache the
# read-only host root, which keeps node and npx startup fast.
ninep_opts=trans=virtio,version=9p2000.L,msize=262144,cache=loose
mount -t 9p -o "ro,$ninep_opts" hostroot /lower || fail "cannot mount the host root (9p tag hostroot)"

# A tmpfs upper layer: the guest can write anywhere (charon's /etc/ipsec.d,
# /var/lib, npm's cache in /root) and nothing reaches the host.
mount -t tmpfs -o mode=0755 overlay-upper /overlay || fail "cannot mount the tmpfs for the overlay"
mkdir -p /overlay/upper /overlay/work
mount -t overlay -o lowerdir=/lower,upperdir=/overlay/upper,workdir=/overlay/work overlay /newroot \
  || fail "cannot mount the overlay root"

# The spec is read now: /tmp and /run of the new root get fresh tmpfs below.
[ -f "/lower$run/cmd.sh" ] || fail "no run spec at $run"
mkdir -p /spec
cp "/lower$run/cmd.sh" "/lower$run/share" "/lower$run/tty" "/lower$run/kver" "/lower$run/moddir" "/lower$run/kmod" /spec/ \
  || fail "cannot read the run spec in $run"
share=$(cat /spec/share)
kver=$(cat /spec/kver)
moddir=$(cat /spec/moddir)
kmod=$(cat /spec/kmod)

# Fresh /tmp and /run before the checkout is mounted: a checkout under /tmp
# mounted first would be hidden by the tmpfs.
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
# /var/run is a symlink to /run on Debian, so this covers both.
mount -t tmpfs -o mode=0755 run /newroot/run
mkdir -p /newroot/run/netns /newroot/run/lock /newroot/run/styx-vm

# The checkout, read-write, at the path it has on the host, so the command's
# outputs (dist/, logs) land on the host. cache=loose as for the root: the
# host leaves the checkout alone while the VM runs, so nothing the guest
# caches goes stale, and what it writes reaches the host at the latest with
# the sync and unmount before power-off (below).
mkdir -p "/newroot$share"
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,cache=loose" styxshare "/newroot$share" \
  || fail "cannot mount the shared directory $share (9p tag styxshare)"

# Fresh kernel file systems for the new root: the host's /proc, /sys and /dev
# seen through 9p would describe the host, not this VM.
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /newroot/dev/pts
ln -sf pts/ptmx /newroot/dev/ptmx 2>/dev/null || true
mount -t tmpfs -o mode=1777 shm /newroot/dev/shm

# The whole module tree of the guest kernel, for modprobe in the command
# and for the kernel's own on-demand loading (request_module runs
# /sbin/modprobe in PID 1's root, which is this initramfs).
if [ -d "/lower$moddir" ]; then
  mkdir -p "/newroot/lib/modules/$kver" "/lib/modules/$kver"
  mount --bind "/lower$moddir" "/newroot/lib/modules/$kver"
  mount --bind "/lower$moddir" "/lib/modules/$kver"
else
  echo "styx-vm: module tree $moddir not found; modprobe will not work" >&2
fi
# Debian's container images leave kmod out. vm.sh then unpacks it into its
# cache (visible here through the host root) and the module tools point to
# it; without that, busybox's (no modprobe -n, no softdeps) stand in.
for t in modprobe lsmod rmmod insmod modinfo depmod; do
  [ ! -e "/newroot/sbin/$t" ] && [ ! -e "/newroot/bin/$t" ] || continue
  if [ -n "$kmod" ] && [ -x "/newroot$kmod" ]; then
    ln -s "$kmod" "/newroot/sbin/$t"
  elif [ -x /newroot/bin/busybox ]; then
    ln -s /bin/busybox "/newroot/sbin/$t"
  else
    mkdir -p /newroot/usr/local/lib/styx-vm
    [ -e /newroot/usr/local/lib/styx-vm/busybox ] || cp /bin/busybox /newroot/usr/local/lib/styx-vm/busybox
    ln -s /usr/local/lib/styx-vm/busybox "/newroot/sbin/$t"
  fi
done

hostname styx-vm
echo styx-vm > /newroot/etc/hostname
grep -q 'styx-vm' /newroot/etc/hosts 2>/dev/null || echo '127.0.1.1 styx-vm' >> /newroot/etc/hosts
ip link set lo up

cp /spec/cmd.sh /newroot/run/styx-vm/cmd.sh

# The command gets ttyS0 as its controlling terminal (setsid -c) when the
# host runs on a terminal. Otherwise its output goes through a pipe, so
# programs that check isatty (colours, progress bars) see what they would
# see on the host, and the serial line does not turn \n into \r\n.
tty=$(cat /spec/tty)
if [ "${tty%% *}" = 1 ]; then
  set -- ${tty#1}
  [ $# -eq 2 ] && stty -F /dev/ttyS0 rows "$1" cols "$2" 2>/dev/null
  setsid -c chroot /newroot /usr/bin/env -i /bin/bash /run/styx-vm/cmd.sh \
    </dev/ttyS0 >/dev/ttyS0 2>&1 &
  cmd=$!
else
  stty -F /dev/ttyS0 -onlcr 2>/dev/null
  mkfifo /out
  cat /out > /dev/ttyS0 &
  pump=$!
  setsid chroot /newroot /usr/bin/env -i /bin/bash /run/styx-vm/cmd.sh \
    </dev/null >/out 2>&1 &
  cmd=$!
fi
# While PID 1 waits here, the shell also reaps orphans (daemons the command
# started and left behind), so no zombie lingers for a test to trip over.
wait "$cmd"
status=$?

# Stop what the command left running (but not the output pump, which must
# drain the pipe first), then flush the shared directory and power off.
kill_rest() {
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = 1 ] || [ "$p" = "${pump:-}" ] || kill "-$1" "$p" 2>/dev/null
  done
}
kill_rest TERM
sleep 0.2
kill_rest KILL
[ -n "${pump:-}" ] && wait "$pump"
sync
umount "/newroot$share" 2>/dev/null || umount -l "/newroot$share" 2>/dev/null
report "$status"
