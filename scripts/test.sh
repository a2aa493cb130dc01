#!/usr/bin/env bash
# What `npm test` runs: typecheck, lint, the build (dist/, incremental: about a second when nothing
# changed; the CLI tests run the compiled `bin/allot.js`), then every test/**/*.test.ts with
# throwaway Redis, PostgreSQL and MariaDB servers (scripts/services.sh) that are stopped again
# however the run ends.
#
#   npm test                              everything
#   npm test -- test/http                 only the test files under test/http (typecheck and lint still run)
#   npm test -- test/a.test.ts --test-name-pattern=claim
#                                         arguments starting with - go to node's test runner
#   ALLOT_SKIP_CHECKS=1 npm test          skip typecheck and lint (the build still runs)
#
# The servers are private to this run (their own state dir), so a `scripts/services.sh up` of yours is
# neither reused nor stopped. The exit code is the test runner's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

filters=()
node_args=()
for arg in "$@"; do
  case "$arg" in
    -*) node_args+=("$arg") ;;
    *) filters+=("$arg") ;;
  esac
done

if [[ "${ALLOT_SKIP_CHECKS:-}" != 1 ]]; then
  npm run typecheck
  npm run lint
fi

# Tests that spawn the CLI run dist/: build it from the current sources first. tsc emits even when
# it reports type errors, so with ALLOT_SKIP_CHECKS=1 a type error elsewhere does not stop the run.
if ! npm run --silent build >&2; then
  echo "scripts/test.sh: warning: the build reported errors (above); tests that run dist/ may fail" >&2
  [[ "${ALLOT_SKIP_CHECKS:-}" == 1 ]] || exit 1
fi

# Child processes the tests start from src/ (race-lab workers, the simulated rail) run the fresh
# dist/ build instead of compiling the sources again through tsx (src/adapters/system/child-module.ts).
export ALLOT_CHILD_FROM_DIST=1

# Test files: all of test/**/*.test.ts, or those under / equal to the given paths.
if ((${#filters[@]} == 0)); then
  filters=(test)
fi
for path in "${filters[@]}"; do
  [[ -e "$path" ]] || { echo "scripts/test.sh: no such test file or directory: $path" >&2; exit 2; }
done
mapfile -t files < <(find "${filters[@]}" -type f -name '*.test.ts' | sort -u)
if ((${#files[@]} == 0)); then
  echo "scripts/test.sh: no *.test.ts files under: ${filters[*]}" >&2
  exit 2
fi

ALLOT_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/allot-test-services.XXXXXX")"
export ALLOT_SERVICES_DIR

# shellcheck disable=SC2317 # invoked by the EXIT trap
services_down() {
  local rc=$?
  trap - EXIT INT TERM HUP
  bash scripts/services.sh down >&2 || true
  rm -rf -- "$ALLOT_SERVICES_DIR"
  exit "$rc"
}
trap services_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# An assignment keeps the exit status of services.sh (eval "$(...)" alone would hide a failure).
service_env="$(bash scripts/services.sh up)"
eval "$service_env"

# Test files that start every server they use themselves (Sentinel, Cluster, Redlock nodes, an etcd
# cluster, a private Redis) and never touch the shared Redis: they run in a second test process
# beside the others, so their server start-ups and failovers overlap the main run instead of adding
# to it. Everything else runs one file at a time (some fault tests FLUSHALL or pause the shared Redis).
ISOLATED_RE='^test/lock/(redis-sentinel|redis-cluster|redlock|etcd|compat-redis-semaphore|sigstop-topologies)\.test\.ts$'
main_files=()
side_files=()
for f in "${files[@]}"; do
  if [[ "$f" =~ $ISOLATED_RE ]]; then side_files+=("$f"); else main_files+=("$f"); fi
done

run_tests() {
  node --import tsx --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec "${node_args[@]}" "$@"
}

# The summary of one test process's spec output: "tests pass fail skipped"; tests cancelled (a file
# that timed out) count as failed.
summary_of() {
  awk '/^ℹ tests /{t=$3} /^ℹ pass /{p=$3} /^ℹ fail /{f+=$3} /^ℹ cancelled /{f+=$3} /^ℹ skipped /{s=$3} END{print t+0, p+0, f+0, s+0}' "$1"
}

side_log="$ALLOT_SERVICES_DIR/side-tests.log"
side_pid=""
if ((${#side_files[@]} > 0 && ${#main_files[@]} > 0)); then
  run_tests "${side_files[@]}" > "$side_log" 2>&1 &
  side_pid=$!
elif ((${#side_files[@]} > 0)); then
  main_files=("${side_files[@]}")
fi

main_log="$ALLOT_SERVICES_DIR/main-tests.log"
set +e
run_tests "${main_files[@]}" 2>&1 | tee "$main_log"
rc=${PIPESTATUS[0]}
side_rc=0
if [[ -n "$side_pid" ]]; then
  wait "$side_pid"
  side_rc=$?
  echo
  echo "# the self-contained lock backend tests, run beside the others: ${side_files[*]}"
  cat "$side_log"
fi
set -e

read -r t1 p1 f1 s1 < <(summary_of "$main_log")
t2=0 p2=0 f2=0 s2=0
[[ -n "$side_pid" ]] && read -r t2 p2 f2 s2 < <(summary_of "$side_log")
echo "# all test processes: tests $((t1 + t2)), pass $((p1 + p2)), fail $((f1 + f2)), skipped $((s1 + s2))"
echo "$((p1 + p2)) passed, $((f1 + f2)) failed"
if ((rc != 0)); then exit "$rc"; fi
exit "$side_rc"
