/* The op interface (ops.h): owns the ops context (thread pool, per-thread scratch, the choice of
 * implementation), checks every op's shapes and dtypes, then dispatches to the reference loops
 * (cpu/ops_ref.c) or the fast paths (cpu/ops_fast.c). Checking here means neither implementation
 * needs to, and both see exactly the same arguments. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ops_cpu.h"
#include "ops.h"

struct vlm_ops {
	enum vlm_ops_impl impl;
	struct vlm_cpu cpu;
};

static const char *const impl_names[] = {
	[VLM_OPS_REF] = "reference",
	[VLM_OPS_PORTABLE] = "portable",
	[VLM_OPS_AVX2] = "avx2",
};
_Static_assert(sizeof impl_names / sizeof impl_names[0] == VLM_OPS_IMPL_COUNT,
	       "one name per implementation");

const char *vlm_ops_impl_name(enum vlm_ops_impl impl)
{
	return (unsigned)impl < VLM_OPS_IMPL_COUNT ? impl_names[impl] : "unknown";
}

bool vlm_ops_impl_supported(enum vlm_ops_impl impl)
{
	if (impl == VLM_OPS_AVX2)
		return vlm_fast_avx2_supported();
	return (unsigned)impl < VLM_OPS_IMPL_COUNT;
}

int vlm_ops_new(int n_threads, struct vlm_ops **out, vlm_err *err)
{
	*out = NULL;
	struct vlm_ops *ops = calloc(1, sizeof *ops);
	if (!ops)
		return vlm_err_set(err, -ENOMEM, "ops: context: out of memory");
	int rc = vlm_pool_new(n_threads, &ops->cpu.pool, err);
	if (rc < 0) {
		vlm_ops_free(ops);
		return rc;
	}
	ops->cpu.n_threads = vlm_pool_n_threads(ops->cpu.pool);
	size_t bytes = sizeof(float) * vlm_fast_scratch_floats() * (size_t)ops->cpu.n_threads;
	ops->cpu.scratch = aligned_alloc(64, bytes);
	if (!ops->cpu.scratch) {
		vlm_ops_free(ops);
		return vlm_err_set(err, -ENOMEM, "ops: scratch of %zu bytes: out of memory", bytes);
	}
	ops->cpu.avx2 = vlm_fast_avx2_supported();
	ops->impl = ops->cpu.avx2 ? VLM_OPS_AVX2 : VLM_OPS_PORTABLE;
	*out = ops;
	return 0;
}

void vlm_ops_free(struct vlm_ops *ops)
{
	if (!ops)
		return;
	vlm_pool_free(ops->cpu.pool);
	free(ops->cpu.scratch);
	free(ops->cpu.xb);
	free(ops);
}

int vlm_ops_set_impl(struct vlm_ops *ops, enum vlm_ops_impl impl, vlm_err *err)
{
	if (!vlm_ops_impl_supported(impl))
		return vlm_err_set(err, -ENOTSUP, "ops: implementation '%s': not supported here",
				   vlm_ops_impl_name(impl));
	ops->impl = impl;
	ops->cpu.avx2 = impl == VLM_OPS_AVX2;
	return 0;
}

bool vlm_ops_bf16_supported(void)
{
	return vlm_fast_bf16_supported();
}

int vlm_ops_set_bf16(struct vlm_ops *ops, bool on, vlm_err *err)
{
	if (on && !vlm_fast_bf16_supported())
		return vlm_err_set(err, -ENOTSUP,
				   "ops: precision 'bf16': this CPU or build lacks AVX512_BF16");
	if (on && !ops->cpu.xb) {
		size_t bytes = sizeof(uint16_t) * vlm_fast_xb_elems();
		ops->cpu.xb = aligned_alloc(64, bytes);
		if (!ops->cpu.xb)
			return vlm_err_set(err, -ENOMEM,
					   "ops: bf16 activation buffer of %zu bytes: "
					   "out of memory",
					   bytes);
	}
	ops->cpu.bf16 = on;
	return 0;
}

bool vlm_ops_get_bf16(const struct vlm_ops *ops)
{
	return ops->cpu.bf16;
}

enum vlm_ops_impl vlm_ops_get_impl(const struct vlm_ops *ops)
{
	return ops->impl;
}

int vlm_ops_n_threads(const struct vlm_ops *ops)
{
	return ops->cpu.n_threads;
}

static bool is_ref(const struct vlm_ops *ops)
{
	return ops->impl == VLM_OPS_REF;
}

static const char *tname(const struct vlm_tensor *t)
{
	return t->name ? t->name : "(unnamed)";
}

static bool is_float(enum vlm_dtype dt)
{
	return dt == VLM_DTYPE_F32 || dt == VLM_DTYPE_F16 || dt == VLM_DTYPE_BF16;
}

/* A float tensor holding exactly n elements (any shape: norms and biases come as [n]). */
static int check_vector(const char *op, const struct vlm_tensor *t, int64_t n, vlm_err *err)
{
	if (!t || !t->data)
		return vlm_err_set(err, -EINVAL, "ops: %s: missing weight", op);
	if (!is_float(t->dtype))
		return vlm_err_set(err, -EINVAL, "ops: %s: tensor '%s': not a float tensor", op,
				   tname(t));
	if (vlm_tensor_numel(t) != n)
		return vlm_err_set(err, -EINVAL,
				   "ops: %s: tensor '%s': %lld elements, expected %lld", op,
				   tname(t), (long long)vlm_tensor_numel(t), (long long)n);
	return 0;
}

static int check_dims(const char *op, int64_t a, int64_t b, vlm_err *err)
{
	if (a < 0 || b < 0)
		return vlm_err_set(err, -EINVAL, "ops: %s: negative size (%lld, %lld)", op,
				   (long long)a, (long long)b);
	return 0;
}

int vlm_op_matmul(struct vlm_ops *ops, float *y, const float *x, int64_t M,
		  const struct vlm_tensor *w, const struct vlm_tensor *bias, vlm_err *err)
{
	if (!w || !w->data || w->n_dims != 2 || !is_float(w->dtype))
		return vlm_err_set(err, -EINVAL, "ops: matmul: weight '%s': not a 2-D float tensor",
				   w ? tname(w) : "(null)");
	if (w->shape[0] < 1 || w->shape[1] < 1 || M < 0)
		return vlm_err_set(err, -EINVAL, "ops: matmul: weight '%s': empty shape", tname(w));
	if (bias) {
		int rc = check_vector("matmul bias", bias, w->shape[0], err);
		if (rc < 0)
			return rc;
	}
	if (M == 0)
		return 0;
	if (is_ref(ops))
		vlm_ref_matmul(y, x, M, w, bias);
	else
		vlm_fast_matmul(&ops->cpu, y, x, M, w, bias);
	return 0;
}

int vlm_op_rmsnorm(struct vlm_ops *ops, float *y, const float *x, const struct vlm_tensor *w,
		   int64_t M, int64_t D, float eps, vlm_err *err)
{
	int rc = check_dims("rmsnorm", M, D, err);
	if (rc == 0)
		rc = check_vector("rmsnorm", w, D, err);
	if (rc < 0)
		return rc;
	if (is_ref(ops))
		vlm_ref_rmsnorm(y, x, w, M, D, eps);
	else
		vlm_fast_rmsnorm(&ops->cpu, y, x, w, M, D, eps);
	return 0;
}

int vlm_op_layernorm(struct vlm_ops *ops, float *y, const float *x, const struct vlm_tensor *w,
		     const struct vlm_tensor *b, int64_t M, int64_t D, float eps, vlm_err *err)
{
	int rc = check_dims("layernorm", M, D, err);
	if (rc == 0)
		rc = check_vector("layernorm", w, D, err);
	if (rc == 0)
		rc = check_vector("layernorm bias", b, D, err);
	if (rc < 0)
		return rc;
	if (is_ref(ops))
		vlm_ref_layernorm(y, x, w, b, M, D, eps);
	else
		vlm_fast_layernorm(&ops->cpu, y, x, w, b, M, D, eps);
	return 0;
}

int vlm_op_silu_mul(struct vlm_ops *ops, float *out, const float *gate, const float *up, int64_t M,
		    int64_t n, int64_t in_stride, vlm_err *err)
{
	int rc = check_dims("silu_mul", M, n, err);
	if (rc < 0)
		return rc;
	if (in_stride < n)
		return vlm_err_set(err, -EINVAL, "ops: silu_mul: row stride %lld < width %lld",
				   (long long)in_stride, (long long)n);
	if (is_ref(ops))
		vlm_ref_silu_mul(out, gate, up, M, n, in_stride);
	else
		vlm_fast_silu_mul(&ops->cpu, out, gate, up, M, n, in_stride);
	return 0;
}

int vlm_op_gelu_erf(struct vlm_ops *ops, float *y, const float *x, int64_t n, vlm_err *err)
{
	int rc = check_dims("gelu_erf", n, 0, err);
	if (rc < 0)
		return rc;
	if (is_ref(ops))
		vlm_ref_gelu_erf(y, x, n);
	else
		vlm_fast_gelu_erf(&ops->cpu, y, x, n);
	return 0;
}

int vlm_op_add(struct vlm_ops *ops, float *y, const float *a, const float *b, int64_t n,
	       vlm_err *err)
{
	int rc = check_dims("add", n, 0, err);
	if (rc < 0)
		return rc;
	if (is_ref(ops))
		vlm_ref_add(y, a, b, n);
	else
		vlm_fast_add(&ops->cpu, y, a, b, n);
	return 0;
}

/* A gather of L rows is a copy: the reference loop is already as fast as it needs to be. */
int vlm_op_embedding(struct vlm_ops *ops, float *y, const struct vlm_tensor *table,
		     const int32_t *ids, int64_t L, vlm_err *err)
{
	if (!table || !table->data || table->n_dims != 2 || !is_float(table->dtype))
		return vlm_err_set(err, -EINVAL,
				   "ops: embedding: table '%s': not a 2-D float tensor",
				   table ? tname(table) : "(null)");
	for (int64_t i = 0; i < L; i++)
		if (ids[i] < 0 || ids[i] >= table->shape[0])
			return vlm_err_set(err, -EINVAL,
					   "ops: embedding: table '%s': token id %d at %lld "
					   "outside [0, %lld)",
					   tname(table), ids[i], (long long)i,
					   (long long)table->shape[0]);
	vlm_ref_embedding(y, table, ids, L);
	return 0;
}

/* One pass over at most a vocabulary row per token: not worth threads. */
int vlm_op_argmax(struct vlm_ops *ops, const float *x, int64_t n, int64_t *index, vlm_err *err)
{
	if (n < 1)
		return vlm_err_set(err, -EINVAL, "ops: argmax: empty row");
	*index = vlm_ref_argmax(x, n);
	return 0;
}

static int softmax_common(struct vlm_ops *ops, float *y, const float *x, int64_t M, int64_t n,
			  bool log, vlm_err *err)
{
	const char *op = log ? "log_softmax" : "softmax";
	int rc = check_dims(op, M, n, err);
	if (rc < 0)
		return rc;
	if (n < 1)
		return vlm_err_set(err, -EINVAL, "ops: %s: empty row", op);
	if (!is_ref(ops))
		vlm_fast_softmax(&ops->cpu, y, x, M, n, log);
	else if (log)
		vlm_ref_log_softmax(y, x, M, n);
	else
		vlm_ref_softmax(y, x, M, n);
	return 0;
}

int vlm_op_softmax(struct vlm_ops *ops, float *y, const float *x, int64_t M, int64_t n,
		   vlm_err *err)
{
	return softmax_common(ops, y, x, M, n, false, err);
}

int vlm_op_log_softmax(struct vlm_ops *ops, float *y, const float *x, int64_t M, int64_t n,
		       vlm_err *err)
{
	return softmax_common(ops, y, x, M, n, true, err);
}

static int check_heads(const char *op, int64_t L, int H, int hd, int64_t stride, vlm_err *err)
{
	if (L < 0 || H < 1 || hd < 2 || hd % 2 != 0)
		return vlm_err_set(err, -EINVAL, "ops: %s: bad shape [%lld, %d, %d]", op,
				   (long long)L, H, hd);
	if (hd > VLM_CPU_MAX_HEAD_DIM)
		return vlm_err_set(err, -E2BIG, "ops: %s: head dim %d above the supported %d", op,
				   hd, VLM_CPU_MAX_HEAD_DIM);
	if (stride < (int64_t)H * hd)
		return vlm_err_set(err, -EINVAL, "ops: %s: row stride %lld < %d heads x %d", op,
				   (long long)stride, H, hd);
	return 0;
}

int vlm_op_rope_text(struct vlm_ops *ops, float *x, int64_t L, int H, int hd, int64_t stride,
		     int rotary_dim, const int sections[3], const int32_t *pos, float theta,
		     vlm_err *err)
{
	int rc = check_heads("rope_text", L, H, hd, stride, err);
	if (rc < 0)
		return rc;
	if (rotary_dim < 2 || rotary_dim > hd || rotary_dim % 2 != 0)
		return vlm_err_set(err, -EINVAL, "ops: rope_text: rotary dim %d for head dim %d",
				   rotary_dim, hd);
	if (sections[0] < 0 || sections[1] < 0 || sections[2] < 0 ||
	    sections[0] + sections[1] + sections[2] != rotary_dim / 2)
		return vlm_err_set(err, -EINVAL,
				   "ops: rope_text: mrope sections [%d, %d, %d] do not sum to %d",
				   sections[0], sections[1], sections[2], rotary_dim / 2);
	if (is_ref(ops))
		vlm_ref_rope_text(x, L, H, hd, stride, rotary_dim, sections, pos, theta);
	else
		vlm_fast_rope_text(&ops->cpu, x, L, H, hd, stride, rotary_dim, sections, pos,
				   theta);
	return 0;
}

int vlm_op_rope_vision(struct vlm_ops *ops, float *x, int64_t N, int H, int hd, int64_t stride,
		       const int32_t *hw, float theta, vlm_err *err)
{
	int rc = check_heads("rope_vision", N, H, hd, stride, err);
	if (rc < 0)
		return rc;
	if (hd % 4 != 0)
		return vlm_err_set(err, -EINVAL,
				   "ops: rope_vision: head dim %d not a multiple of 4", hd);
	if (is_ref(ops))
		vlm_ref_rope_vision(x, N, H, hd, stride, hw, theta);
	else
		vlm_fast_rope_vision(&ops->cpu, x, N, H, hd, stride, hw, theta);
	return 0;
}

static int check_attention(const struct vlm_attn *a, vlm_err *err)
{
	int rc = check_heads("attention", a->L, a->n_head, a->head_dim, a->q_stride, err);
	if (rc < 0)
		return rc;
	if (a->n_kv_head < 1 || a->n_head % a->n_kv_head != 0)
		return vlm_err_set(err, -EINVAL, "ops: attention: %d query heads over %d kv heads",
				   a->n_head, a->n_kv_head);
	if (a->kv_stride < (int64_t)a->n_kv_head * a->head_dim)
		return vlm_err_set(err, -EINVAL, "ops: attention: kv row stride %lld too small",
				   (long long)a->kv_stride);
	if (a->mask == VLM_ATTN_CAUSAL) {
		if (a->past < 0 || a->T < a->past + a->L)
			return vlm_err_set(err, -EINVAL,
					   "ops: attention: %lld keys for %lld past + %lld queries",
					   (long long)a->T, (long long)a->past, (long long)a->L);
		return 0;
	}
	if (a->mask != VLM_ATTN_SEGMENTS || !a->cu_seqlens || a->n_segments < 1)
		return vlm_err_set(err, -EINVAL, "ops: attention: unknown mask or no segments");
	if (a->T != a->L || a->cu_seqlens[0] != 0 || a->cu_seqlens[a->n_segments] != a->L)
		return vlm_err_set(err, -EINVAL,
				   "ops: attention: segments must cover the %lld queries exactly",
				   (long long)a->L);
	for (int s = 0; s < a->n_segments; s++)
		if (a->cu_seqlens[s + 1] < a->cu_seqlens[s])
			return vlm_err_set(err, -EINVAL,
					   "ops: attention: cu_seqlens not ascending at %d", s);
	return 0;
}

int vlm_op_attention(struct vlm_ops *ops, const struct vlm_attn *a, vlm_err *err)
{
	int rc = check_attention(a, err);
	if (rc < 0)
		return rc;
	if (is_ref(ops))
		vlm_ref_attention(a);
	else
		vlm_fast_attention(&ops->cpu, a);
	return 0;
}
