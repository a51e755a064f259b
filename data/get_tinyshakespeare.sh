#!/usr/bin/env bash
# Installs tiny shakespeare into data/tinyshakespeare/input.txt and checks its sha256.
#
#   data/get_tinyshakespeare.sh [LOCAL_COPY]
#
# Sources, in order: LOCAL_COPY (argument), $CHARRNN_TINYSHAKESPEARE (a local file), then the public URL
# that char-rnn and nanoGPT use. An installed file with the right checksum is kept as it is.
set -euo pipefail

SHA256=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed
URL=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest="$here/tinyshakespeare/input.txt"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

if sha_ok "$dest"; then
  echo "data: $dest is installed (sha256 ok)"
  exit 0
fi
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp "$dest.XXXXXX")
trap 'rm -f "$tmp"' EXIT

install_from() { # $1: description
  if sha_ok "$tmp"; then
    mv "$tmp" "$dest"
    echo "data: installed $dest from $1 (sha256 ok)"
    exit 0
  fi
  echo "data: $1 does not have the expected sha256 $SHA256; ignoring it" >&2
}

for src in "${1:-}" "${CHARRNN_TINYSHAKESPEARE:-}"; do
  [ -n "$src" ] || continue
  if [ -f "$src" ]; then
    cp "$src" "$tmp"
    install_from "$src"
  else
    echo "data: $src: no such file" >&2
  fi
done

if command -v curl >/dev/null 2>&1; then
  curl -fsSL --max-time 60 -o "$tmp" "$URL" 2>/dev/null && install_from "$URL"
elif command -v wget >/dev/null 2>&1; then
  wget -q -T 60 -O "$tmp" "$URL" 2>/dev/null && install_from "$URL"
fi

cat >&2 <<MSG
data: could not install tiny shakespeare.
  Download it from $URL
  (sha256 $SHA256) and run
    data/get_tinyshakespeare.sh /path/to/input.txt
  or set CHARRNN_TINYSHAKESPEARE=/path/to/input.txt.
MSG
exit 1
