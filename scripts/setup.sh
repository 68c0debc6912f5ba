#!/usr/bin/env bash
# The newcomer's command: installs the Debian packages intake needs, builds it into build/
# (binaries in build/bin), gets the model, and runs the main job on samples/.
#
# The model (zai-org/GLM-4.6V-Flash, about 20 GB) is pulled into $INTAKE_MODEL_DIR (default
# models/GLM-4.6V-Flash here; an interrupted pull resumes). With a verified model every sample
# is extracted with its schema into out/samples/NAME.json; without one (offline machine, or
# INTAKE_SKIP_MODEL=1) the samples are decoded into page images under out/samples/NAME/, which
# needs no model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${INTAKE_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"

model=${INTAKE_MODEL_DIR:-models/GLM-4.6V-Flash}
if [ -z "${INTAKE_SKIP_MODEL:-}" ]; then
  build/bin/intake model pull --dir "$model" ||
    echo "setup: no model pulled (see the line above); continuing without one"
fi

# Each sample and the schema it is extracted with.
samples=(invoice.pdf:invoice invoice_screenshot.png:invoice cn_vat_invoice.png:invoice
  lab_report.tiff:lab_report nameplate.jpg:nameplate)
mkdir -p out/samples
if build/bin/intake model verify "$model" >/dev/null 2>&1; then
  done=0
  for s in "${samples[@]}"; do
    file=${s%%:*} schema=${s#*:}
    echo "== samples/$file (schema $schema)"
    build/bin/intake extract "samples/$file" --schema "$schema" --model "$model" \
      --out "out/samples/${file%.*}.json" && done=$((done + 1))
  done
  echo
  echo "$done of ${#samples[@]} samples extracted into out/samples/; compare them with"
  echo "samples/expected/: tools/score out/samples/*.json"
else
  for s in "${samples[@]}"; do
    file=${s%%:*}
    echo "== samples/$file"
    build/bin/intake pages "samples/$file" --out "out/samples/${file%.*}"
  done
  echo
  echo "No model: page images written under out/samples/. Try: build/bin/intake pages --help"
fi
