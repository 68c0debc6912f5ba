/* The model's weights, mapped from a model directory's safetensors shards and checked against
 * one table of expected tensor names and shapes derived from struct vlm_config (spec §2): every
 * expected tensor present with its exact shape and a float dtype (BF16, F16 or F32), nothing
 * unexpected. The model code then reads typed pointers, one struct per vision block and per text
 * layer, and never looks a tensor up by name.
 *
 * Shapes below use the config's names: D vision hidden, O vision out_hidden (= text H), I_v
 * vision intermediate, C in_channels, T temporal patch, P patch, M merge, N_pos position rows;
 * H text hidden, n_h/n_kv heads, d head_dim, I text intermediate, V vocab. Linear weights are
 * [out, in]. A struct vlm_weights owns its mapped shards; every tensor pointer stays valid until
 * vlm_weights_free. Loaded weights are immutable and may be read from any thread. */
#ifndef VLM_WEIGHTS_H
#define VLM_WEIGHTS_H

#include <stdint.h>

#include "config.h"
#include "tensor.h"

struct vlm_vision_block {
	const struct vlm_tensor *norm1;  /* [D] RMSNorm */
	const struct vlm_tensor *qkv_w;  /* [3D, D]: rows Q, then K, then V */
	const struct vlm_tensor *qkv_b;  /* [3D], NULL unless vision attention_bias */
	const struct vlm_tensor *proj_w; /* [D, D], no bias */
	const struct vlm_tensor *norm2;  /* [D] RMSNorm */
	const struct vlm_tensor *gate_w; /* [O, D] */
	const struct vlm_tensor *up_w;   /* [O, D] */
	const struct vlm_tensor *down_w; /* [D, O] */
};

struct vlm_vision_weights {
	const struct vlm_tensor *patch_embed_w;  /* [D, C, T, P, P] Conv3d */
	const struct vlm_tensor *patch_embed_b;  /* [D] */
	const struct vlm_tensor *post_conv_norm; /* [D] RMSNorm */
	const struct vlm_tensor *pos_embed;      /* [N_pos, D] learned table */
	struct vlm_vision_block *blocks;         /* [depth] */
	const struct vlm_tensor *post_norm;      /* [D] RMSNorm */
	const struct vlm_tensor *downsample_w;   /* [O, D, M, M] Conv2d */
	const struct vlm_tensor *downsample_b;   /* [O] */
	const struct vlm_tensor *merger_proj_w;  /* [O, O], no bias */
	const struct vlm_tensor *merger_norm_w;  /* [O] LayerNorm */
	const struct vlm_tensor *merger_norm_b;  /* [O] */
	const struct vlm_tensor *merger_gate_w;  /* [I_v, O] */
	const struct vlm_tensor *merger_up_w;    /* [I_v, O] */
	const struct vlm_tensor *merger_down_w;  /* [O, I_v] */
};

/* One decoder layer; the four RMSNorms sandwich attention and the MLP. */
struct vlm_text_layer {
	const struct vlm_tensor *input_norm;          /* [H] */
	const struct vlm_tensor *q_w;                 /* [n_h*d, H] */
	const struct vlm_tensor *q_b;                 /* [n_h*d], NULL unless attention_bias */
	const struct vlm_tensor *k_w;                 /* [n_kv*d, H] */
	const struct vlm_tensor *k_b;                 /* [n_kv*d] or NULL */
	const struct vlm_tensor *v_w;                 /* [n_kv*d, H] */
	const struct vlm_tensor *v_b;                 /* [n_kv*d] or NULL */
	const struct vlm_tensor *o_w;                 /* [H, n_h*d], no bias */
	const struct vlm_tensor *post_self_attn_norm; /* [H], on the attention output */
	const struct vlm_tensor *post_attention_norm; /* [H], before the MLP */
	const struct vlm_tensor *gate_up_w;           /* [2I, H]: rows gate, then up */
	const struct vlm_tensor *down_w;              /* [H, I] */
	const struct vlm_tensor *post_mlp_norm;       /* [H], on the MLP output */
};

struct vlm_text_weights {
	const struct vlm_tensor *embed;   /* [V, H] */
	struct vlm_text_layer *layers;    /* [n_layers] */
	const struct vlm_tensor *norm;    /* [H] */
	const struct vlm_tensor *lm_head; /* [V, H]; the same tensor as embed when tied */
};

struct vlm_weights {
	struct vlm_vision_weights vision;
	struct vlm_text_weights text;
	/* Private to weights.c. */
	struct vlm_st_file **shards;
	size_t n_shards;
	struct wt_spec *specs;
	size_t n_specs;
};

/* Opens DIR/model.safetensors.index.json and its shards, or else DIR/model.safetensors, and
 * checks them against the table derived from cfg (only read during the call). Tensor names are
 * normalised first (spec §2.4): "visual.*" -> "model.visual.*", "model.*" ->
 * "model.language_model.*" unless already "model.language_model." or "model.visual.";
 * "lm_head.weight" is kept. Tensors ending in ".inv_freq" (rotary buffers some writers save;
 * recomputed from the config) are ignored; any other unknown tensor is an error. Errors: -ENOENT
 * (no weights, or a shard the index names is missing), -EBADMSG (a malformed index or shard, a
 * missing, extra, duplicated or mis-shaped tensor), -ENOTSUP (a non-float dtype), -ENOMEM. err
 * names the file and the tensor. */
int vlm_weights_open(const char *dir, const struct vlm_config *cfg, struct vlm_weights **out,
		     vlm_err *err);

/* Unmaps every shard and frees; accepts NULL. */
void vlm_weights_free(struct vlm_weights *w);

/* Sizes for `intake model info`, derived from the config alone (so they match what
 * vlm_weights_open expects). Tied embeddings are counted once, as transformers does. */
struct vlm_weights_info {
	int64_t n_params_vision;
	int64_t n_params_text; /* embeddings, decoder and lm_head */
	int64_t n_params;
	size_t n_tensors_vision;
	size_t n_tensors_text;
	int64_t kv_bytes_per_token; /* K and V of every layer, stored as bf16 */
};

int vlm_weights_info(const struct vlm_config *cfg, struct vlm_weights_info *out, vlm_err *err);

/* Bytes of tensor data the loaded weights use (as stored: BF16, F16 or F32). */
int64_t vlm_weights_bytes(const struct vlm_weights *w);

/* The dtype name of every tensor ("BF16", "F16", "F32"), or "mixed". */
const char *vlm_weights_dtype(const struct vlm_weights *w);

#endif
