#!/usr/bin/env bash
# The project's test command (`npm test`): installs what the tests need on a
# Debian machine, builds, runs the unit tests, then the interop tests
# against strongSwan in network namespaces, then the kernel data plane tests,
# and ends with one line
# `N passed, N failed[, N skipped]` summing the suites.
#
#   STYX_SKIP_INTEROP=1   unit tests only (and no strongSwan install)
#   STYX_SKIP_KERNEL=1    no kernel (XFRM) data plane tests, which need a kernel
#                         with ESP or, failing that, a VM (scripts/vm.sh)
#   STYX_KEEP_LOGS=1      keep interop logs under ${TMPDIR:-/tmp}/styx-interop
#   STYX_FORCE_NPM_CI=1   run npm ci even when node_modules looks current
#   CI=true               interop prerequisites that are missing fail instead of skipping
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib/deps.sh
. scripts/lib/deps.sh

passed=0 failed=0 skipped=0 status=0
failures=()
work=$(mktemp -d "${TMPDIR:-/tmp}/styx-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

step_failed() { styx_log "FAILED: $*"; failures+=("$*"); status=1; }
# A failed step that is not a test run (install, build) still counts as one
# failure, so the summary line agrees with the exit status.
setup_failed() { step_failed "$@"; failed=$((failed + 1)); }

# Runs mocha with the spec reporter, shown as it runs, and adds its
# 'N passing' / 'N failing' / 'N pending' to the totals. A mocha that dies
# before reporting (an import error, no test files) counts as one failure so
# the summary never claims success for a suite that did not run.
# mocha_prefix: a command that runs mocha somewhere else (in a VM).
mocha_prefix=()
run_mocha() {
  local name=$1; shift
  local out="$work/$name.out" rc=0 p f s
  styx_log "$name tests: ${mocha_prefix[*]+${mocha_prefix[*]} }mocha $*"
  ${mocha_prefix[@]+"${mocha_prefix[@]}"} npx mocha --reporter spec "$@" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
  # Strip colour codes before reading the counts.
  p=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -Eo '^ *[0-9]+ passing' | grep -Eo '[0-9]+' | tail -1 || true)
  f=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -Eo '^ *[0-9]+ failing' | grep -Eo '[0-9]+' | tail -1 || true)
  s=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -Eo '^ *[0-9]+ pending' | grep -Eo '[0-9]+' | tail -1 || true)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  if [ -z "$p$f" ] && [ $rc -ne 0 ]; then
    failed=$((failed + 1))
  fi
  [ $rc -eq 0 ] || step_failed "$name tests (mocha exit $rc)"
}

styx_check_node || exit 1

if [ "${STYX_SKIP_INTEROP:-0}" = 1 ]; then
  styx_log "STYX_SKIP_INTEROP=1: unit tests only"
else
  styx_apt_install "${STYX_APT_TEST_PACKAGES[@]}" || setup_failed "apt-get install"
  styx_stop_system_strongswan
fi

styx_npm_install || { styx_log "FAILED: npm install"; echo; echo "0 passed, 1 failed"; exit 1; }

styx_log "npm run build"
# tsc emits dist/ even with type errors, so the tests still run and report;
# the build failure alone makes the run fail.
npm run build || setup_failed "build (tsc reported errors)"

run_mocha unit --timeout 30000 --recursive 'dist/test/unit/**/*.test.js'

if [ "${STYX_SKIP_INTEROP:-0}" != 1 ]; then
  # --exit: a daemon a test forgot to stop must not hang the run; the
  # namespaces it lived in are reaped below.
  run_mocha interop --config test/interop/mocharc.json --timeout 180000 'dist/test/interop/**/*.test.js'
  if [ "$(id -u)" = 0 ]; then
    bash scripts/lib/netns.sh reap styxt >/dev/null 2>&1 || true
  fi
fi

if [ "${STYX_SKIP_INTEROP:-0}" != 1 ] && [ "${STYX_SKIP_KERNEL:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
  # The XFRM data plane against strongSwan, both in the kernel. Container and
  # CI kernels often lack ESP; then the suite runs in a VM booting Debian's
  # own kernel. Under an emulated CPU that VM is slow, and the harness
  # stretches its waits (STYX_TEST_SLOW, set by vm.sh).
  if esp_missing=$(bash scripts/lib/kernel-esp.sh 2>&1); then
    run_mocha kernel --config test/interop/mocharc.json 'dist/test/kernel/**/*.test.js'
  else
    styx_log "this kernel takes no ESP SA ($esp_missing): the kernel data plane tests run in a VM (scripts/vm.sh)"
    mocha_prefix=(bash scripts/vm.sh run --timeout 2400 --)
    run_mocha kernel --config test/interop/mocharc.json --timeout 1800000 'dist/test/kernel/**/*.test.js'
    mocha_prefix=()
  fi
  bash scripts/lib/netns.sh reap styxt >/dev/null 2>&1 || true
fi

for f in ${failures[@]+"${failures[@]}"}; do styx_log "failed step: $f"; done
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo
echo "$summary"
exit $status
