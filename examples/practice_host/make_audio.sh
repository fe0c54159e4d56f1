#!/usr/bin/env bash
# Regenerate the demo's call audio: short synthetic receptionist and patient phrases, spoken by
# espeak-ng (Debian package espeak-ng) and turned into telephone-quality WAV by sox (package sox):
# 8 kHz, mono, 8-bit unsigned PCM, band-limited to 300-3400 Hz like a phone line.
# The seed concatenates these clips into calls. Usage: examples/practice_host/make_audio.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/audio"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install $tool" >&2; exit 1; }
done

# name|voice|speed (words per minute)|pitch (0-99)|text
clips=(
  "greeting|en-gb+f3|155|55|Good morning, The Dental Implant Clinic, how can I help?"
  "callback|en-gb+f2|155|50|Hello, this is The Dental Implant Clinic returning your call."
  "book_checkup|en-gb-x-rp+m3|150|40|Hi, I would like to book a check-up appointment, please."
  "date_of_birth|en-gb+f3|155|55|Of course. Could I take your date of birth, please?"
  "confirm|en-gb+f2|150|50|Lovely. That is booked for Tuesday at half past ten."
  "billing|en-gb-scotland+m1|145|35|I am calling about the invoice for my implant treatment."
  "put_through|en-gb+f3|150|55|I am sorry to hear that. Let me put you through to the practice manager."
  "goodbye|en-gb+f2|160|50|Thank you for calling. Goodbye."
)

for entry in "${clips[@]}"; do
  IFS='|' read -r name voice speed pitch text <<<"$entry"
  espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/$name.wav" "$text"
  # pad 0.3 s of silence either side, phone-line band, normalise, 8 kHz mono 8-bit unsigned
  sox "$tmp/$name.wav" -r 8000 -c 1 -b 8 -e unsigned-integer "$out/$name.wav" \
    highpass 300 lowpass 3400 pad 0.3 0.3 gain -n -3
  printf '%-14s %5.2f s\n' "$name" "$(soxi -D "$out/$name.wav")"
done
du -ch "$out"/*.wav | tail -n1
