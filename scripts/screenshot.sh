#!/usr/bin/env bash
# Makes docs/serve.png, the README's picture of `imgsearch serve`: the sample
# images indexed with the synthetic Inception-v3 and the tiny test text model
# (results not meaningful, as the page says), served on a free loopback port,
# rendered by headless Chromium. usage: scripts/screenshot.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/build}" && pwd)/imgsearch
chromium=$(command -v chromium-headless-shell || command -v chromium || true)
[ -n "$chromium" ] || { echo "screenshot: no headless Chromium (apt-get install chromium-headless-shell)" >&2; exit 1; }
work=$(mktemp -d /tmp/imgsearch-demo.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/photos" && cp "$root"/data/samples/*.{png,jpg} "$work/photos/"
"$bin" convert --synthetic -o "$work/iv3.isw" >/dev/null
"$bin" convert "$root/tests/fixtures/hf_tiny_bert" -o "$work/text.isw" >/dev/null
"$bin" index "$work/photos" -o "$work/photos.idx" --image-model "$work/iv3.isw" \
  --text-model "$work/text.isw" --device cpu >/dev/null 2>&1
(cd "$work" && exec "$bin" serve photos.idx --port 0 --device cpu 2>serve.log) & pid=$!
for _ in $(seq 100); do grep -q "on http://" "$work/serve.log" && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*/" "$work/serve.log")
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000 \
  --window-size=1000,700 --screenshot="$work/serve.png" "${url}?text=a%20cat%20on%20a%20sofa&k=8" 2>/dev/null
# 256 colors where Pillow is at hand: a third of the bytes
python3 -c "from PIL import Image; Image.open('$work/serve.png').convert('RGB').quantize(256, dither=0).save('$root/docs/serve.png', optimize=True)" 2>/dev/null ||
  cp "$work/serve.png" "$root/docs/serve.png"
echo "wrote $root/docs/serve.png"
