/* Internal to the CPU ops: the reference ops (ops_ref.c) and the fast ops (ops_fast.c) behind the
 * checked interface in ops.h. Arguments here are already validated by ops.c (shapes, dtypes,
 * ranges), so these functions cannot fail and return nothing. Shapes as in ops.h. */
#ifndef VLM_OPS_CPU_H
#define VLM_OPS_CPU_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/pool.h"
#include "ops.h"
#include "tensor.h"

/* Largest head dim the fast rope and attention keep on the stack; ops.c rejects larger ones. */
#define VLM_CPU_MAX_HEAD_DIM 512

/* RoPE frequency theta^(-2j/dim) computed as torch does in f32: 1 / theta ** (2j / dim). */
static inline float vlm_cpu_inv_freq(float theta, int j, int dim)
{
	return 1.0f / powf(theta, (float)(2 * j) / (float)dim);
}

/* What the fast ops run on: the pool, the ISA choice and per-thread scratch. */
struct vlm_cpu {
	struct vlm_pool *pool;
	int n_threads;
	bool avx2;
	bool bf16;      /* bf16 activations in matmul (ops.h: vlm_ops_set_bf16) */
	float *scratch; /* n_threads * vlm_fast_scratch_floats(), 64-byte aligned, owned by ops.c */
	uint16_t *xb;   /* vlm_fast_xb_elems() bf16 for matmul inputs once bf16 has been turned on,
			 * owned by ops.c */
};

/* Reference ops: plain loops, one thread. */
void vlm_ref_matmul(float *y, const float *x, int64_t M, const struct vlm_tensor *w,
		    const struct vlm_tensor *bias);
void vlm_ref_rmsnorm(float *y, const float *x, const struct vlm_tensor *w, int64_t M, int64_t D,
		     float eps);
void vlm_ref_layernorm(float *y, const float *x, const struct vlm_tensor *w,
		       const struct vlm_tensor *b, int64_t M, int64_t D, float eps);
void vlm_ref_silu_mul(float *out, const float *gate, const float *up, int64_t M, int64_t n,
		      int64_t in_stride);
void vlm_ref_gelu_erf(float *y, const float *x, int64_t n);
void vlm_ref_add(float *y, const float *a, const float *b, int64_t n);
void vlm_ref_embedding(float *y, const struct vlm_tensor *table, const int32_t *ids, int64_t L);
int64_t vlm_ref_argmax(const float *x, int64_t n);
void vlm_ref_softmax(float *y, const float *x, int64_t M, int64_t n);
void vlm_ref_log_softmax(float *y, const float *x, int64_t M, int64_t n);
void vlm_ref_rope_text(float *x, int64_t L, int H, int hd, int64_t stride, int rotary_dim,
		       const int sections[3], const int32_t *pos, float theta);
void vlm_ref_rope_vision(float *x, int64_t N, int H, int hd, int64_t stride, const int32_t *hw,
			 float theta);
void vlm_ref_attention(const struct vlm_attn *a);

/* Fast ops: the same contracts, threaded over `cpu->pool`. */
size_t vlm_fast_scratch_floats(void);
size_t vlm_fast_xb_elems(void);
bool vlm_fast_avx2_supported(void);
bool vlm_fast_bf16_supported(void);
void vlm_fast_matmul(const struct vlm_cpu *cpu, float *y, const float *x, int64_t M,
		     const struct vlm_tensor *w, const struct vlm_tensor *bias);
void vlm_fast_rmsnorm(const struct vlm_cpu *cpu, float *y, const float *x,
		      const struct vlm_tensor *w, int64_t M, int64_t D, float eps);
void vlm_fast_layernorm(const struct vlm_cpu *cpu, float *y, const float *x,
			const struct vlm_tensor *w, const struct vlm_tensor *b, int64_t M,
			int64_t D, float eps);
void vlm_fast_silu_mul(const struct vlm_cpu *cpu, float *out, const float *gate, const float *up,
		       int64_t M, int64_t n, int64_t in_stride);
void vlm_fast_gelu_erf(const struct vlm_cpu *cpu, float *y, const float *x, int64_t n);
void vlm_fast_add(const struct vlm_cpu *cpu, float *y, const float *a, const float *b, int64_t n);
void vlm_fast_softmax(const struct vlm_cpu *cpu, float *y, const float *x, int64_t M, int64_t n,
		      bool log);
void vlm_fast_rope_text(const struct vlm_cpu *cpu, float *x, int64_t L, int H, int hd,
			int64_t stride, int rotary_dim, const int sections[3], const int32_t *pos,
			float theta);
void vlm_fast_rope_vision(const struct vlm_cpu *cpu, float *x, int64_t N, int H, int hd,
			  int64_t stride, const int32_t *hw, float theta);
void vlm_fast_attention(const struct vlm_cpu *cpu, const struct vlm_attn *a);

#endif
