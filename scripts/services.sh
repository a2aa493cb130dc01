#!/usr/bin/env bash
# Throwaway Redis, PostgreSQL and MariaDB for tests and local development.
#
#   eval "$(scripts/services.sh up)"        start (or reuse) all three; prints the export lines on stdout
#   scripts/services.sh up redis postgres   only these kinds
#   scripts/services.sh env                 reprint the export lines of the running servers
#   scripts/services.sh status              what runs
#   scripts/services.sh down [KIND...]      stop by PID (graceful, SIGKILL after ALLOT_SERVICES_STOP_TIMEOUT s), remove data
#
# Each server listens on a free 127.0.0.1 port with its data in a fresh temp dir. The state (PID, URL, port,
# temp dir per kind) lives in ALLOT_SERVICES_DIR (default: .services/ in the repo). Progress goes to stderr;
# stdout carries only the export lines (up, env) or the status lines (status).
# Missing server packages are installed with apt-get when running as root (src/lab/servers.ts: ensureInstalled).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${ALLOT_SERVICES_DIR:-$REPO/.services}"
STOP_TIMEOUT="${ALLOT_SERVICES_STOP_TIMEOUT:-10}"
ALL_KINDS=(postgres mariadb redis)

say() { printf '[services] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

usage() {
  cat >&2 <<'EOF'
usage: scripts/services.sh up|down|status|env [redis] [postgres] [mariadb]
EOF
  exit 2
}

env_name() {
  case "$1" in
    postgres) echo DATABASE_URL_PG ;;
    mariadb) echo DATABASE_URL_MYSQL ;;
    redis) echo REDIS_URL ;;
  esac
}

# Stop signal: PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every client to disconnect).
stop_signal() {
  case "$1" in
    postgres) echo INT ;;
    *) echo TERM ;;
  esac
}

comm_matches() { # kind comm
  case "$1:$2" in
    redis:redis-server | postgres:postgres | mariadb:mariadbd | mariadb:mysqld) return 0 ;;
    *) return 1 ;;
  esac
}

read_state() { # kind field -> value (empty when missing)
  local file="$STATE_DIR/$1.$2"
  if [[ -r "$file" ]]; then
    local value
    value="$(<"$file")"
    printf '%s' "${value%%$'\n'*}"
  fi
}

# A process that exists and is not a zombie (a detached server is reaped by init, maybe late).
pid_running() {
  local pid="$1" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

# The recorded PID runs and is still the server we started (not a recycled PID).
kind_running() {
  local kind="$1" pid comm
  pid="$(read_state "$kind" pid)"
  pid_running "$pid" || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  comm_matches "$kind" "$comm"
}

remove_state() { # kind
  local kind="$1" dir
  dir="$(read_state "$kind" dir)"
  # Only ever delete a temp dir this tool made.
  if [[ -n "$dir" && -d "$dir" && "$(basename "$dir")" == allot-"$kind"-* ]]; then
    rm -rf -- "$dir"
  fi
  rm -f -- "$STATE_DIR/$kind.pid" "$STATE_DIR/$kind.url" "$STATE_DIR/$kind.port" "$STATE_DIR/$kind.dir"
}

parse_kinds() { # args... -> KINDS array
  KINDS=()
  local arg
  for arg in "$@"; do
    case "$arg" in
      redis | postgres | mariadb) KINDS+=("$arg") ;;
      mysql) KINDS+=(mariadb) ;;
      pg | postgresql) KINDS+=(postgres) ;;
      *) say "unknown kind: $arg"; usage ;;
    esac
  done
  if ((${#KINDS[@]} == 0)); then KINDS=("${ALL_KINDS[@]}"); fi
}

lock_state() {
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE_DIR/.lock"
    flock 9
  fi
}

print_env() { # kinds...
  local kind
  for kind in "${ALL_KINDS[@]}"; do
    [[ " $* " == *" $kind "* ]] || continue
    if kind_running "$kind"; then
      printf 'export %s=%s\n' "$(env_name "$kind")" "$(read_state "$kind" url)"
    fi
  done
}

cmd_up() {
  lock_state
  local kind to_start=()
  for kind in "${KINDS[@]}"; do
    if kind_running "$kind"; then
      say "$kind already running (pid $(read_state "$kind" pid)), reusing it"
    else
      [[ -e "$STATE_DIR/$kind.pid" || -e "$STATE_DIR/$kind.dir" ]] && say "$kind: clearing stale state"
      remove_state "$kind"
      to_start+=("$kind")
    fi
  done
  if ((${#to_start[@]} > 0)); then
    command -v node >/dev/null 2>&1 || die "node is not on PATH"
    local state_abs started
    state_abs="$(cd "$STATE_DIR" && pwd)"
    started="$(now_ms)"
    say "starting ${to_start[*]} ..."
    # --import tsx resolves from the working directory: run from the repo.
    (cd "$REPO" && node --import tsx src/lab/servers.ts up --state-dir "$state_abs" "${to_start[@]}") >&2 ||
      die "could not start ${to_start[*]} (see the messages above)"
    for kind in "${to_start[@]}"; do
      kind_running "$kind" || die "$kind did not come up (state in $STATE_DIR)"
      say "$kind up: pid $(read_state "$kind" pid), 127.0.0.1:$(read_state "$kind" port), data in $(read_state "$kind" dir)"
    done
    say "started ${to_start[*]} in $(($(now_ms) - started)) ms"
  fi
  print_env "${KINDS[@]}"
}

stop_kind() { # kind
  local kind="$1" pid signal started deadline
  if [[ ! -e "$STATE_DIR/$kind.pid" && ! -e "$STATE_DIR/$kind.dir" ]]; then
    return 0
  fi
  pid="$(read_state "$kind" pid)"
  if kind_running "$kind"; then
    signal="$(stop_signal "$kind")"
    started="$(now_ms)"
    deadline=$((started + STOP_TIMEOUT * 1000))
    kill -s "$signal" "$pid" 2>/dev/null || true
    kill -s CONT "$pid" 2>/dev/null || true # a SIGSTOPped server would never act on the stop signal
    while pid_running "$pid" && (($(now_ms) < deadline)); do sleep 0.05; done
    if pid_running "$pid"; then
      say "$kind (pid $pid) did not stop within ${STOP_TIMEOUT}s: SIGKILL"
      # Started detached, the server leads its own process group: take anything else in that group too.
      # (PostgreSQL backends make their own groups; they exit by themselves once the postmaster is gone.)
      kill -s KILL -- "-$pid" 2>/dev/null || kill -s KILL "$pid" 2>/dev/null || true
      while pid_running "$pid" && (($(now_ms) < deadline + 5000)); do sleep 0.05; done
    fi
    # Leftovers of the group, if any.
    kill -s KILL -- "-$pid" 2>/dev/null || true
    say "stopped $kind (pid $pid) in $(($(now_ms) - started)) ms"
  else
    say "$kind (pid ${pid:-?}) was not running; removing its state"
  fi
  remove_state "$kind"
}

cmd_down() {
  [[ -d "$STATE_DIR" ]] || { say "nothing to stop"; return 0; }
  lock_state
  local kind
  for kind in "${KINDS[@]}"; do stop_kind "$kind"; done
  # Drop the state dir once no kind is recorded in it any more.
  if ! compgen -G "$STATE_DIR/*.pid" >/dev/null && ! compgen -G "$STATE_DIR/*.dir" >/dev/null; then
    rm -f -- "$STATE_DIR/.lock"
    rmdir -- "$STATE_DIR" 2>/dev/null || true
  fi
}

cmd_status() {
  local kind pid
  for kind in "${KINDS[@]}"; do
    pid="$(read_state "$kind" pid)"
    if kind_running "$kind"; then
      printf '%-8s running  pid %-7s %s  data %s\n' "$kind" "$pid" "$(read_state "$kind" url)" "$(read_state "$kind" dir)"
    elif [[ -n "$pid" ]]; then
      printf '%-8s dead     pid %-7s (stale state; run: scripts/services.sh down)\n' "$kind" "$pid"
    else
      printf '%-8s stopped\n' "$kind"
    fi
  done
}

(($# >= 1)) || usage
command="$1"
shift
parse_kinds "$@"
case "$command" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env "${KINDS[@]}" ;;
  -h | --help | help) usage ;;
  *) say "unknown command: $command"; usage ;;
esac
