#!/usr/bin/env bash
# Exits 0 when this kernel takes an ESP SA (esp4 and xfrm_user present),
# tried in a scratch network namespace so nothing of it stays. Otherwise
# exits 1 and says on stderr what the kernel answered. Needs root.
#
#   bash scripts/lib/kernel-esp.sh
# Used by scripts/test.sh (run the kernel data plane suite here or in a VM)
# and by that suite itself (skip, or fail under CI, when ESP is missing).
set -u

ns=styx-espprobe-$$
if ! err=$(ip netns add "$ns" 2>&1); then
  echo "cannot create a network namespace (not root?): $err" >&2
  exit 1
fi
trap 'ip netns del "$ns" 2>/dev/null' EXIT
# Any AEAD SA will do: what is probed is whether the kernel has ESP at all.
if ! err=$(ip -n "$ns" xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode tunnel \
    aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128 2>&1); then
  echo "the kernel refuses ESP SAs: $err" >&2
  exit 1
fi
exit 0
