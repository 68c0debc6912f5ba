#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds with AddressSanitizer +
# UndefinedBehaviorSanitizer and warnings as errors into build-test/, and runs every CTest test.
# GPU tests report "skipped" on machines without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DINTAKE_SANITIZE=ON -DINTAKE_WERROR=ON \
  ${INTAKE_TEST_CMAKE_ARGS:-}
cmake --build build-test -j"$(nproc)"
cd build-test
ctest --output-on-failure -j"$(nproc)" "$@"
