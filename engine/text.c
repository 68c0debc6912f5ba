/* The GLM-4 text decoder (spec glm4v.md §5): per layer, sandwich RMSNorms around GQA attention
 * with partial interleaved M-RoPE and around the fused SwiGLU MLP; then the final norm and the
 * LM head. K (after RoPE) and V are written straight into the cache rows of the new tokens. */
#include <errno.h>
#include <stdio.h>

#include "model.h"

int64_t vlm_text_scratch_floats(const struct vlm_config *cfg, int64_t n_tokens)
{
	const struct vlm_text_config *t = &cfg->text;
	int64_t L = n_tokens, qd = (int64_t)t->n_heads * t->head_dim;
	/* h [L, H], q and attn [L, qd], gate_up [L, 2I], act [L, I] */
	return L * t->hidden_size + 2 * L * qd + L * 3 * t->intermediate_size;
}

int vlm_text_forward(struct vlm_ops *ops, const struct vlm_config *cfg,
		     const struct vlm_text_weights *w, struct vlm_kv *kv, float *x, int64_t L,
		     const int32_t *pos, int64_t past, float *scratch, float *logits,
		     bool all_logits, const struct vlm_trace *trace, vlm_err *err)
{
	const struct vlm_text_config *tc = &cfg->text;
	const int64_t H = tc->hidden_size, I = tc->intermediate_size;
	const int hd = tc->head_dim, nh = tc->n_heads, nkv = tc->n_kv_heads;
	const int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
	const float eps = tc->rms_norm_eps, theta = (float)tc->rope_theta;
	if (L < 1 || past < 0 || past + L > kv->n_ctx)
		return vlm_err_set(err, -E2BIG,
				   "text: %lld tokens after %lld do not fit the "
				   "context of %lld",
				   (long long)L, (long long)past, (long long)kv->n_ctx);
	float *h = scratch, *q = h + L * H, *attn = q + L * qd, *gu = attn + L * qd,
	      *act = gu + L * 2 * I;
	int rc;
	for (int l = 0; l < tc->n_layers; l++) {
		const struct vlm_text_layer *ly = &w->layers[l];
		float *k = kv->k[l] + past * kvd, *v = kv->v[l] + past * kvd;
		struct vlm_attn a = {
			.L = L,
			.T = past + L,
			.n_head = nh,
			.n_kv_head = nkv,
			.head_dim = hd,
			.q = q,
			.q_stride = qd,
			.k = kv->k[l],
			.v = kv->v[l],
			.kv_stride = kvd,
			.out = attn,
			.mask = VLM_ATTN_CAUSAL,
			.past = past,
		};
		if ((rc = vlm_op_rmsnorm(ops, h, x, ly->input_norm, L, H, eps, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, q, h, L, ly->q_w, ly->q_b, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, k, h, L, ly->k_w, ly->k_b, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, v, h, L, ly->v_w, ly->v_b, err)) < 0 ||
		    (rc = vlm_op_rope_text(ops, q, L, nh, hd, qd, tc->rotary_dim, tc->mrope_section,
					   pos, theta, err)) < 0 ||
		    (rc = vlm_op_rope_text(ops, k, L, nkv, hd, kvd, tc->rotary_dim,
					   tc->mrope_section, pos, theta, err)) < 0 ||
		    (rc = vlm_op_attention(ops, &a, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, h, attn, L, ly->o_w, NULL, err)) < 0 ||
		    (rc = vlm_op_rmsnorm(ops, h, h, ly->post_self_attn_norm, L, H, eps, err)) < 0 ||
		    (rc = vlm_op_add(ops, x, x, h, L * H, err)) < 0 ||
		    (rc = vlm_op_rmsnorm(ops, h, x, ly->post_attention_norm, L, H, eps, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, gu, h, L, ly->gate_up_w, NULL, err)) < 0 ||
		    (rc = vlm_op_silu_mul(ops, act, gu, gu + I, L, I, 2 * I, err)) < 0 ||
		    (rc = vlm_op_matmul(ops, h, act, L, ly->down_w, NULL, err)) < 0 ||
		    (rc = vlm_op_rmsnorm(ops, h, h, ly->post_mlp_norm, L, H, eps, err)) < 0 ||
		    (rc = vlm_op_add(ops, x, x, h, L * H, err)) < 0)
			return rc;
		char name[32];
		snprintf(name, sizeof name, "text.layer.%d", l);
		vlm_trace_emit(trace, name, x, L, H);
	}
	int64_t first = all_logits ? 0 : L - 1, rows = L - first;
	if ((rc = vlm_op_rmsnorm(ops, x + first * H, x + first * H, w->norm, rows, H, eps, err)) <
	    0)
		return rc;
	vlm_trace_emit(trace, "text.norm", x + first * H, rows, H);
	if ((rc = vlm_op_matmul(ops, logits, x + first * H, rows, w->lm_head, NULL, err)) < 0)
		return rc;
	vlm_trace_emit(trace, "text.logits", logits, rows, tc->vocab_size);
	return 0;
}
