# cli_check.sh: the helpers the CLI test scripts share; source it after
# setting `bin` (the imgsearch binary). Defines $work (a temporary folder,
# removed on exit), counters, and:
#   check NAME CMD...        counts CMD's success as a pass
#   run STATUS ARGS...       runs imgsearch ARGS, expects exit STATUS, keeps stdout/stderr in $work/out, $work/err
#   contains out|err TEXT    TEXT is in the last run's stdout / stderr
#   one_line                 the last run's stderr is one line
#   finish                   prints "N passed, M failed" and exits accordingly
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name" >&2; fi
}

run() {
  local want=$1; shift
  "$bin" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "imgsearch $*: exit $got, expected $want; stderr:" >&2; cat "$work/err" >&2
    return 1
  fi
}

contains() { grep -qF -- "$2" "$work/$1" || { echo "'$2' not in $1:" >&2; cat "$work/$1" >&2; return 1; }; }
lacks() { ! grep -qF -- "$2" "$work/$1" || { echo "'$2' in $1:" >&2; cat "$work/$1" >&2; return 1; }; }
one_line() { [ "$(wc -l <"$work/err")" -eq 1 ] || { echo "stderr is not one line:" >&2; cat "$work/err" >&2; return 1; }; }

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
