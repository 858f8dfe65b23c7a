#!/usr/bin/env bash
# Regenerates config/samples/hello.wav, the speech `make run` captions (committed; run this only
# to change it). espeak-ng speech, 16 kHz mono 16-bit, sentences the offline engine gets mostly
# right, 0.8 s of silence after each so every sentence ends in its own final.
set -euo pipefail
cd "$(dirname "$0")/.."
out=config/samples/hello.wav
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sentences=(
  "the library closes at six on saturday"
  "what is the weather like today"
  "one two three four five"
)
parts=()
for i in "${!sentences[@]}"; do
  espeak-ng -v en-us -s 150 -w "$work/raw$i.wav" "${sentences[$i]}"
  sox -D "$work/raw$i.wav" -r 16000 -c 1 -b 16 -e signed-integer "$work/$i.wav" pad 0 0.8
  parts+=("$work/$i.wav")
done
sox -D "${parts[@]}" "$out"
soxi "$out" | grep -E "Duration|File Size"
