#!/usr/bin/env bash
# test_cli.sh: the imgsearch command end to end: help, version, devices, info on
# a good file (text and JSON), and the one-line errors and exit codes for bad
# files and bad command lines.
# usage: test_cli.sh IMGSEARCH MAKE_FIXTURE FIXTURES_DIR
set -u
bin=$1 make_fixture=$2 fixtures=$3
. "$(dirname "$0")/cli_check.sh"

check "help" run 0 --help
check "help lists info" contains out "info FILE"
check "no args is a usage error" run 2
check "unknown command" run 2 frobnicate
check "unknown command named" contains err "unknown command 'frobnicate'"
check "version" run 0 version
check "version names libpng" contains out "libpng "
check "version names openblas" contains out "openblas "
check "devices" run 0 devices
check "devices lists cpu" contains out "cpu "
check "devices says what cuda is" grep -qE "^cuda" "$work/out"

"$make_fixture" "$work/model.isw" || { echo "make_fixture failed" >&2; exit 1; }
check "info" run 0 info "$work/model.isw"
check "info architecture" contains out '"fixture"'
check "info labels preview" contains out '"tench", "goldfish"'
check "info label escapes" contains out '"quote \" and backslash \\"'
check "info tensor row" contains out "conv.weight"
check "info shape" contains out "(4, 3, 3, 3)"
check "info scalar shape" contains out "()"
check "info verify" run 0 info --verify "$work/model.isw"
check "info verify says ok" contains out "tensor data ok"
check "info json" run 0 info --json "$work/model.isw"
if command -v python3 >/dev/null; then
  check "info json parses" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["tensors"]) == 5 and d["metadata"][7]["value"][5] == "tab\there"' "$work/out"
fi

check "missing file" run 1 info "$work/nope.isw"
check "missing file message" contains err "No such file"
check "missing file one line" one_line
printf 'not a weight file at all, but long enough to hold a header......................................................................' >"$work/text.isw"
check "text file" run 1 info "$work/text.isw"
check "text file names magic" contains err "magic is 6e 6f 74 20"
check "text file one line" one_line
head -c 300 "$work/model.isw" >"$work/short.isw"
check "truncated file" run 1 info "$work/short.isw"
check "truncated file names file_size" contains err "file_size"
cp "$work/model.isw" "$work/flipped.isw"
size=$(stat -c %s "$work/flipped.isw")
printf '\x55' | dd of="$work/flipped.isw" bs=1 seek=$((size - 2)) conv=notrunc status=none
check "flipped data byte opens without --verify" run 0 info "$work/flipped.isw"
check "flipped data byte fails --verify" run 1 info --verify "$work/flipped.isw"
check "flipped data byte names the tensor" contains err "('eps'): crc32"
check "info without file" run 2 info
check "info bad option" run 2 info --bogus "$work/model.isw"
check "info two files" run 2 info "$work/model.isw" "$work/model.isw"

# convert: a torchvision checkpoint (fixtures/inception: channel widths / 16)
check "convert" run 0 convert "$fixtures/inception/tv_zip.pt" -o "$work/iv3.isw"
check "convert summary" contains out "inception_v3, 190 tensors"
check "converted file info" run 0 info --verify "$work/iv3.isw"
check "converted architecture" contains out '"inception_v3"'
check "converted layout" contains out '"OHWI"'
check "converted labels" contains out '"tench", "goldfish"'
check "convert f16" run 0 convert "$fixtures/inception/fid_zip.pt" --dtype f16 -o "$work/fid.isw"
check "convert f16 summary" contains out "inception_v3_fid"
check "convert f16 info" run 0 info "$work/fid.isw"
check "convert f16 dtype" contains out "Mixed_7c.branch_pool.weight                  f16"
check "convert without -o" run 2 convert "$fixtures/inception/tv_zip.pt"
check "convert bad dtype" run 2 convert "$fixtures/inception/tv_zip.pt" --dtype f64 -o "$work/x.isw"
check "convert bad arch" run 2 convert "$fixtures/inception/tv_zip.pt" --arch resnet -o "$work/x.isw"
check "convert text file" run 1 convert "$fixtures/inception/expected_tv.txt" -o "$work/x.isw"
check "convert text file message" contains err "not a PyTorch checkpoint"
check "convert text file one line" one_line
check "convert wrong arch" run 1 convert "$fixtures/inception/tv_zip.pt" --arch bert -o "$work/x.isw"
check "convert wrong arch message" contains err "model directory"
check "no output after failures" test ! -e "$work/x.isw"
check "convert missing input" run 1 convert "$work/none.pt" -o "$work/x.isw"

# convert: a BERT model directory, and one whose config does not match its weights
check "convert bert dir" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/bert.isw"
check "convert bert summary" contains out "bert"
check "bert info" run 0 info "$work/bert.isw"
check "bert fused qkv" contains out "encoder.layer.0.attention.qkv.weight"
cp -r "$fixtures/hf_tiny_bert" "$work/bert3"
sed -i 's/"num_hidden_layers": *2/"num_hidden_layers": 3/' "$work/bert3/config.json"
check "bert config mismatch" run 1 convert "$work/bert3" -o "$work/x.isw"
check "bert config mismatch names the key" contains err "missing: encoder.layer.2.attention.self.query.weight"

finish
