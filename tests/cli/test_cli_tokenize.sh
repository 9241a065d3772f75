#!/usr/bin/env bash
# test_cli_tokenize.sh: `imgsearch tokenize` end to end: the whole tokenizer
# corpus through --vocab --escaped must print exactly expected_ids.txt; a
# converted model (--text-model) truncates at its max_seq_length; --tokens;
# an empty line; and bad command lines (exit 2) or files (exit 1, one line).
# usage: test_cli_tokenize.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"
tok=$fixtures/tokenizer

same_as() { cmp -s "$work/out" "$1" || { echo "stdout differs from $1:" >&2; diff "$work/out" "$1" | head >&2; return 1; }; }
out_is() { [ "$(cat "$work/out")" = "$1" ] || { echo "stdout '$(cat "$work/out")', expected '$1'" >&2; return 1; }; }

check "corpus through the CLI" run 0 tokenize --vocab "$tok/vocab.txt" --max-len 256 --escaped <"$tok/corpus.txt"
check "corpus ids" same_as "$tok/expected_ids.txt"

printf 'Hello, World!\n\nunaffable caf\xc3\xa9\n' >"$work/in"
check "--tokens" run 0 tokenize --vocab "$tok/vocab.txt" --tokens <"$work/in"
check "--tokens output" out_is "$(printf '[CLS] hello , world ! [SEP]\n[CLS] [SEP]\n[CLS] una ##ffa ##ble cafe [SEP]')"
check "--max-len 4" run 0 tokenize --vocab "$tok/vocab.txt" --max-len 4 <"$work/in"
check "--max-len 4 output" out_is "$(printf '101 7592 1010 102\n101 102\n101 14477 20961 102')"

check "convert the tiny model" "$bin" convert "$fixtures/hf_tiny_bert" -o "$work/tiny.isw" >/dev/null
printf 'the cat sat on the mat. the cat sat on the mat. the cat sat on the mat.\n' >"$work/in2"
check "--text-model" run 0 tokenize --text-model "$work/tiny.isw" <"$work/in2"
check "--text-model truncates at max_seq_length 12" out_is "2 5 7 9 10 5 11 25 5 7 9 3"

check "no model" run 2 tokenize
check "both models" run 2 tokenize --vocab "$tok/vocab.txt" --text-model "$work/tiny.isw"
check "bad --max-len" run 2 tokenize --vocab "$tok/vocab.txt" --max-len 1
check "unknown option" run 2 tokenize --vocab "$tok/vocab.txt" --bogus
check "missing model file" run 1 tokenize --text-model "$work/absent.isw" </dev/null
check "missing model: one line" one_line
check "not a BERT model" run 1 tokenize --text-model "$fixtures/tokenizer/corpus.txt" </dev/null
check "help" run 0 tokenize --help
check "help text" contains out "--text-model"
finish
