/* The reference CPU ops: the ground truth every fast path (SIMD, threaded, CUDA) is tested
 * against. Plain loops that follow the math in ops.h and design/glm4v.md line by line, one
 * thread, sums in double where that costs nothing in clarity. Not tuned and not meant to be:
 * speed lives in ops_fast.c. Arguments are validated by ops.c. */
#include <float.h>
#include <math.h>

#include "cpu/ops_cpu.h"

void vlm_ref_matmul(float *y, const float *x, int64_t M, const struct vlm_tensor *w,
		    const struct vlm_tensor *bias)
{
	int64_t N = w->shape[0], K = w->shape[1];
	for (int64_t m = 0; m < M; m++) {
		for (int64_t n = 0; n < N; n++) {
			double acc = bias ? vlm_float_load(bias->dtype, bias->data, n) : 0.0;
			for (int64_t k = 0; k < K; k++)
				acc += (double)x[m * K + k] *
				       vlm_float_load(w->dtype, w->data, n * K + k);
			y[m * N + n] = (float)acc;
		}
	}
}

void vlm_ref_rmsnorm(float *y, const float *x, const struct vlm_tensor *w, int64_t M, int64_t D,
		     float eps)
{
	for (int64_t m = 0; m < M; m++) {
		const float *xr = x + m * D;
		float *yr = y + m * D;
		double ss = 0;
		for (int64_t d = 0; d < D; d++)
			ss += (double)xr[d] * xr[d];
		float inv = (float)(1.0 / sqrt(ss / (double)D + eps));
		for (int64_t d = 0; d < D; d++)
			yr[d] = xr[d] * inv * vlm_float_load(w->dtype, w->data, d);
	}
}

void vlm_ref_layernorm(float *y, const float *x, const struct vlm_tensor *w,
		       const struct vlm_tensor *b, int64_t M, int64_t D, float eps)
{
	for (int64_t m = 0; m < M; m++) {
		const float *xr = x + m * D;
		float *yr = y + m * D;
		double sum = 0, var = 0;
		for (int64_t d = 0; d < D; d++)
			sum += xr[d];
		double mean = sum / (double)D;
		for (int64_t d = 0; d < D; d++)
			var += (xr[d] - mean) * (xr[d] - mean);
		float inv = (float)(1.0 / sqrt(var / (double)D + eps));
		for (int64_t d = 0; d < D; d++)
			yr[d] = (float)(xr[d] - mean) * inv * vlm_float_load(w->dtype, w->data, d) +
				vlm_float_load(b->dtype, b->data, d);
	}
}

void vlm_ref_silu_mul(float *out, const float *gate, const float *up, int64_t M, int64_t n,
		      int64_t in_stride)
{
	for (int64_t m = 0; m < M; m++) {
		for (int64_t j = 0; j < n; j++) {
			float g = gate[m * in_stride + j], u = up[m * in_stride + j];
			out[m * n + j] = g / (1.0f + expf(-g)) * u;
		}
	}
}

void vlm_ref_gelu_erf(float *y, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void vlm_ref_add(float *y, const float *a, const float *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

void vlm_ref_embedding(float *y, const struct vlm_tensor *table, const int32_t *ids, int64_t L)
{
	int64_t D = table->shape[1];
	for (int64_t i = 0; i < L; i++)
		for (int64_t d = 0; d < D; d++)
			y[i * D + d] = vlm_float_load(table->dtype, table->data, ids[i] * D + d);
}

int64_t vlm_ref_argmax(const float *x, int64_t n)
{
	int64_t best = -1;
	for (int64_t i = 0; i < n; i++)
		if (!isnan(x[i]) && (best < 0 || x[i] > x[best]))
			best = i;
	return best < 0 ? 0 : best;
}

/* Row maximum and sum of exp(x - max): the shared start of softmax and log_softmax. */
static void ref_softmax_stats(const float *x, int64_t n, float *max, double *sum)
{
	float m = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		m = fmaxf(m, x[i]);
	double s = 0;
	for (int64_t i = 0; i < n; i++)
		s += exp((double)x[i] - m);
	*max = m;
	*sum = s;
}

void vlm_ref_softmax(float *y, const float *x, int64_t M, int64_t n)
{
	for (int64_t r = 0; r < M; r++) {
		float m;
		double s;
		ref_softmax_stats(x + r * n, n, &m, &s);
		for (int64_t i = 0; i < n; i++)
			y[r * n + i] = (float)(exp((double)x[r * n + i] - m) / s);
	}
}

void vlm_ref_log_softmax(float *y, const float *x, int64_t M, int64_t n)
{
	for (int64_t r = 0; r < M; r++) {
		float m;
		double s;
		ref_softmax_stats(x + r * n, n, &m, &s);
		for (int64_t i = 0; i < n; i++)
			y[r * n + i] = (float)((double)x[r * n + i] - m - log(s));
	}
}

void vlm_ref_rope_text(float *x, int64_t L, int H, int hd, int64_t stride, int rotary_dim,
		       const int sections[3], const int32_t *pos, float theta)
{
	for (int64_t i = 0; i < L; i++) {
		for (int h = 0; h < H; h++) {
			float *v = x + i * stride + (int64_t)h * hd;
			for (int j = 0; j < rotary_dim / 2; j++) {
				int s = j < sections[0] ? 0 : j < sections[0] + sections[1] ? 1 : 2;
				float angle = (float)pos[s * L + i] *
					      vlm_cpu_inv_freq(theta, j, rotary_dim);
				float c = cosf(angle), sn = sinf(angle);
				float a = v[2 * j], b = v[2 * j + 1];
				v[2 * j] = a * c - b * sn;
				v[2 * j + 1] = b * c + a * sn;
			}
		}
	}
}

void vlm_ref_rope_vision(float *x, int64_t N, int H, int hd, int64_t stride, const int32_t *hw,
			 float theta)
{
	int half = hd / 2, quarter = hd / 4;
	for (int64_t i = 0; i < N; i++) {
		for (int h = 0; h < H; h++) {
			float *v = x + i * stride + (int64_t)h * hd;
			for (int k = 0; k < half; k++) {
				float angle = k < quarter
						      ? (float)hw[2 * i] *
								vlm_cpu_inv_freq(theta, k, half)
						      : (float)hw[2 * i + 1] *
								vlm_cpu_inv_freq(theta, k - quarter,
										 half);
				float c = cosf(angle), sn = sinf(angle);
				float a = v[k], b = v[k + half];
				v[k] = a * c - b * sn;
				v[k + half] = b * c + a * sn;
			}
		}
	}
}

/* The keys query i may see: [*lo, *hi). */
static void ref_attn_range(const struct vlm_attn *a, int64_t i, int64_t *lo, int64_t *hi)
{
	if (a->mask == VLM_ATTN_CAUSAL) {
		*lo = 0;
		*hi = a->past + i + 1;
		return;
	}
	int s = 0;
	while (a->cu_seqlens[s + 1] <= i)
		s++;
	*lo = a->cu_seqlens[s];
	*hi = a->cu_seqlens[s + 1];
}

static float ref_attn_score(const struct vlm_attn *a, const float *q, int64_t t, int kvh)
{
	const float *k = a->k + t * a->kv_stride + (int64_t)kvh * a->head_dim;
	double dot = 0;
	for (int d = 0; d < a->head_dim; d++)
		dot += (double)q[d] * k[d];
	return (float)(dot / sqrt((double)a->head_dim));
}

/* Three passes per query (max, sum, weighted V), recomputing scores instead of storing them. */
void vlm_ref_attention(const struct vlm_attn *a)
{
	int hd = a->head_dim, group = a->n_head / a->n_kv_head;
	for (int64_t i = 0; i < a->L; i++) {
		int64_t lo, hi;
		ref_attn_range(a, i, &lo, &hi);
		for (int n = 0; n < a->n_head; n++) {
			const float *q = a->q + i * a->q_stride + (int64_t)n * hd;
			float *o = a->out + (i * a->n_head + n) * hd;
			int kvh = n / group;
			float m = -INFINITY;
			for (int64_t t = lo; t < hi; t++)
				m = fmaxf(m, ref_attn_score(a, q, t, kvh));
			double sum = 0;
			for (int64_t t = lo; t < hi; t++)
				sum += exp((double)ref_attn_score(a, q, t, kvh) - m);
			for (int d = 0; d < hd; d++)
				o[d] = 0;
			for (int64_t t = lo; t < hi; t++) {
				float p = (float)(exp((double)ref_attn_score(a, q, t, kvh) - m) /
						  sum);
				const float *v = a->v + t * a->kv_stride + (int64_t)kvh * hd;
				for (int d = 0; d < hd; d++)
					o[d] += p * v[d];
			}
		}
	}
}
