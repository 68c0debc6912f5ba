#!/usr/bin/env python3
"""Write a random-weight GLM-4.6V-Flash model directory at real shapes, for benchmarks.

The configuration is the real one (spec /work/shared/design/glm4v.md sections 1-2: hidden 4096,
40 text layers, 24 vision blocks, vocab 151552, ...); --text-layers / --vision-layers reduce the
depth only. Weights are BF16 normal(0, 0.02), norm weights 1 + 0.02 N(0,1), biases 0.02 N(0,1),
LayerNorm bias 0; they mean nothing, they only have the right names, shapes and dtype.

Memory: tensors are generated in row chunks and written shard by shard, so at most one shard
(--shard-mb) is held at once, never the whole model (about 19 GiB at full depth).

It writes config.json (transformers v5 dialect), generation_config.json, the shards and
model.safetensors.index.json. No tokenizer: benchmarks feed token ids. Output is not committed.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

TEXT = {
	"vocab_size": 151552,
	"hidden_size": 4096,
	"num_hidden_layers": 40,
	"num_attention_heads": 32,
	"num_key_value_heads": 2,
	"head_dim": 128,
	"intermediate_size": 13696,
	"rms_norm_eps": 1e-5,
	"attention_bias": True,
	"hidden_act": "silu",
	"max_position_embeddings": 131072,
	"pad_token_id": 151329,
	"eos_token_id": [151329, 151336, 151338],
	"dtype": "bfloat16",
	"rope_parameters": {
		"rope_type": "default",
		"rope_theta": 500000.0,
		"partial_rotary_factor": 0.5,
		"mrope_section": [8, 12, 12],
	},
	"model_type": "glm4v_text",
}
VISION = {
	"depth": 24,
	"hidden_size": 1536,
	"num_heads": 12,
	"patch_size": 14,
	"temporal_patch_size": 2,
	"spatial_merge_size": 2,
	"in_channels": 3,
	"image_size": 336,
	"out_hidden_size": 4096,
	"intermediate_size": 13696,
	"rms_norm_eps": 1e-5,
	"hidden_act": "silu",
	"attention_bias": False,
	"model_type": "glm4v_vision",
}
TOP = {
	"architectures": ["Glm4vForConditionalGeneration"],
	"model_type": "glm4v",
	"image_token_id": 151363,
	"video_token_id": 151364,
	"image_start_token_id": 151339,
	"image_end_token_id": 151340,
	"video_start_token_id": 151341,
	"video_end_token_id": 151342,
	"tie_word_embeddings": False,
	"dtype": "bfloat16",
}
CHUNK_ELEMS = 1 << 26  # f32 scratch per generation step (256 MiB)


def tensor_table(tc, vc):
	"""(name, shape, kind) for every tensor, kind in weight / norm / bias / ln_bias (spec section 2)."""
	d, n_kv, hd = tc["hidden_size"], tc["num_key_value_heads"], tc["hidden_size"] // tc["num_attention_heads"]
	ff, vd, vo = tc["intermediate_size"], vc["hidden_size"], vc["out_hidden_size"]
	vff, p, t, c, m = vc["intermediate_size"], vc["patch_size"], vc["temporal_patch_size"], vc["in_channels"], vc["spatial_merge_size"]
	side = vc["image_size"] // p
	v = "model.visual."
	rows = [
		(v + "patch_embed.proj.weight", [vd, c, t, p, p], "weight"),
		(v + "patch_embed.proj.bias", [vd], "bias"),
		(v + "post_conv_layernorm.weight", [vd], "norm"),
		(v + "embeddings.position_embedding.weight", [side * side, vd], "weight"),
	]
	for i in range(vc["depth"]):
		b = f"{v}blocks.{i}."
		rows += [
			(b + "norm1.weight", [vd], "norm"),
			(b + "attn.qkv.weight", [3 * vd, vd], "weight"),
			(b + "attn.proj.weight", [vd, vd], "weight"),
			(b + "norm2.weight", [vd], "norm"),
			# The ViT MLP width is out_hidden_size, not intermediate_size (spec 1.3).
			(b + "mlp.gate_proj.weight", [vo, vd], "weight"),
			(b + "mlp.up_proj.weight", [vo, vd], "weight"),
			(b + "mlp.down_proj.weight", [vd, vo], "weight"),
		]
	rows += [
		(v + "post_layernorm.weight", [vd], "norm"),
		(v + "downsample.weight", [vo, vd, m, m], "weight"),
		(v + "downsample.bias", [vo], "bias"),
		(v + "merger.proj.weight", [vo, vo], "weight"),
		(v + "merger.post_projection_norm.weight", [vo], "norm"),
		(v + "merger.post_projection_norm.bias", [vo], "ln_bias"),
		(v + "merger.gate_proj.weight", [vff, vo], "weight"),
		(v + "merger.up_proj.weight", [vff, vo], "weight"),
		(v + "merger.down_proj.weight", [vo, vff], "weight"),
	]
	lm = "model.language_model."
	rows.append((lm + "embed_tokens.weight", [tc["vocab_size"], d], "weight"))
	for i in range(tc["num_hidden_layers"]):
		b = f"{lm}layers.{i}."
		rows += [
			(b + "input_layernorm.weight", [d], "norm"),
			(b + "self_attn.q_proj.weight", [d, d], "weight"),
			(b + "self_attn.q_proj.bias", [d], "bias"),
			(b + "self_attn.k_proj.weight", [n_kv * hd, d], "weight"),
			(b + "self_attn.k_proj.bias", [n_kv * hd], "bias"),
			(b + "self_attn.v_proj.weight", [n_kv * hd, d], "weight"),
			(b + "self_attn.v_proj.bias", [n_kv * hd], "bias"),
			(b + "self_attn.o_proj.weight", [d, d], "weight"),
			(b + "post_self_attn_layernorm.weight", [d], "norm"),
			(b + "post_attention_layernorm.weight", [d], "norm"),
			(b + "mlp.gate_up_proj.weight", [2 * ff, d], "weight"),
			(b + "mlp.down_proj.weight", [d, ff], "weight"),
			(b + "post_mlp_layernorm.weight", [d], "norm"),
		]
	rows += [(lm + "norm.weight", [d], "norm"), ("lm_head.weight", [tc["vocab_size"], d], "weight")]
	return rows


def make_tensor(shape, kind, gen):
	"""One BF16 tensor, filled in chunks so the float32 scratch stays bounded."""
	out = torch.empty(shape, dtype=torch.bfloat16)
	flat = out.view(-1)
	if kind == "ln_bias":
		return out.zero_()
	for start in range(0, flat.numel(), CHUNK_ELEMS):
		n = min(CHUNK_ELEMS, flat.numel() - start)
		scratch = torch.empty(n).normal_(0.0, 1.0, generator=gen)
		if kind == "norm":
			scratch.mul_(0.02).add_(1.0)
		else:
			scratch.mul_(0.02)
		flat[start:start + n] = scratch.to(torch.bfloat16)
	return out


def plan_shards(table, shard_bytes):
	"""Greedy split in table order; a tensor larger than the limit gets a shard of its own."""
	shards, cur, size = [], [], 0
	for row in table:
		nbytes = 2 * torch.Size(row[1]).numel()
		if cur and size + nbytes > shard_bytes:
			shards.append(cur)
			cur, size = [], 0
		cur.append(row)
		size += nbytes
	if cur:
		shards.append(cur)
	return shards


def write_json(path, obj):
	with open(path, "w", encoding="utf-8") as f:
		json.dump(obj, f, indent=2, sort_keys=True)
		f.write("\n")


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("out", type=Path, help="output directory (created; must be empty or absent)")
	ap.add_argument("--text-layers", type=int, default=TEXT["num_hidden_layers"])
	ap.add_argument("--vision-layers", type=int, default=VISION["depth"])
	ap.add_argument("--shard-mb", type=int, default=2048, help="shard size limit in MiB (default 2048)")
	ap.add_argument("--seed", type=int, default=0)
	args = ap.parse_args()
	if args.text_layers < 1 or args.vision_layers < 1 or args.shard_mb < 1:
		sys.exit("gen_random_model: layer counts and shard size must be positive")
	args.out.mkdir(parents=True, exist_ok=True)
	if any(args.out.iterdir()):
		sys.exit(f"gen_random_model: output directory '{args.out}' is not empty")

	tc = dict(TEXT, num_hidden_layers=args.text_layers)
	vc = dict(VISION, depth=args.vision_layers)
	table = tensor_table(tc, vc)
	shards = plan_shards(table, args.shard_mb << 20)
	gen = torch.Generator().manual_seed(args.seed)
	weight_map, total = {}, 0
	for k, rows in enumerate(shards):
		fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
		tensors = {name: make_tensor(shape, kind, gen) for name, shape, kind in rows}
		save_file(tensors, str(args.out / fname), metadata={"format": "pt"})
		for name, t in tensors.items():
			weight_map[name] = fname
			total += t.numel()
		del tensors
		print(f"{fname}: {len(rows)} tensors", flush=True)

	write_json(args.out / "model.safetensors.index.json",
		{"metadata": {"total_parameters": total, "total_size": 2 * total}, "weight_map": weight_map})
	write_json(args.out / "config.json", dict(TOP, text_config=tc, vision_config=vc))
	write_json(args.out / "generation_config.json",
		{"do_sample": False, "eos_token_id": TEXT["eos_token_id"], "pad_token_id": TEXT["pad_token_id"]})
	print(f"{args.out}: {len(table)} tensors, {total} parameters, {len(shards)} shards")


if __name__ == "__main__":
	main()
