#!/usr/bin/env bash
# The newcomer's command: installs the Debian packages intake needs, builds it into build/
# (binaries in build/bin), and runs the main job on samples/: every sample document is decoded
# into page images under out/samples/, the way intake feeds documents to its model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${INTAKE_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
echo
for f in samples/*.pdf samples/*.tiff samples/*.png samples/*.jpg; do
  name=$(basename "$f")
  echo "== $f"
  build/bin/intake pages "$f" --out "out/samples/${name%.*}"
done
echo
echo "Page images written under out/samples/. Try: build/bin/intake pages --help"
