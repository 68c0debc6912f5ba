/* The GLM-4V forward pass, written once against the ops (ops.h): vision.c (pixel rows to image
 * embeddings) and text.c (embeddings to logits, through the KV cache). vlm.c owns the objects and
 * the generate loop and is the only caller.
 *
 * Both passes take their working memory from a caller-provided scratch buffer sized by the
 * *_scratch_floats functions, so the per-page and per-token paths never allocate. */
#ifndef VLM_MODEL_H
#define VLM_MODEL_H

#include <stdint.h>

#include "config.h"
#include "ops.h"
#include "vlm.h"
#include "weights.h"

/* Hands a named intermediate tensor [rows, cols] to the trace callback, if one is set. */
void vlm_trace_emit(const struct vlm_trace *trace, const char *name, const float *data,
		    int64_t rows, int64_t cols);

/* Floats of scratch vlm_vision_encode needs for n_patches patch rows over n_images images. */
int64_t vlm_vision_scratch_floats(const struct vlm_config *cfg, int64_t n_patches, int n_images);

/* out [n_patches / merge^2, out_hidden] = the vision tower and patch merger applied to
 * pixel_values [n_patches, C*T*P*P] (rows in merge-window order, images one after another, grids
 * (t, gh, gw) in patches). Trace names: vision.patch_embed, vision.post_conv_norm,
 * vision.pos_embed (after adding it), vision.block.N, vision.post_norm, vision.downsample,
 * vision.merger. */
int vlm_vision_encode(struct vlm_ops *ops, const struct vlm_config *cfg,
		      const struct vlm_vision_weights *w, const float *pixel_values,
		      const int64_t (*grids)[3], int n_images, float *scratch, float *out,
		      const struct vlm_trace *trace, vlm_err *err);

/* The KV cache of one sequence: for layer l, rows 0 .. n_ctx-1 of k[l] and v[l], each row
 * n_kv_heads * head_dim floats (K stored after RoPE). */
struct vlm_kv {
	float **k, **v; /* [n_layers] */
	int64_t n_ctx;
};

int64_t vlm_text_scratch_floats(const struct vlm_config *cfg, int64_t n_tokens);

/* Runs the decoder over x [L, hidden] (the input embeddings, overwritten) at cache rows
 * past .. past+L-1 with positions pos [3, L]. logits: [L, vocab] when all_logits, else the last
 * row's [vocab]. Trace names: text.layer.N (hidden state after layer N), text.norm, text.logits. */
int vlm_text_forward(struct vlm_ops *ops, const struct vlm_config *cfg,
		     const struct vlm_text_weights *w, struct vlm_kv *kv, float *x, int64_t L,
		     const int32_t *pos, int64_t past, float *scratch, float *logits,
		     bool all_logits, const struct vlm_trace *trace, vlm_err *err);

#endif
