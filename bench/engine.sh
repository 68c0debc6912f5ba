#!/usr/bin/env bash
# bench/engine: bench_engine and tools/bench_transformers.py on the same model directory, one after
# the other (never side by side: they would share the cores), then one table with the speed ratios
# and decode against the memory-bandwidth roofline measured by bench_engine in the same run.
#
# Usage: bench/engine.sh MODEL_DIR [THREADS]
#   BUILD_DIR (default build-rel) holds a Release build with bin/bench_engine.
#   RUNS (default 1): run both RUNS times, alternating, and keep each figure's best run (the one
#   least disturbed by other processes on a shared machine); decode is compared with the bandwidth
#   bench_engine measured right before and after it in the same run.
#   PRECISIONS (default "f32"): bench_engine's --precision values to run, e.g. "f32 bf16" (bf16:
#   bf16 activations in prefill and vision matmuls, AVX512_BF16 CPUs); one intake column each.
# A random-weight model at the real shapes: tools/gen_random_model.py DIR --text-layers 2
# --vision-layers 2, plus tokenizer.json, tokenizer_config.json and preprocessor_config.json
# copied from tests/fixtures/tiny-glm4v (see bench/README.md).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: bench/engine.sh MODEL_DIR [THREADS]" >&2
	exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
model=$1
threads=${2:-$(nproc)}
bench="${BUILD_DIR:-$root/build-rel}/bin/bench_engine"
if [[ ! -x $bench ]]; then
	echo "bench/engine.sh: $bench not found: build it first (bench/README.md)" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

runs=${RUNS:-1}
read -r -a precisions <<<"${PRECISIONS:-f32}"
# The shards as a service finds them after a restart: dropped from the page cache, then read in
# order. Pages a writer left behind (the generator, a download) can be scattered in physical
# memory, and on the 2-core VM decode streamed them up to 20% slower than freshly read ones, for
# intake and transformers alike; this makes runs comparable from one day to the next.
python3 - "$model" <<'EOF'
import glob, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors"))):
	fd = os.open(path, os.O_RDONLY)
	os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
	while os.read(fd, 1 << 24):
		pass
	os.close(fd)
EOF
tf_cmd=(python3 "$root/tools/bench_transformers.py" "$model" --threads "$threads")
echo "load before: $(uptime)"
for ((i = 1; i <= runs; i++)); do
	for p in "${precisions[@]}"; do
		engine_cmd=("$bench" "$model" --threads "$threads" --precision "$p" --json
			    "$tmp/intake-$p.$i.json")
		echo "+ ${engine_cmd[*]}"
		"${engine_cmd[@]}" >"$tmp/intake-$p.$i.txt"
	done
	echo "+ ${tf_cmd[*]}"
	"${tf_cmd[@]}" >"$tmp/transformers.$i.json"
done
echo "load after:  $(uptime)"
echo

python3 - "$tmp" "$runs" "${precisions[@]}" <<'EOF'
import json, sys


def best(paths):
	"""Each time from its best run; decode and the bandwidth measured around it from the run with
	the fastest decode (a roofline from another moment would not describe that decode)."""
	runs = [json.load(open(p)) for p in paths]
	out = dict(min(runs, key=lambda r: r["decode_s"]))
	for k in out:
		if k.endswith("_s") and not k.startswith("decode") and not k.startswith("bandwidth"):
			out[k] = min(r[k] for r in runs)
	out["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
	return out


tmp, n, precisions = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ours = [best([f"{tmp}/intake-{p}.{i}.json" for i in range(1, n + 1)]) for p in precisions]
b = best([f"{tmp}/transformers.{i}.json" for i in range(1, n + 1)])
a = ours[0]


def rates(r):
	return {
		"image prep 1024x1024 (s)": r["prep_s"],
		f"vision encode, {r['image_patches']} patches (s)": r["vision_s"],
		f"image prefill, {r['image_tokens'] + 2} tokens (s)": r["image_prefill_s"],
		"prefill 1024 tokens (tok/s)": 1024 / r["prefill_1k_s"],
		"prefill 2048 tokens (tok/s)": 2048 / r["prefill_2k_s"],
		f"decode, {r['decode_steps']} steps after 1024 (tok/s)": r["decode_steps"] / r["decode_s"],
		"peak RSS (MiB)": r["peak_rss_mib"],
	}


rb = rates(b)
print(f"threads {a['threads']} / {b['threads']}; transformers {b['transformers']}, "
	f"torch {b['torch']}; best of {n} run(s)")
head = f"{'measurement':44}"
for p in precisions:
	head += f" {'intake ' + p:>12}"
head += f" {'transformers':>13}"
for p in precisions:
	head += f" {'ratio ' + p:>11}"
print(head)
cols = [rates(r) for r in ours]
for k, (name, y) in enumerate(rb.items()):
	xs = [list(c.values())[k] for c in cols]
	line = f"{name:44}" + "".join(f" {x:12.2f}" for x in xs) + f" {y:13.2f}"
	# speed ratio > 1: intake is faster (or, for RSS, smaller)
	line += "".join(f" {(x / y if 'tok/s' in name else y / x):10.2f}x" for x in xs)
	print(line)
print()
print(f"weights read per decoded token  {a['bytes_per_token'] / 1e9:.3f} GB")
# transformers against the highest bandwidth intake measured: its own decode was not bracketed
top = max(ours, key=lambda r: r["bandwidth_gb_s"])
for r in ours + [b]:
	bw = r.get("bandwidth_gb_s", top["bandwidth_gb_s"])
	roof = bw * 1e9 / a["bytes_per_token"]
	tps = r["decode_steps"] / r["decode_s"]
	best = 1 / r["decode_best_step_s"]
	name = r["engine"] + (" " + r["precision"] if "precision" in r else "")
	print(f"decode of roofline, {name:17} {100 * tps / roof:5.1f} % (mean), "
		f"{100 * best / roof:5.1f} % (best step); membw {bw:.1f} GB/s, roofline "
		f"{roof:.2f} tok/s")
EOF
