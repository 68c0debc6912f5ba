/* The op interface the model code (vision.c, text.c) is written against. Every op computes in
 * f32; weights are struct vlm_tensor views (bf16, f16 or f32, used in place, never converted as a
 * whole). Each op checks its shapes, then runs either the plain reference loops (cpu/ops_ref.c,
 * the ground truth) or the fast SIMD + threaded version (cpu/ops_fast.c), as the context says.
 *
 * Shape notation: [A, B] is a row-major f32 array with B contiguous; a "row stride" is the
 * distance in floats between consecutive rows of the slowest axis when it is not the natural
 * one. M = rows (tokens), K = input features, N = output features, D = model width, L = query
 * tokens, T = key tokens, H = heads, hd = head dim.
 *
 * Ownership: ops never keep pointers past the call and never allocate; outputs are caller-owned.
 * In-place use (y == x) is allowed where a prototype says so, other buffers must not overlap.
 * Thread safety: a context runs one op at a time (its pool and scratch are shared by that op). */
#ifndef VLM_OPS_H
#define VLM_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor.h"
#include "vlm.h"

enum vlm_ops_impl {
	VLM_OPS_REF,      /* plain loops, one thread: the ground truth */
	VLM_OPS_PORTABLE, /* threaded, blocked, plain C inner loops (any CPU) */
	VLM_OPS_AVX2,     /* threaded, blocked, AVX2 + FMA + F16C inner loops */
	VLM_OPS_IMPL_COUNT
};

struct vlm_ops;

/* Creates a context with its thread pool (n_threads <= 0: online CPUs) and per-thread scratch.
 * The implementation starts as the best one this CPU supports. */
int vlm_ops_new(int n_threads, struct vlm_ops **out, vlm_err *err);
void vlm_ops_free(struct vlm_ops *ops); /* accepts NULL */
/* Switches the implementation (tests and the trace force VLM_OPS_REF). -ENOTSUP when this CPU
 * (or this build) cannot run `impl`. */
int vlm_ops_set_impl(struct vlm_ops *ops, enum vlm_ops_impl impl, vlm_err *err);
enum vlm_ops_impl vlm_ops_get_impl(const struct vlm_ops *ops);
bool vlm_ops_impl_supported(enum vlm_ops_impl impl);
const char *vlm_ops_impl_name(enum vlm_ops_impl impl);
int vlm_ops_n_threads(const struct vlm_ops *ops);
/* Opt-in bf16 activations (off by default; the f32 numerics stay the default everywhere).
 * When on, fast matmuls with bf16 weights, M > 1 rows (prefill, the vision tower) and K up to
 * 524288 round each x row to bf16 (nearest even) and accumulate the exact bf16 products in f32
 * with AVX512_BF16 dot products, as torch's oneDNN bf16 linears do: about twice the f32 FMA
 * rate. Fast attention with 48 query rows or more rounds q, k, v and the softmax probabilities
 * to bf16 the same way (scores, softmax and sums in f32, as torch's bf16
 * scaled_dot_product_attention). M = 1 matmuls (decode: bound by memory bandwidth, nothing to
 * gain), other weight dtypes, every other op and the reference implementation stay f32.
 * Turning it on allocates an 8 MiB buffer (-ENOMEM); -ENOTSUP where this CPU or this build's
 * compiler lacks AVX512_BF16. */
int vlm_ops_set_bf16(struct vlm_ops *ops, bool on, vlm_err *err);
bool vlm_ops_bf16_supported(void);
bool vlm_ops_get_bf16(const struct vlm_ops *ops);

/* y [M, N] = x [M, K] . w[N, K]^T (+ bias[N]). w: bf16/f16/f32 [N, K]; bias: NULL or any float
 * dtype with N elements. */
int vlm_op_matmul(struct vlm_ops *ops, float *y, const float *x, int64_t M,
		  const struct vlm_tensor *w, const struct vlm_tensor *bias, vlm_err *err);

/* y [M, D] = x [M, D] / sqrt(mean(x^2) + eps) * w[D]. In place allowed. */
int vlm_op_rmsnorm(struct vlm_ops *ops, float *y, const float *x, const struct vlm_tensor *w,
		   int64_t M, int64_t D, float eps, vlm_err *err);
/* y [M, D] = (x - mean) / sqrt(var + eps) * w[D] + b[D] (biased variance). In place allowed. */
int vlm_op_layernorm(struct vlm_ops *ops, float *y, const float *x, const struct vlm_tensor *w,
		     const struct vlm_tensor *b, int64_t M, int64_t D, float eps, vlm_err *err);
/* out [M, n] = silu(gate) * up, where gate and up are [M, n] views with row stride `in_stride`:
 * fused [gate | up] rows of width 2n use (gate = gu, up = gu + n, in_stride = 2n); separate
 * buffers use in_stride = n. out may equal gate (then in_stride must be n). */
int vlm_op_silu_mul(struct vlm_ops *ops, float *out, const float *gate, const float *up, int64_t M,
		    int64_t n, int64_t in_stride, vlm_err *err);
/* y [n] = x * Phi(x) with the exact erf. In place allowed. */
int vlm_op_gelu_erf(struct vlm_ops *ops, float *y, const float *x, int64_t n, vlm_err *err);
/* y [n] = a + b. y may equal a or b. */
int vlm_op_add(struct vlm_ops *ops, float *y, const float *a, const float *b, int64_t n,
	       vlm_err *err);
/* y [L, D] = table[ids[i], :] for table bf16/f16/f32 [V, D]; -EINVAL for an id outside [0, V). */
int vlm_op_embedding(struct vlm_ops *ops, float *y, const struct vlm_tensor *table,
		     const int32_t *ids, int64_t L, vlm_err *err);
/* Index of the largest of x [n] (the first one on ties; NaN never wins). -EINVAL when n < 1. */
int vlm_op_argmax(struct vlm_ops *ops, const float *x, int64_t n, int64_t *index, vlm_err *err);
/* y [M, n] = softmax / log_softmax of each row of x [M, n]. In place allowed. */
int vlm_op_softmax(struct vlm_ops *ops, float *y, const float *x, int64_t M, int64_t n,
		   vlm_err *err);
int vlm_op_log_softmax(struct vlm_ops *ops, float *y, const float *x, int64_t M, int64_t n,
		       vlm_err *err);

/* Text M-RoPE, in place on x [L, H, hd] (row stride `stride` >= H*hd between tokens):
 * for each head and j < rotary_dim/2 the pair (2j, 2j+1) is rotated by
 * angle = pos[s(j)][i] * theta^(-2j/rotary_dim) (f32), where s(j) is 0, 1 or 2 as j falls in the
 * first sections[0], the next sections[1] or the last sections[2] frequencies
 * (sections sum to rotary_dim/2). pos: int32 [3, L] (temporal, height, width streams).
 * Dims >= rotary_dim are untouched. */
int vlm_op_rope_text(struct vlm_ops *ops, float *x, int64_t L, int H, int hd, int64_t stride,
		     int rotary_dim, const int sections[3], const int32_t *pos, float theta,
		     vlm_err *err);
/* Vision 2-D RoPE (NeoX halves), in place on x [N, H, hd] (row stride `stride`): with q = hd/4 and
 * inv_freq_j = theta^(-2j/(hd/2)), angle[k] = hw[i][0]*inv_freq_k for k < q, hw[i][1]*inv_freq_(k-q)
 * for q <= k < 2q; pair (k, k + hd/2) for k < hd/2 is rotated by angle[k]. hw: int32 [N, 2]
 * (row h, column w of each patch). hd must be a multiple of 4. */
int vlm_op_rope_vision(struct vlm_ops *ops, float *x, int64_t N, int H, int hd, int64_t stride,
		       const int32_t *hw, float theta, vlm_err *err);

enum vlm_attn_mask {
	VLM_ATTN_CAUSAL,  /* query i (absolute position past + i) sees keys 0 .. past + i */
	VLM_ATTN_SEGMENTS /* query i in segment s sees keys cu_seqlens[s] .. cu_seqlens[s+1]-1 */
};

struct vlm_attn {
	int64_t L, T;          /* queries, keys */
	int n_head, n_kv_head; /* n_head a multiple of n_kv_head; query head n uses kv head
			        * n / (n_head / n_kv_head) */
	int head_dim;
	const float *q; /* [L, n_head, hd], row stride q_stride */
	int64_t q_stride;
	const float *k, *v; /* [T, n_kv_head, hd], row stride kv_stride (a KV cache) */
	int64_t kv_stride;
	float *out; /* [L, n_head * hd], contiguous; must not overlap q, k, v */
	enum vlm_attn_mask mask;
	int64_t past;              /* CAUSAL: T >= past + L */
	const int32_t *cu_seqlens; /* SEGMENTS: [n_segments + 1], 0 .. L ascending, L == T */
	int n_segments;
};

/* Scaled dot-product attention (scale 1/sqrt(hd)), softmax in f32. Uses the context's per-thread
 * scratch (a K^T tile), nothing that grows with T. */
int vlm_op_attention(struct vlm_ops *ops, const struct vlm_attn *a, vlm_err *err);

#endif
