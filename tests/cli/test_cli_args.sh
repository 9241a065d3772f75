#!/usr/bin/env bash
# test_cli_args.sh: the command line every imgsearch command shares (cli/main.c's
# command table, cli/args.c's parser):
# - the top-level help lists every command; 'help CMD', 'CMD --help' and
#   'CMD -h' print that command's own usage, exit 0;
# - a mistyped command or option gets "did you mean", exit 2;
# - every command rejects an unknown option (also as --name=value), and a flag
#   given a value, with exit 2 and the hint naming the command;
# - every command that runs a model or a search documents --device auto|cpu|cuda
#   and --gpu N, rejects bad values (exit 2, naming the option and the valid
#   values) and runs with --device cpu (small fixtures);
# - '--' ends the options: a file whose name begins with '-' is an operand.
# usage: test_cli_args.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$(cd "$2" && pwd)
case $bin in /*) ;; */*) bin=$PWD/$bin ;; esac  # the '--' checks run in another folder
. "$(dirname "$0")/cli_check.sh"

commands="index search index-set serve embed-text classify embed-image knn fid preprocess tokenize convert info bench devices version help"
device_commands="index search serve embed-text classify embed-image fid knn bench"
no_device_commands="index-set preprocess tokenize convert info devices version help"  # they run no model

# ---- help ----
check "--help" run 0 --help
cp "$work/out" "$work/main_help"
check "-h" run 0 -h
check "-h is --help" cmp -s "$work/out" "$work/main_help"
check "help" run 0 help
check "help is --help" cmp -s "$work/out" "$work/main_help"
check "no command: usage on stderr" run 2
check "no command: lists the commands" contains err "  search INDEX"
listed() { grep -qE "^  $1( |\$)" "$work/main_help" || { echo "'$1' is not listed in --help" >&2; return 1; }; }
for c in $commands; do
  check "--help lists $c" listed "$c"
  check "help $c" run 0 help "$c"
  check "help $c prints its usage" contains out "usage: imgsearch $c"
  cp "$work/out" "$work/help_$c"
  check "$c --help" run 0 "$c" --help
  check "$c --help is help $c" cmp -s "$work/out" "$work/help_$c"
  check "$c -h" run 0 "$c" -h
  check "$c -h is help $c" cmp -s "$work/out" "$work/help_$c"
  check "$c --help writes nothing on stderr" test ! -s "$work/err"
done
check "--help lists no command twice" test "$(grep -cE '^  [a-z]' "$work/main_help")" -eq "$(echo $commands | wc -w)"
check "--version is version" run 0 --version
check "--version names imgsearch" contains out "imgsearch "

# ---- did you mean ----
for typo in serch:search indx:index embed-txt:embed-text clasify:classify knm:knn devics:devices; do
  check "${typo%%:*}" run 2 "${typo%%:*}"
  check "${typo%%:*}: did you mean '${typo#*:}'" contains err "unknown command '${typo%%:*}' (did you mean '${typo#*:}'?)"
  check "${typo%%:*}: the hint" contains err "(try 'imgsearch --help')"
done
check "help with a typo" run 2 help serch
check "help with a typo: did you mean" contains err "did you mean 'search'?"
check "nothing near" run 2 frobnicate
check "nothing near: no suggestion" test -z "$(grep 'did you mean' "$work/err")"
check "a top-level option" run 2 --bogus
check "a top-level option named" contains err "unknown option '--bogus'"
check "an option typo" run 2 knn --devise cpu
check "an option typo: did you mean" contains err "unknown option '--devise' (did you mean '--device'?)"
check "an option typo in index" run 2 index --image-modle x
check "an option typo in index: did you mean" contains err "did you mean '--image-model'?"

# ---- unknown options: exit 2 everywhere, before anything runs ----
for c in $commands; do
  check "$c --bogus" run 2 "$c" --bogus </dev/null
  check "$c --bogus named" contains err "unknown option '--bogus'"
  check "$c --bogus hint" contains err "(try 'imgsearch $c --help')"
  check "$c --bogus: nothing on stdout" test ! -s "$work/out"
  check "$c --bogus=1" run 2 "$c" --bogus=1 </dev/null
done
for c in version devices; do
  check "$c takes no operand" run 2 "$c" extra
  check "$c names the operand" contains err "unexpected argument 'extra'"
done
check "help takes one command" run 2 help index search
check "a flag given a value" run 2 knn a.npy b.npy -k 3 --json=yes
check "a flag given a value: says so" contains err "--json takes no value"
check "help given a value" run 2 info --help=yes
check "a missing value" run 2 knn a.npy b.npy -k
check "a missing value: says so" contains err "-k needs a value"

# ---- --device and --gpu ----
for c in $device_commands; do
  check "$c documents --device" grep -qF -- "--device auto|cpu|cuda" "$work/help_$c"
  check "$c documents --gpu" grep -qF -- "--gpu N" "$work/help_$c"
  check "$c --device tpu" run 2 "$c" --device tpu
  check "$c --device tpu says what is valid" contains err "--device 'tpu': expected auto, cpu or cuda"
  check "$c --device tpu: one message and the hint" test "$(wc -l <"$work/err")" -eq 2
  check "$c --device=tpu" run 2 "$c" --device=tpu
  check "$c --device without a value" run 2 "$c" --device
  check "$c --device without a value: says so" contains err "--device needs a value"
  check "$c --gpu x" run 2 "$c" --gpu x
  check "$c --gpu x: says the range" contains err "--gpu 'x': expected an integer in 0..63"
  check "$c --gpu -1" run 2 "$c" --gpu -1
done
for c in $no_device_commands; do
  check "$c takes no --device" run 2 "$c" --device cpu </dev/null
done

# Each of them runs on the CPU when asked, on small fixtures.
check "image model" run 0 convert "$fixtures/inception/tv_zip.pt" -o "$work/tv.isw"
check "text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"
mkdir -p "$work/photos"
cp "$fixtures/images/horse.png" "$fixtures/images/jpg_444.jpg" "$work/photos/"
img=$work/photos/horse.png
check "classify --device cpu" run 0 classify "$img" --image-model "$work/tv.isw" --device cpu --gpu 0
check "embed-image --device cpu" run 0 embed-image "$img" --image-model "$work/tv.isw" -o "$work/e.npy" --device cpu --gpu 0
check "embed-text --device cpu" run 0 embed-text --text-model "$work/text.isw" --text zebra --device cpu --gpu 0
check "embed-text --device=cpu" run 0 embed-text --text-model "$work/text.isw" --text zebra --device=cpu
check "index --device cpu" run 0 index "$work/photos" -o "$work/idx" --image-model "$work/tv.isw" \
  --text-model "$work/text.isw" --device cpu --gpu 0 --threads 1
check "search --device cpu" run 0 search "$work/idx" --image "$img" --text zebra -k 1 --device cpu --gpu 0
check "search --device cpu: the image finds itself" contains out "$img"
check "knn --device cpu" run 0 knn "$fixtures/knn/table.npy" "$fixtures/knn/queries.npy" -k 3 --device cpu --gpu 0
check "knn --device cpu: on the cpu" contains err "on cpu"
check "bench --device cpu" run 0 bench --quick --device cpu --gpu 0 -w knn --knn-shape 100:8:1:1 -r 1 --seconds 0 -o md
check "bench --device cpu: on the cpu" contains out "(cpu, "

# ---- '--' ends the options ----
cp "$work/tv.isw" "$work/-model.isw"
cp "$img" "$work/-horse.png"
cd "$work" || exit 1
check "info -- -model.isw" run 0 info -- -model.isw
check "without --, -model.isw is an option" run 2 info -model.isw
check "preprocess -- -horse.png" run 0 preprocess -o pre.npy -- -horse.png
check "classify -- -horse.png" run 0 classify --image-model tv.isw --device cpu -- -horse.png
check "classify -- names it" contains out "-horse.png"
check "embed-image -- -horse.png" run 0 embed-image --image-model tv.isw --device cpu -o e2.npy -- -horse.png
check "index -- -horse.png" run 0 index --image-model tv.isw --device cpu -o idx2 -- -horse.png
check "knn --: operands only" run 0 knn -k 1 --device cpu -- "$fixtures/knn/table.npy" "$fixtures/knn/queries.npy"
check "-- then an option is an operand" run 2 version -- --json
check "-- then an option is an operand: named" contains err "unexpected argument '--json'"
finish
