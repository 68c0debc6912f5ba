/* The CPU ops: hand-derived cases for the reference ops (the ground truth), then every fast
 * implementation this CPU runs (portable, AVX2) against the reference on random data with awkward
 * shapes, for bf16, f16 and f32 weights. Tolerances are relative to the magnitude of the result:
 * the reference sums in double, the fast paths in f32, so matmul may differ by about
 * f32 epsilon * sqrt(K) of the largest output. The opt-in bf16-activation matmul and attention
 * are checked against the reference run on inputs rounded to bf16 by the test's own rounding. */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "ops.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng_u32(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

/* uniform in [-1, 1) */
static float rng_f(void)
{
	return (float)rng_u32() / 2147483648.0f - 1.0f;
}

static float *rand_f32(int64_t n)
{
	float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
	for (int64_t i = 0; i < n; i++)
		p[i] = rng_f();
	return p;
}

/* A random weight [rows, cols] (or a vector when rows == 0) in `dt`. f16 values are built from
 * random bit fields (normal numbers around 2^-5 .. 2, some subnormals) rather than converted, so
 * the test does not trust a converter it would share with the code under test. */
static struct vlm_tensor rand_weight(enum vlm_dtype dt, int64_t rows, int64_t cols)
{
	int64_t n = rows ? rows * cols : cols;
	struct vlm_tensor t = { .name = "w", .dtype = dt };
	if (rows) {
		t.n_dims = 2;
		t.shape[0] = rows;
		t.shape[1] = cols;
	} else {
		t.n_dims = 1;
		t.shape[0] = cols;
	}
	if (dt == VLM_DTYPE_F32) {
		t.data = rand_f32(n);
		t.n_bytes = sizeof(float) * (size_t)n;
		return t;
	}
	uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
	for (int64_t i = 0; i < n; i++) {
		uint32_t r = rng_u32();
		if (dt == VLM_DTYPE_BF16) {
			h[i] = vlm_f32_to_bf16(rng_f());
		} else {
			uint16_t sign = (uint16_t)((r & 1u) << 15);
			uint16_t exp = (r >> 1) % 20 == 0 ? 0 : (uint16_t)(10 + (r >> 8) % 6);
			h[i] = (uint16_t)(sign | (exp << 10) | ((r >> 16) & 0x3ffu));
		}
	}
	t.data = h;
	t.n_bytes = sizeof(uint16_t) * (size_t)n;
	return t;
}

static void free_weight(struct vlm_tensor *t)
{
	free((void *)t->data);
}

static double max_abs(const float *a, int64_t n)
{
	double m = 0;
	for (int64_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i]));
	return m;
}

/* Checks |got - want| <= tol * max(1, max |want|) element by element; reports the worst. */
static void check_close(const char *what, const float *got, const float *want, int64_t n,
			double tol)
{
	double scale = fmax(1.0, max_abs(want, n)), worst = 0;
	int64_t at = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]);
		if (!(d <= worst)) {
			worst = d;
			at = i;
		}
	}
	if (!(worst <= tol * scale)) {
		fprintf(stderr, "%s: element %lld: %.9g vs reference %.9g (|diff| %.3g > %.3g)\n",
			what, (long long)at, got[at], want[at], worst, tol * scale);
		check_failures++;
	}
}

static const char *dtype_name(enum vlm_dtype dt)
{
	return dt == VLM_DTYPE_BF16 ? "bf16" : dt == VLM_DTYPE_F16 ? "f16" : "f32";
}

/* ---- hand-derived cases for the reference ops ------------------------------------------- */

static void test_f16_conversion(void)
{
	CHECK_NEAR(vlm_f16_to_f32(0x3c00), 1.0, 0);
	CHECK_NEAR(vlm_f16_to_f32(0xc000), -2.0, 0);
	CHECK_NEAR(vlm_f16_to_f32(0x7bff), 65504.0, 0);
	CHECK_NEAR(vlm_f16_to_f32(0x0001), ldexp(1.0, -24), 0);
	CHECK_NEAR(vlm_f16_to_f32(0x03ff), 1023 * ldexp(1.0, -24), 0);
	CHECK_NEAR(vlm_f16_to_f32(0x3555), 0.333251953125, 0);
	CHECK(isinf(vlm_f16_to_f32(0xfc00)) && vlm_f16_to_f32(0xfc00) < 0);
	CHECK(isnan(vlm_f16_to_f32(0x7e00)));
	CHECK(signbit(vlm_f16_to_f32(0x8000)));
}

static void test_ref_by_hand(struct vlm_ops *ops)
{
	vlm_err err = { 0 };
	CHECK_INT(vlm_ops_set_impl(ops, VLM_OPS_REF, &err), 0);

	/* matmul: [1 2 3] . [[1 0 -1] [.5 .5 .5]]^T + [10 0] = [8 3] */
	float wv[6] = { 1, 0, -1, 0.5f, 0.5f, 0.5f }, bv[2] = { 10, 0 }, x[3] = { 1, 2, 3 }, y[2];
	struct vlm_tensor w = {
		.name = "w", .dtype = VLM_DTYPE_F32, .n_dims = 2, .shape = { 2, 3 }, .data = wv
	};
	struct vlm_tensor b = {
		.name = "b", .dtype = VLM_DTYPE_F32, .n_dims = 1, .shape = { 2 }, .data = bv
	};
	CHECK_INT(vlm_op_matmul(ops, y, x, 1, &w, &b, &err), 0);
	CHECK_NEAR(y[0], 8, 1e-6);
	CHECK_NEAR(y[1], 3, 1e-6);
	struct vlm_tensor b3 = b;
	b3.name = "bias3";
	b3.shape[0] = 3;
	CHECK_INT(vlm_op_matmul(ops, y, x, 1, &w, &b3, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "bias3");

	/* rmsnorm [3 4] * [1 2]: rms = sqrt(12.5) */
	float xn[2] = { 3, 4 }, wn[2] = { 1, 2 }, yn[4];
	struct vlm_tensor tn = {
		.name = "norm", .dtype = VLM_DTYPE_F32, .n_dims = 1, .shape = { 2 }, .data = wn
	};
	CHECK_INT(vlm_op_rmsnorm(ops, yn, xn, &tn, 1, 2, 0.0f, &err), 0);
	CHECK_NEAR(yn[0], 3 / sqrt(12.5), 1e-6);
	CHECK_NEAR(yn[1], 8 / sqrt(12.5), 1e-6);

	/* layernorm [1 2 3 4]: mean 2.5, variance 1.25; weight 1, bias 0.5 */
	float xl[4] = { 1, 2, 3, 4 }, ones[4] = { 1, 1, 1, 1 }, halves[4] = { .5f, .5f, .5f, .5f };
	struct vlm_tensor tw = {
		.name = "ln.w", .dtype = VLM_DTYPE_F32, .n_dims = 1, .shape = { 4 }, .data = ones
	};
	struct vlm_tensor tb = tw;
	tb.name = "ln.b";
	tb.data = halves;
	CHECK_INT(vlm_op_layernorm(ops, yn, xl, &tw, &tb, 1, 4, 0.0f, &err), 0);
	CHECK_NEAR(yn[0], -1.5 / sqrt(1.25) + 0.5, 1e-6);
	CHECK_NEAR(yn[3], 1.5 / sqrt(1.25) + 0.5, 1e-6);

	/* silu(1) * 2 = 2 / (1 + e^-1); fused [gate | up] row */
	float gu[2] = { 1, 2 }, s;
	CHECK_INT(vlm_op_silu_mul(ops, &s, gu, gu + 1, 1, 1, 2, &err), 0);
	CHECK_NEAR(s, 2 / (1 + exp(-1.0)), 1e-6);

	/* gelu(+-1) = +-Phi(+-1): Phi(1) = 0.8413447460685429 */
	float g[2] = { 1, -1 };
	CHECK_INT(vlm_op_gelu_erf(ops, g, g, 2, &err), 0);
	CHECK_NEAR(g[0], 0.8413447460685429, 1e-6);
	CHECK_NEAR(g[1], -0.15865525393145707, 1e-6);

	/* softmax [0, ln 3] = [1/4, 3/4] */
	float sm[2] = { 0, (float)log(3.0) }, so[2];
	CHECK_INT(vlm_op_softmax(ops, so, sm, 1, 2, &err), 0);
	CHECK_NEAR(so[0], 0.25, 1e-6);
	CHECK_NEAR(so[1], 0.75, 1e-6);
	CHECK_INT(vlm_op_log_softmax(ops, so, sm, 1, 2, &err), 0);
	CHECK_NEAR(so[0], log(0.25), 1e-6);
	CHECK_NEAR(so[1], log(0.75), 1e-6);

	/* argmax: the first of equal maxima, NaN ignored */
	float am[5] = { 1, 3, 3, NAN, 2 };
	int64_t idx = -1;
	CHECK_INT(vlm_op_argmax(ops, am, 5, &idx, &err), 0);
	CHECK_INT(idx, 1);
	CHECK_INT(vlm_op_argmax(ops, am, 0, &idx, &err), -EINVAL);

	/* embedding from a bf16 table [3, 2] */
	uint16_t tab[6] = { 0x3f80, 0x4000, 0x4040, 0x4080, 0xbf80, 0x0000 }; /* 1 2 3 4 -1 0 */
	struct vlm_tensor te = { .name = "embed",
				 .dtype = VLM_DTYPE_BF16,
				 .n_dims = 2,
				 .shape = { 3, 2 },
				 .data = tab };
	int32_t ids[2] = { 2, 1 };
	float ye[4];
	CHECK_INT(vlm_op_embedding(ops, ye, &te, ids, 2, &err), 0);
	CHECK_NEAR(ye[0], -1, 0);
	CHECK_NEAR(ye[1], 0, 0);
	CHECK_NEAR(ye[2], 3, 0);
	CHECK_NEAR(ye[3], 4, 0);
	ids[1] = 3;
	CHECK_INT(vlm_op_embedding(ops, ye, &te, ids, 2, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "token id 3");
}

static void test_rope_by_hand(struct vlm_ops *ops)
{
	vlm_err err = { 0 };
	/* Text: hd 6, rotary 4, theta 1e4: inv_freq = [1, 0.01]. Sections [1, 1, 0]: pair 0 uses
	 * the temporal stream (2), pair 1 the height stream (100), so both angles are known:
	 * 2 rad and 1 rad. Dims 4, 5 pass through. */
	float q[6] = { 1, 0, 1, 0, 7, 8 };
	int sections[3] = { 1, 1, 0 };
	int32_t pos[3] = { 2, 100, 9 };
	CHECK_INT(vlm_op_rope_text(ops, q, 1, 1, 6, 6, 4, sections, pos, 1e4f, &err), 0);
	CHECK_NEAR(q[0], cos(2.0), 1e-6);
	CHECK_NEAR(q[1], sin(2.0), 1e-6);
	CHECK_NEAR(q[2], cos(1.0), 1e-5);
	CHECK_NEAR(q[3], sin(1.0), 1e-5);
	CHECK_NEAR(q[4], 7, 0);
	CHECK_NEAR(q[5], 8, 0);
	int bad[3] = { 1, 1, 1 };
	CHECK_INT(vlm_op_rope_text(ops, q, 1, 1, 6, 6, 4, bad, pos, 1e4f, &err), -EINVAL);

	/* Vision: hd 8 (pairs (k, k+4)), theta 1e4: inv_freq = [1, 0.01]; angles
	 * [h, 0.01 h, w, 0.01 w] for (h, w) = (3, 50): 3, 0.03, 50, 0.5 rad. Each dim k < 4 starts
	 * as 1 with its partner 0, so it becomes (cos a_k, sin a_k). */
	float v[8] = { 1, 1, 1, 1, 0, 0, 0, 0 };
	int32_t hw[2] = { 3, 50 };
	CHECK_INT(vlm_op_rope_vision(ops, v, 1, 1, 8, 8, hw, 1e4f, &err), 0);
	double ang[4] = { 3, 0.03, 50, 0.5 };
	for (int k = 0; k < 4; k++) {
		CHECK_NEAR(v[k], cos(ang[k]), 1e-5);
		CHECK_NEAR(v[k + 4], sin(ang[k]), 1e-5);
	}
}

/* One key: the output is that key's value. Two keys with q = 0: the mean of their values. */
static void test_attention_by_hand(struct vlm_ops *ops)
{
	vlm_err err = { 0 };
	float q[4] = { 0.3f, -1, 2, 0.5f }, k[8] = { 1, 2, 3, 4, -1, 0, 1, 2 },
	      v[8] = { 5, 6, 7, 8, 1, 2, 3, 4 }, out[4];
	struct vlm_attn a = { .L = 1,
			      .T = 1,
			      .n_head = 1,
			      .n_kv_head = 1,
			      .head_dim = 4,
			      .q = q,
			      .q_stride = 4,
			      .k = k,
			      .v = v,
			      .kv_stride = 4,
			      .out = out,
			      .mask = VLM_ATTN_CAUSAL };
	CHECK_INT(vlm_op_attention(ops, &a, &err), 0);
	for (int d = 0; d < 4; d++)
		CHECK_NEAR(out[d], v[d], 1e-6);
	float zero[4] = { 0 };
	a.q = zero;
	a.T = 2;
	a.past = 1;
	CHECK_INT(vlm_op_attention(ops, &a, &err), 0);
	for (int d = 0; d < 4; d++)
		CHECK_NEAR(out[d], (v[d] + v[d + 4]) / 2, 1e-6);
	a.past = 2; /* past + L > T */
	CHECK_INT(vlm_op_attention(ops, &a, &err), -EINVAL);
}

/* ---- fast against reference ------------------------------------------------------------- */

/* bias_dt: NULL for no bias */
static void compare_matmul(struct vlm_ops *ops, enum vlm_ops_impl impl, enum vlm_dtype dt,
			   int64_t M, int64_t N, int64_t K, const enum vlm_dtype *bias_dt)
{
	vlm_err err = { 0 };
	struct vlm_tensor w = rand_weight(dt, N, K);
	struct vlm_tensor b = rand_weight(bias_dt ? *bias_dt : VLM_DTYPE_F32, 0, N);
	const struct vlm_tensor *bias = bias_dt ? &b : NULL;
	float *x = rand_f32(M * K), *want = rand_f32(M * N), *got = rand_f32(M * N);
	vlm_ops_set_impl(ops, VLM_OPS_REF, NULL);
	CHECK_INT(vlm_op_matmul(ops, want, x, M, &w, bias, &err), 0);
	vlm_ops_set_impl(ops, impl, NULL);
	CHECK_INT(vlm_op_matmul(ops, got, x, M, &w, bias, &err), 0);
	char what[128];
	snprintf(what, sizeof what, "matmul %s %s M=%lld N=%lld K=%lld%s", vlm_ops_impl_name(impl),
		 dtype_name(dt), (long long)M, (long long)N, (long long)K, bias ? " +bias" : "");
	check_close(what, got, want, M * N, 1e-6 * sqrt((double)K) + 1e-6);
	free(x);
	free(want);
	free(got);
	free_weight(&w);
	free_weight(&b);
}

static void test_matmul(struct vlm_ops *ops, enum vlm_ops_impl impl)
{
	static const int64_t shapes[][3] = {
		/* M, N, K */
		{ 1, 67, 1176 }, { 1, 5, 27 },     { 1, 1, 1 },    { 3, 97, 352 },
		{ 17, 67, 27 },  { 130, 33, 352 }, { 2, 50, 600 }, { 5, 1, 1025 },
		{ 1, 131, 8 },   { 4, 48, 16 },    { 6, 300, 40 }, /* several W row tiles per matmul, the last one partial */
	};
	static const enum vlm_dtype dts[] = { VLM_DTYPE_BF16, VLM_DTYPE_F16, VLM_DTYPE_F32 };
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		for (size_t d = 0; d < 3; d++)
			compare_matmul(ops, impl, dts[d], shapes[s][0], shapes[s][1], shapes[s][2],
				       s % 3 == 0 ? NULL : &dts[(d + s) % 3]);
}

/* f32 -> bf16 -> f32, round to nearest even, written here from the bit layout so the test does
 * not share a converter with the code under test (the inputs are finite). */
static float round_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	u += 0x7fffu + ((u >> 16) & 1u);
	u &= 0xffff0000u;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* bf16 mode: with bf16 weights the result is the reference on bf16-rounded x; the products of
 * two bf16 values are exact in f32, so only the f32 summation order differs and the f32
 * tolerance applies (not rounding x would be off by about 2^-9 relative). Other weight dtypes
 * and K over 524288 stay f32, so they match the reference on x itself. */
static void compare_matmul_bf16(struct vlm_ops *ops, enum vlm_dtype dt, int64_t M, int64_t N,
				int64_t K, bool with_bias)
{
	vlm_err err = { 0 };
	struct vlm_tensor w = rand_weight(dt, N, K);
	struct vlm_tensor b = rand_weight(VLM_DTYPE_BF16, 0, N);
	float *x = rand_f32(M * K), *xr = rand_f32(M * K), *want = rand_f32(M * N),
	      *got = rand_f32(M * N);
	bool rounds = dt == VLM_DTYPE_BF16 && K <= 524288;
	for (int64_t i = 0; i < M * K; i++)
		xr[i] = rounds ? round_bf16(x[i]) : x[i];
	vlm_ops_set_impl(ops, VLM_OPS_REF, NULL);
	CHECK_INT(vlm_op_matmul(ops, want, xr, M, &w, with_bias ? &b : NULL, &err), 0);
	vlm_ops_set_impl(ops, VLM_OPS_AVX2, NULL);
	CHECK_INT(vlm_ops_set_bf16(ops, true, &err), 0);
	CHECK_INT(vlm_op_matmul(ops, got, x, M, &w, with_bias ? &b : NULL, &err), 0);
	CHECK_INT(vlm_ops_set_bf16(ops, false, &err), 0);
	char what[128];
	snprintf(what, sizeof what, "matmul bf16-activations %s M=%lld N=%lld K=%lld%s",
		 dtype_name(dt), (long long)M, (long long)N, (long long)K,
		 with_bias ? " +bias" : "");
	check_close(what, got, want, M * N, 1e-6 * sqrt((double)K) + 1e-6);
	free(x);
	free(xr);
	free(want);
	free(got);
	free_weight(&w);
	free_weight(&b);
}

static void test_matmul_bf16(struct vlm_ops *ops)
{
	vlm_err err = { 0 };
	if (!vlm_ops_bf16_supported() || !vlm_ops_impl_supported(VLM_OPS_AVX2)) {
		printf("bf16 activations: no AVX512_BF16 on this CPU or build, not tested\n");
		CHECK_INT(vlm_ops_set_bf16(ops, true, &err),
			  vlm_ops_bf16_supported() ? 0 : -ENOTSUP);
		CHECK_INT(vlm_ops_set_bf16(ops, false, &err), 0);
		return;
	}
	printf("testing bf16 activations against reference on bf16-rounded x\n");
	static const int64_t shapes[][3] = {
		/* M, N, K: row tails of the 8-row kernel, partial 48-column panels, several 144-row
		 * tasks, odd K, several 1024-wide K blocks with a partial last one */
		{ 2, 5, 27 },
		{ 8, 48, 64 },
		{ 9, 49, 1 },
		{ 17, 300, 352 },
		{ 130, 97, 2100 },
		{ 3, 145, 1025 },
		{ 33, 40, 2048 },
		/* M = 1 (decode): K a multiple of 128, of 32 only, with a partial group of 32,
		 * odd, 1; N over 64 rows per task times 4 tasks per thread (several tasks) */
		{ 1, 67, 1176 },
		{ 1, 1100, 4096 },
		{ 1, 3, 96 },
		{ 1, 70, 1025 },
		{ 1, 9, 31 },
		{ 1, 2, 1 },
		/* x over the 4M-element bf16 buffer: two chunks of rows; K too long for it (f32) */
		{ 300, 5, 16000 },
		{ 2, 1, 600000 },
		{ 1, 2, 600000 },
	};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		compare_matmul_bf16(ops, VLM_DTYPE_BF16, shapes[s][0], shapes[s][1], shapes[s][2],
				    s % 2 == 1);
	compare_matmul_bf16(ops, VLM_DTYPE_F16, 17, 67, 352, true);
	compare_matmul_bf16(ops, VLM_DTYPE_F32, 5, 33, 40, false);
	CHECK(!vlm_ops_get_bf16(ops));
}

static void test_rows(struct vlm_ops *ops, enum vlm_ops_impl impl)
{
	vlm_err err = { 0 };
	static const int64_t shapes[][2] = { { 1, 4096 }, { 3, 27 }, { 17, 1176 }, { 130, 1 } };
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int64_t M = shapes[s][0], D = shapes[s][1], n = M * D;
		struct vlm_tensor w = rand_weight(VLM_DTYPE_BF16, 0, D);
		struct vlm_tensor b = rand_weight(VLM_DTYPE_F32, 0, D);
		float *x = rand_f32(2 * n), *want = rand_f32(2 * n), *got = rand_f32(2 * n);
		char what[96];
		snprintf(what, sizeof what, "%s M=%lld D=%lld", vlm_ops_impl_name(impl),
			 (long long)M, (long long)D);
#define BOTH(name, call_want, call_got)                       \
	do {                                                  \
		vlm_ops_set_impl(ops, VLM_OPS_REF, NULL);     \
		CHECK_INT(call_want, 0);                      \
		vlm_ops_set_impl(ops, impl, NULL);            \
		CHECK_INT(call_got, 0);                       \
		char w_[160];                                 \
		snprintf(w_, sizeof w_, "%s %s", name, what); \
		check_close(w_, got, want, n, 1e-6);          \
	} while (0)
		BOTH("rmsnorm", vlm_op_rmsnorm(ops, want, x, &w, M, D, 1e-5f, &err),
		     vlm_op_rmsnorm(ops, got, x, &w, M, D, 1e-5f, &err));
		BOTH("layernorm", vlm_op_layernorm(ops, want, x, &w, &b, M, D, 1e-5f, &err),
		     vlm_op_layernorm(ops, got, x, &w, &b, M, D, 1e-5f, &err));
		BOTH("silu_mul fused", vlm_op_silu_mul(ops, want, x, x + D, M, D, 2 * D, &err),
		     vlm_op_silu_mul(ops, got, x, x + D, M, D, 2 * D, &err));
		BOTH("silu_mul separate", vlm_op_silu_mul(ops, want, x, x + n, M, D, D, &err),
		     vlm_op_silu_mul(ops, got, x, x + n, M, D, D, &err));
		BOTH("gelu_erf", vlm_op_gelu_erf(ops, want, x, n, &err),
		     vlm_op_gelu_erf(ops, got, x, n, &err));
		BOTH("add", vlm_op_add(ops, want, x, x + n, n, &err),
		     vlm_op_add(ops, got, x, x + n, n, &err));
		BOTH("softmax", vlm_op_softmax(ops, want, x, M, D, &err),
		     vlm_op_softmax(ops, got, x, M, D, &err));
		BOTH("log_softmax", vlm_op_log_softmax(ops, want, x, M, D, &err),
		     vlm_op_log_softmax(ops, got, x, M, D, &err));
#undef BOTH
		/* in place gives the same as out of place */
		vlm_ops_set_impl(ops, impl, NULL);
		CHECK_INT(vlm_op_rmsnorm(ops, want, x, &w, M, D, 1e-5f, &err), 0);
		CHECK_INT(vlm_op_rmsnorm(ops, x, x, &w, M, D, 1e-5f, &err), 0);
		check_close("rmsnorm in place", x, want, n, 0);
		free(x);
		free(want);
		free(got);
		free_weight(&w);
		free_weight(&b);
	}
}

static void test_rope(struct vlm_ops *ops, enum vlm_ops_impl impl)
{
	vlm_err err = { 0 };
	/* text: L 17, 3 heads of 32 dims, rotary 16, a row stride with a gap, positions up to
	 * 5000 with three different streams */
	int64_t L = 17, stride = 3 * 32 + 5;
	int sections[3] = { 2, 3, 3 };
	int32_t pos[3 * 17];
	for (int i = 0; i < 3 * 17; i++)
		pos[i] = (int32_t)(rng_u32() % 5000);
	float *want = rand_f32(L * stride), *got = malloc(sizeof(float) * (size_t)(L * stride));
	memcpy(got, want, sizeof(float) * (size_t)(L * stride));
	vlm_ops_set_impl(ops, VLM_OPS_REF, NULL);
	CHECK_INT(vlm_op_rope_text(ops, want, L, 3, 32, stride, 16, sections, pos, 5e5f, &err), 0);
	vlm_ops_set_impl(ops, impl, NULL);
	CHECK_INT(vlm_op_rope_text(ops, got, L, 3, 32, stride, 16, sections, pos, 5e5f, &err), 0);
	check_close("rope_text", got, want, L * stride, 1e-6);

	/* vision: 13 patches, 2 heads of 32 dims */
	int32_t hw[2 * 13];
	for (int i = 0; i < 2 * 13; i++)
		hw[i] = (int32_t)(rng_u32() % 40);
	memcpy(got, want, sizeof(float) * (size_t)(13 * 64));
	vlm_ops_set_impl(ops, VLM_OPS_REF, NULL);
	CHECK_INT(vlm_op_rope_vision(ops, want, 13, 2, 32, 64, hw, 1e4f, &err), 0);
	vlm_ops_set_impl(ops, impl, NULL);
	CHECK_INT(vlm_op_rope_vision(ops, got, 13, 2, 32, 64, hw, 1e4f, &err), 0);
	check_close("rope_vision", got, want, 13 * 64, 1e-6);
	free(want);
	free(got);
}

struct attn_case {
	int64_t L, T, past;
	int n_head, n_kv_head, hd;
	const int32_t *cu;
	int n_seg;
};

/* With bf16 on (and at least 48 query rows), the fast path rounds q, k, v and the probabilities
 * to bf16: the reference runs on q, k, v rounded by the test, and rounding each probability p_t
 * (relative error <= 2^-9) moves the output sum_t p_t v_t / sum_t p_t by at most 2^-9 max|v|
 * (|v| < 1 here), plus f32 summation noise. */
static void run_attention(struct vlm_ops *ops, enum vlm_ops_impl impl, const struct attn_case *c,
			  bool bf16)
{
	vlm_err err = { 0 };
	int64_t q_stride = (int64_t)c->n_head * c->hd + 3,
		kv_stride = (int64_t)c->n_kv_head * c->hd + 9;
	int64_t n_out = c->L * c->n_head * c->hd;
	float *q = rand_f32(c->L * q_stride), *k = rand_f32(c->T * kv_stride),
	      *v = rand_f32(c->T * kv_stride);
	float *want = rand_f32(n_out), *got = rand_f32(n_out), *again = rand_f32(n_out);
	/* sharper scores than uniform [-1, 1] inputs give, so the softmax is far from flat */
	for (int64_t i = 0; i < c->L * q_stride; i++)
		q[i] *= 4;
	float *qr = rand_f32(c->L * q_stride), *kr = rand_f32(c->T * kv_stride),
	      *vr = rand_f32(c->T * kv_stride);
	for (int64_t i = 0; i < c->L * q_stride; i++)
		qr[i] = bf16 ? round_bf16(q[i]) : q[i];
	for (int64_t i = 0; i < c->T * kv_stride; i++) {
		kr[i] = bf16 ? round_bf16(k[i]) : k[i];
		vr[i] = bf16 ? round_bf16(v[i]) : v[i];
	}
	struct vlm_attn a = { .L = c->L,
			      .T = c->T,
			      .n_head = c->n_head,
			      .n_kv_head = c->n_kv_head,
			      .head_dim = c->hd,
			      .q = qr,
			      .q_stride = q_stride,
			      .k = kr,
			      .v = vr,
			      .kv_stride = kv_stride,
			      .out = want,
			      .mask = c->cu ? VLM_ATTN_SEGMENTS : VLM_ATTN_CAUSAL,
			      .past = c->past,
			      .cu_seqlens = c->cu,
			      .n_segments = c->n_seg };
	char what[128];
	snprintf(what, sizeof what, "attention %s%s L=%lld T=%lld past=%lld H=%d/%d hd=%d%s",
		 vlm_ops_impl_name(impl), bf16 ? " bf16-activations" : "", (long long)c->L,
		 (long long)c->T, (long long)c->past, c->n_head, c->n_kv_head, c->hd,
		 c->cu ? " segments" : "");
	vlm_ops_set_impl(ops, VLM_OPS_REF, NULL);
	CHECK_INT(vlm_op_attention(ops, &a, &err), 0);
	vlm_ops_set_impl(ops, impl, NULL);
	CHECK_INT(vlm_ops_set_bf16(ops, bf16, &err), 0);
	a.out = got;
	a.q = q;
	a.k = k;
	a.v = v;
	CHECK_INT(vlm_op_attention(ops, &a, &err), 0);
	check_close(what, got, want, n_out, bf16 ? 1.0 / 512 + 1e-5 : 2e-6);

	/* Masking: change keys and values some queries must not see (those after query 0 for
	 * causal, the last segment for segments); their outputs must not move, bit for bit. */
	int64_t from = c->cu ? c->cu[c->n_seg - 1] : c->past + 1;
	if (from >= 1 && from < c->T) {
		for (int64_t t = from; t < c->T; t++)
			for (int64_t d = 0; d < kv_stride; d++) {
				k[t * kv_stride + d] = kr[t * kv_stride + d] = 9;
				v[t * kv_stride + d] = vr[t * kv_stride + d] = -9;
			}
		/* queries that cannot see the changed keys: the first for causal, every query
		 * before the last segment for segments */
		int64_t n_same = (c->cu ? from : 1) * c->n_head * c->hd;
		for (int r = 0; r < 2; r++) {
			vlm_ops_set_impl(ops, r ? impl : VLM_OPS_REF, NULL);
			a.q = r ? q : qr;
			a.k = r ? k : kr;
			a.v = r ? v : vr;
			a.out = again;
			CHECK_INT(vlm_op_attention(ops, &a, &err), 0);
			check_close(what, again, r ? got : want, n_same, 0);
		}
	}
	CHECK_INT(vlm_ops_set_bf16(ops, false, &err), 0);
	free(q);
	free(k);
	free(v);
	free(qr);
	free(kr);
	free(vr);
	free(want);
	free(got);
	free(again);
}

static void test_attention(struct vlm_ops *ops, enum vlm_ops_impl impl)
{
	static const int32_t cu[] = { 0, 5, 5, 100, 107 };
	static const int32_t cu1[] = { 0, 3 };
	const struct attn_case cases[] = {
		/* decode: one token after 40, GQA group 4, hd 128 */
		{ .L = 1, .T = 41, .past = 40, .n_head = 8, .n_kv_head = 2, .hd = 128 },
		/* prefill continuing a cache, group 1, hd 64 */
		{ .L = 17, .T = 30, .past = 5, .n_head = 2, .n_kv_head = 2, .hd = 64 },
		/* more keys than one online-softmax block, hd not a multiple of 8 */
		{ .L = 130, .T = 130, .past = 0, .n_head = 4, .n_kv_head = 1, .hd = 20 },
		/* vision: unequal segments (one empty), non-causal */
		{ .L = 107, .T = 107, .n_head = 3, .n_kv_head = 3, .hd = 40, .cu = cu, .n_seg = 4 },
		{ .L = 3, .T = 3, .n_head = 1, .n_kv_head = 1, .hd = 8, .cu = cu1, .n_seg = 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_attention(ops, impl, &cases[i], false);
}

static void test_attention_bf16(struct vlm_ops *ops)
{
	if (!vlm_ops_bf16_supported() || !vlm_ops_impl_supported(VLM_OPS_AVX2))
		return; /* test_matmul_bf16 says so */
	static const int32_t cu[] = { 0, 70, 70, 200 };
	const struct attn_case cases[] = {
		/* vision: segments (one empty) across the 96-query tasks and 64-key blocks, hd 128 */
		{ .L = 200,
		  .T = 200,
		  .n_head = 2,
		  .n_kv_head = 2,
		  .hd = 128,
		  .cu = cu,
		  .n_seg = 3 },
		/* prefill continuing a cache, GQA group 2 */
		{ .L = 100, .T = 150, .past = 50, .n_head = 4, .n_kv_head = 2, .hd = 64 },
		/* the smallest L on the bf16 path, a head dim of no whole tile */
		{ .L = 48, .T = 48, .n_head = 1, .n_kv_head = 1, .hd = 18 },
		{ .L = 130, .T = 130, .n_head = 4, .n_kv_head = 1, .hd = 20 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_attention(ops, VLM_OPS_AVX2, &cases[i], true);
}

int main(void)
{
	vlm_err err = { 0 };
	struct vlm_ops *ops = NULL;
	int rc = vlm_ops_new(0, &ops, &err);
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	/* threads > cores on purpose: task claiming must not depend on the thread count */
	struct vlm_ops *ops3 = NULL;
	CHECK_INT(vlm_ops_new(3, &ops3, &err), 0);

	test_f16_conversion();
	test_ref_by_hand(ops);
	test_rope_by_hand(ops);
	test_attention_by_hand(ops);

	for (int i = VLM_OPS_PORTABLE; i < VLM_OPS_IMPL_COUNT; i++) {
		enum vlm_ops_impl impl = (enum vlm_ops_impl)i;
		if (!vlm_ops_impl_supported(impl)) {
			printf("%s: not supported on this CPU, not tested\n",
			       vlm_ops_impl_name(impl));
			CHECK_INT(vlm_ops_set_impl(ops, impl, &err), -ENOTSUP);
			continue;
		}
		printf("testing %s against reference\n", vlm_ops_impl_name(impl));
		test_matmul(ops3, impl);
		test_rows(ops, impl);
		test_rope(ops, impl);
		test_attention(ops3, impl);
	}
	test_matmul_bf16(ops3);
	test_attention_bf16(ops3);
	vlm_ops_free(ops3);
	vlm_ops_free(ops);
	return CHECK_DONE();
}
