/* The vision tower and patch merger (spec glm4v.md §4): patch embedding as one matmul, RMSNorm,
 * the learned position table resampled bicubically to each image's grid, 2-D RoPE ViT blocks with
 * attention confined to each image, then the 2x2 downsample conv and the SwiGLU merger. Every
 * op's precision is f32; rows stay in merge-window order throughout. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

void vlm_trace_emit(const struct vlm_trace *trace, const char *name, const float *data,
		    int64_t rows, int64_t cols)
{
	if (trace && trace->fn)
		trace->fn(trace->user, name, data, rows, cols);
}

int64_t vlm_vision_scratch_floats(const struct vlm_config *cfg, int64_t n_patches, int n_images)
{
	const struct vlm_vision_config *v = &cfg->vision;
	int64_t N = n_patches, D = v->hidden_size, O = v->out_hidden_size;
	int64_t n_merged = N / (v->spatial_merge_size * v->spatial_merge_size);
	/* The tower uses x, h, attn [N, D], qkv [N, 3D], gate and up [N, O]; the merger keeps x and
	 * reuses everything after attn. */
	int64_t tower = N * D * 3 + N * 3 * D + N * O * 2;
	int64_t merger = N * D * 3 + n_merged * D * v->spatial_merge_size * v->spatial_merge_size +
			 n_merged * O * 2 + n_merged * v->intermediate_size * 2;
	int64_t ints = N * 2 + n_images + 1; /* (h, w) per patch, cu_seqlens */
	return (tower > merger ? tower : merger) + ints;
}

/* Bicubic convolution weights (A = -0.75, as torch's grid_sample) for fractional offset t. */
static void cubic_weights(float t, float wt[4])
{
	const float A = -0.75f;
	float x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
	wt[0] = ((A * x0 - 5 * A) * x0 + 8 * A) * x0 - 4 * A;
	wt[1] = ((A + 2) * x1 - (A + 3)) * x1 * x1 + 1;
	wt[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
	wt[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

/* x [N, D] += the position table [S*S, D] sampled at each patch's (h, w): bicubic, align_corners
 * false, taps clamped to the border (torch grid_sample semantics, which HF uses). */
static void add_position_embedding(float *x, const struct vlm_tensor *table, int64_t S, int64_t D,
				   const int32_t *hw, const int64_t (*grids)[3], int n_images)
{
	int64_t row = 0;
	for (int img = 0; img < n_images; img++) {
		int64_t gh = grids[img][1], gw = grids[img][2], n = grids[img][0] * gh * gw;
		for (int64_t i = 0; i < n; i++, row++) {
			float sy = ((float)hw[2 * row] + 0.5f) * (float)S / (float)gh - 0.5f;
			float sx = ((float)hw[2 * row + 1] + 0.5f) * (float)S / (float)gw - 0.5f;
			float fy = floorf(sy), fx = floorf(sx), wy[4], wx[4];
			cubic_weights(sy - fy, wy);
			cubic_weights(sx - fx, wx);
			int64_t ty[4], tx[4];
			for (int k = 0; k < 4; k++) {
				int64_t yy = (int64_t)fy - 1 + k, xx = (int64_t)fx - 1 + k;
				ty[k] = yy < 0 ? 0 : yy >= S ? S - 1 : yy;
				tx[k] = xx < 0 ? 0 : xx >= S ? S - 1 : xx;
			}
			float *dst = x + row * D;
			for (int64_t c = 0; c < D; c++) {
				float acc = 0;
				for (int a = 0; a < 4; a++) {
					float r = 0;
					for (int b = 0; b < 4; b++)
						r += wx[b] *
						     vlm_float_load(table->dtype, table->data,
								    (ty[a] * S + tx[b]) * D + c);
					acc += wy[a] * r;
				}
				dst[c] += acc;
			}
		}
	}
}

/* (h, w) of every patch row in merge-window order, and the per-image segment bounds. */
static void patch_coordinates(const int64_t (*grids)[3], int n_images, int merge, int32_t *hw,
			      int32_t *cu_seqlens)
{
	int64_t row = 0;
	cu_seqlens[0] = 0;
	for (int img = 0; img < n_images; img++) {
		int64_t t = grids[img][0], gh = grids[img][1], gw = grids[img][2];
		for (int64_t ti = 0; ti < t; ti++)
			for (int64_t bh = 0; bh < gh / merge; bh++)
				for (int64_t bw = 0; bw < gw / merge; bw++)
					for (int ih = 0; ih < merge; ih++)
						for (int iw = 0; iw < merge; iw++, row++) {
							hw[2 * row] = (int32_t)(bh * merge + ih);
							hw[2 * row + 1] =
								(int32_t)(bw * merge + iw);
						}
		cu_seqlens[img + 1] = (int32_t)row;
	}
}

/* A 2-D view of a conv weight [out, ...] as the [out, in*kh*kw...] matrix it multiplies. */
static struct vlm_tensor as_matrix(const struct vlm_tensor *t)
{
	struct vlm_tensor m = *t;
	m.n_dims = 2;
	m.shape[1] = vlm_tensor_numel(t) / t->shape[0];
	return m;
}

int vlm_vision_encode(struct vlm_ops *ops, const struct vlm_config *cfg,
		      const struct vlm_vision_weights *w, const float *pixel_values,
		      const int64_t (*grids)[3], int n_images, float *scratch, float *out,
		      const struct vlm_trace *trace, vlm_err *err)
{
	const struct vlm_vision_config *vc = &cfg->vision;
	const int64_t D = vc->hidden_size, O = vc->out_hidden_size, I = vc->intermediate_size;
	const int merge = vc->spatial_merge_size, cells = merge * merge;
	const float eps = vc->rms_norm_eps;
	int64_t N = 0;
	for (int i = 0; i < n_images; i++) {
		if (grids[i][0] < 1 || grids[i][1] % merge || grids[i][2] % merge ||
		    grids[i][1] < merge || grids[i][2] < merge)
			return vlm_err_set(err, -EINVAL,
					   "vision: image %d: grid (%lld, %lld, %lld) "
					   "is not a positive multiple of the merge size %d",
					   i, (long long)grids[i][0], (long long)grids[i][1],
					   (long long)grids[i][2], merge);
		N += grids[i][0] * grids[i][1] * grids[i][2];
	}
	const int64_t M = N / cells;

	float *x = scratch, *h = x + N * D, *attn = h + N * D, *qkv = attn + N * D;
	float *gate = qkv + N * 3 * D, *up = gate + N * O;
	int32_t *hw = (int32_t *)(scratch + vlm_vision_scratch_floats(cfg, N, n_images) -
				  (N * 2 + n_images + 1));
	int32_t *cu = hw + N * 2;
	patch_coordinates(grids, n_images, merge, hw, cu);

	struct vlm_tensor patch_w = as_matrix(w->patch_embed_w);
	int rc = vlm_op_matmul(ops, x, pixel_values, N, &patch_w, w->patch_embed_b, err);
	if (rc < 0)
		return rc;
	vlm_trace_emit(trace, "vision.patch_embed", x, N, D);
	if ((rc = vlm_op_rmsnorm(ops, x, x, w->post_conv_norm, N, D, eps, err)) < 0)
		return rc;
	vlm_trace_emit(trace, "vision.post_conv_norm", x, N, D);
	int64_t side = (int64_t)lrint(sqrt((double)w->pos_embed->shape[0]));
	add_position_embedding(x, w->pos_embed, side, D, hw, grids, n_images);
	vlm_trace_emit(trace, "vision.pos_embed", x, N, D);

	const int heads = vc->n_heads, hd = vc->head_dim;
	for (int b = 0; b < vc->depth; b++) {
		const struct vlm_vision_block *blk = &w->blocks[b];
		struct vlm_attn a = {
			.L = N,
			.T = N,
			.n_head = heads,
			.n_kv_head = heads,
			.head_dim = hd,
			.q = qkv,
			.q_stride = 3 * D,
			.k = qkv + D,
			.v = qkv + 2 * D,
			.kv_stride = 3 * D,
			.out = attn,
			.mask = VLM_ATTN_SEGMENTS,
			.cu_seqlens = cu,
			.n_segments = n_images,
		};
		if ((rc = vlm_op_rmsnorm(ops, h, x, blk->norm1, N, D, eps, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, qkv, h, N, blk->qkv_w, blk->qkv_b, err)) < 0 ||
		    (rc = vlm_op_rope_vision(ops, qkv, N, heads, hd, 3 * D, hw, 10000.0f, err)) <
			    0 ||
		    (rc = vlm_op_rope_vision(ops, qkv + D, N, heads, hd, 3 * D, hw, 10000.0f,
					     err)) < 0 ||
		    (rc = vlm_op_attention(ops, &a, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, h, attn, N, blk->proj_w, NULL, err)) < 0 ||
		    (rc = vlm_op_add(ops, x, x, h, N * D, err)) < 0 ||
		    (rc = vlm_op_rmsnorm(ops, h, x, blk->norm2, N, D, eps, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, gate, h, N, blk->gate_w, NULL, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, up, h, N, blk->up_w, NULL, err)) < 0 ||
		    (rc = vlm_op_silu_mul(ops, gate, gate, up, N, O, O, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, h, gate, N, blk->down_w, NULL, err)) < 0 ||
		    (rc = vlm_op_add(ops, x, x, h, N * D, err)) < 0)
			return rc;
		char name[32];
		snprintf(name, sizeof name, "vision.block.%d", b);
		vlm_trace_emit(trace, name, x, N, D);
	}
	if ((rc = vlm_op_rmsnorm(ops, x, x, w->post_norm, N, D, eps, err)) < 0)
		return rc;
	vlm_trace_emit(trace, "vision.post_norm", x, N, D);

	/* Downsample: each window of `cells` consecutive rows becomes one vector laid out
	 * channel-major (v[c * cells + cell]), the flattening of the conv weight [O, D, m, m]. */
	float *v = qkv, *y = v + M * D * cells, *g2 = y + M * O, *u2 = g2 + M * I, *z = u2 + M * I;
	for (int64_t m = 0; m < M; m++)
		for (int cell = 0; cell < cells; cell++)
			for (int64_t c = 0; c < D; c++)
				v[(m * D + c) * cells + cell] = x[(m * cells + cell) * D + c];
	struct vlm_tensor down_w = as_matrix(w->downsample_w);
	if ((rc = vlm_op_matmul(ops, y, v, M, &down_w, w->downsample_b, err)) < 0)
		return rc;
	vlm_trace_emit(trace, "vision.downsample", y, M, O);
	if ((rc = vlm_op_matmul(ops, z, y, M, w->merger_proj_w, NULL, err)) < 0 ||
	    (rc = vlm_op_layernorm(ops, z, z, w->merger_norm_w, w->merger_norm_b, M, O, 1e-5f,
				   err)) < 0 ||
	    (rc = vlm_op_gelu_erf(ops, z, z, M * O, err)) < 0 ||
	    (rc = vlm_op_matmul(ops, g2, z, M, w->merger_gate_w, NULL, err)) < 0 ||
	    (rc = vlm_op_matmul(ops, u2, z, M, w->merger_up_w, NULL, err)) < 0 ||
	    (rc = vlm_op_silu_mul(ops, g2, g2, u2, M, I, I, err)) < 0 ||
	    (rc = vlm_op_matmul(ops, out, g2, M, w->merger_down_w, NULL, err)) < 0)
		return rc;
	vlm_trace_emit(trace, "vision.merger", out, M, O);
	return 0;
}
