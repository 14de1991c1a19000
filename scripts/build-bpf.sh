#!/usr/bin/env bash
# Compile the BPF programs into dist/ (gitignored): the L4 fast path's tc program (src/l4/fastpath/*.bpf.c) into
# dist/l4/fastpath/, the listeners' TCP-mode splice (src/listeners/splice/*.bpf.c) into dist/listeners/splice/.
# Needs clang (Debian: clang) and the libbpf headers (Debian: libbpf-dev); scripts/install-deps.sh installs both.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "build-bpf: clang not found: the fast path's BPF program cannot be compiled. Fix: apt-get install clang (or run scripts/install-deps.sh)" >&2
  exit 1
fi
if [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
  echo "build-bpf: /usr/include/bpf/bpf_helpers.h not found. Fix: apt-get install libbpf-dev (or run scripts/install-deps.sh)" >&2
  exit 1
fi
if [ ! -f /usr/include/linux/bpf.h ]; then
  echo "build-bpf: /usr/include/linux/bpf.h not found. Fix: apt-get install linux-libc-dev" >&2
  exit 1
fi
for dir in l4/fastpath listeners/splice; do
  SRC_DIR=src/$dir
  OUT_DIR=dist/$dir
  mkdir -p "$OUT_DIR"
  for src in "$SRC_DIR"/*.bpf.c; do
    obj="$OUT_DIR/$(basename "${src%.c}").o"
    "$CLANG" -O2 -g -Wall -Werror -target bpf -mcpu=v3 -I/usr/include/x86_64-linux-gnu -I"/usr/include/$(uname -m)-linux-gnu" \
      -c "$src" -o "$obj"
    echo "build-bpf: $obj"
  done
done
