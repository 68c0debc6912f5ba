#!/usr/bin/env python3
"""The measurements of bench/bench_engine.c, made with transformers on torch CPU, printed as JSON.

Usage: bench_transformers.py MODEL_DIR [--threads N]

Same model directory (bf16 weights as stored, loaded with dtype=bfloat16 and sdpa attention),
same thread count (torch.set_num_threads), same synthetic inputs, same steps and the same timing
boundaries as bench_engine (see the comment at the top of bench_engine.c):
- image prep: Glm46VImageProcessorPil (the processor transformers uses without torchvision) on
  the synthetic 1024x1024 image;
- vision encode: from the call of the model's forward to the return of model.model.visual (a
  forward hook), inside the image prefill;
- image prefill: forward over <|begin_of_image|>, the image tokens, <|end_of_image|> with
  logits_to_keep=1 (the engine computes the last token's logits only);
- prefill 1k / 2k: forward over the same pseudo-random ids, logits_to_keep=1, a new cache;
- decode: 32 single-token forwards with the cache after the 1k prefill;
- peak RSS: ru_maxrss of this process (so it includes the Python interpreter and torch).
A warm-up (a small image prefill, then one decode step) runs first, as in bench_engine.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import Glm4vForConditionalGeneration
from transformers.models.glm46v.image_processing_pil_glm46v import Glm46VImageProcessorPil

IMAGE_SIDE, WARM_SIDE, PREFILL_SHORT, PREFILL_LONG, DECODE_STEPS = 1024, 112, 1024, 2048, 32


def synthetic_image(side):
	"""bench_engine.c synthetic_image: gradients in R and G, (x xor y) & 255 in B."""
	y, x = np.mgrid[0:side, 0:side]
	rgb = np.stack([x * 255 // (side - 1), y * 255 // (side - 1), (x ^ y) & 255], axis=-1)
	return rgb.astype(np.uint8)


def pseudo_random_ids(n, below, special, seed):
	"""bench_engine.c pseudo_random_ids: the 32-bit LCG, (s >> 8) % below, special ids skipped."""
	s, out = seed, []
	while len(out) < n:
		s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
		if (s >> 8) % below not in special:
			out.append((s >> 8) % below)
	return out


def tokenizer_ids(model_dir):
	"""What the engine's vlm_model_n_tokens gives (one past the largest id in tokenizer.json) and
	the ids of the added tokens marked special."""
	tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
	added = tok.get("added_tokens", [])
	ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in added]
	return max(ids) + 1, {t["id"] for t in added if t.get("special")}


class Bench:
	def __init__(self, model_dir):
		cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
		pre = json.loads((model_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
		self.image_id, self.start_id, self.end_id = (
			cfg["image_token_id"], cfg["image_start_token_id"], cfg["image_end_token_id"])
		self.proc = Glm46VImageProcessorPil(
			image_mean=pre["image_mean"], image_std=pre["image_std"], size=pre["size"],
			patch_size=pre["patch_size"], temporal_patch_size=pre["temporal_patch_size"],
			merge_size=pre["merge_size"])
		t0 = time.perf_counter()
		self.model = Glm4vForConditionalGeneration.from_pretrained(
			model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
		self.load_s = time.perf_counter() - t0
		self.vision_done = None
		self.model.model.visual.register_forward_hook(self._on_visual)

	def _on_visual(self, module, args, output):
		self.vision_done = time.perf_counter()

	def prep(self, side):
		o = self.proc(images=[synthetic_image(side)], return_tensors="pt")
		return o["pixel_values"], o["image_grid_thw"]

	def prefill(self, ids, pixels=None, grid=None):
		"""A new sequence: (the cache, seconds)."""
		ids = torch.tensor([ids], dtype=torch.long)
		self.model.model.rope_deltas = None
		extra = {} if pixels is None else {"pixel_values": pixels, "image_grid_thw": grid}
		t0 = time.perf_counter()
		out = self.model(input_ids=ids, mm_token_type_ids=(ids == self.image_id).int(),
			use_cache=True, logits_to_keep=1, **extra)
		return out.past_key_values, time.perf_counter() - t0

	def decode(self, cache, token):
		out = self.model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True,
			logits_to_keep=1)
		return out.past_key_values

	def image_prompt(self, n_tokens):
		return [self.start_id] + [self.image_id] * n_tokens + [self.end_id]


def run(model_dir, n_threads):
	torch.set_num_threads(n_threads)
	b = Bench(model_dir)
	below, special = tokenizer_ids(model_dir)
	r = {"engine": "transformers", "transformers": transformers.__version__,
		"torch": torch.__version__, "threads": torch.get_num_threads(), "load_s": b.load_s}
	with torch.inference_mode():
		pixels, grid = b.prep(WARM_SIDE)
		cache, _ = b.prefill(b.image_prompt(int(grid.prod()) // 4), pixels, grid)
		b.decode(cache, b.start_id)

		t0 = time.perf_counter()
		pixels, grid = b.prep(IMAGE_SIDE)
		r["prep_s"] = time.perf_counter() - t0
		n_tokens = int(grid.prod()) // 4
		r["image_tokens"], r["image_patches"] = n_tokens, int(pixels.shape[0])
		start = time.perf_counter()
		cache, r["image_prefill_s"] = b.prefill(b.image_prompt(n_tokens), pixels, grid)
		r["vision_s"] = b.vision_done - start
		del cache

		for name, n, seed in (("prefill_2k_s", PREFILL_LONG, 2), ("prefill_1k_s", PREFILL_SHORT, 1)):
			cache, r[name] = b.prefill(pseudo_random_ids(n, below, special, seed))
		best = float("inf")
		t0 = time.perf_counter()
		for token in pseudo_random_ids(DECODE_STEPS, below, special, 3):
			t_step = time.perf_counter()
			cache = b.decode(cache, token)
			best = min(best, time.perf_counter() - t_step)
		r["decode_s"] = time.perf_counter() - t0
		r["decode_steps"], r["decode_best_step_s"] = DECODE_STEPS, best
	r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
	return r


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("model_dir", type=Path)
	ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
	args = ap.parse_args()
	if not (args.model_dir / "config.json").is_file():
		sys.exit(f"bench_transformers: '{args.model_dir}': no config.json")
	n = args.threads if args.threads > 0 else torch.get_num_threads()
	print(json.dumps(run(args.model_dir, n)))


if __name__ == "__main__":
	main()
