#!/usr/bin/env bash
# The style guide's formatting check: every C, header and CUDA file of the project as
# .clang-format says (clang-format 14, Debian bookworm's; other versions format some constructs
# differently, so they skip rather than fail). Fix with:
#   git ls-files '*.c' '*.h' '*.cu' | xargs clang-format -i
set -u
root=${1:?source directory}
command -v clang-format >/dev/null || { echo "skipped: no clang-format"; exit 77; }
version=$(clang-format --version | grep -o 'version [0-9]*' | cut -d' ' -f2)
[ "$version" = 14 ] || { echo "skipped: clang-format $version, the style is set for 14"; exit 77; }
cd "$root" || exit 1
mapfile -t files < <(find bench daemon engine extract tests -name '*.c' -o -name '*.h' -o -name '*.cu' | sort)
bad=0
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" 2>/dev/null || { echo "not formatted: $f"; bad=1; }
done
echo "format: ${#files[@]} files checked"
exit $bad
