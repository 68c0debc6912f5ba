#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds with AddressSanitizer +
# UndefinedBehaviorSanitizer and warnings as errors into build-test/, and runs every CTest test.
# GPU tests report "skipped" on machines without a CUDA device; the manual label is left out.
#
# Then, for the whole suite (no ctest arguments), it builds the libFuzzer targets with clang into
# build-fuzz/ and runs each for INTAKE_FUZZ_SECONDS (default 15) seconds: the `fuzz` label.
# INTAKE_TEST_FUZZ=0 skips that stage, INTAKE_TEST_FUZZ=1 runs it even with ctest arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DINTAKE_SANITIZE=ON -DINTAKE_WERROR=ON \
  ${INTAKE_TEST_CMAKE_ARGS:-}
cmake --build build-test -j"$(nproc)"
fuzz=${INTAKE_TEST_FUZZ:-$([ $# -eq 0 ] && echo 1 || echo 0)}
# Label manual (tests/powerloss: root, FUSE, minutes) runs only when asked for: -L manual.
[ $# -gt 0 ] || set -- -LE manual
(cd build-test && ctest --output-on-failure -j"$(nproc)" "$@")

[ "$fuzz" = 1 ] || exit 0
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINTAKE_FUZZ=ON \
  -DINTAKE_WERROR=ON -DINTAKE_CUDA=OFF -DINTAKE_FUZZ_SECONDS="${INTAKE_FUZZ_SECONDS:-15}"
cmake --build build-fuzz --target fuzz -j"$(nproc)"
cd build-fuzz
ctest --output-on-failure -j"$(nproc)" -L fuzz
