/* bench_ops: how close the CPU ops come to this machine's limits.
 * (a) memory read bandwidth (membw.c): streaming reads over a 1 GiB buffer by all threads,
 *     128 MiB per run, best of many;
 * (b) matmul M = 1 (decode) with bf16 weights 4096x4096 and 13696x4096, as effective GB/s of
 *     weight read and as a share of (a); the weights rotate over copies larger than the last-level
 *     cache so every run streams from DRAM, as decode does;
 * (c) matmul M = 512 (prefill) GFLOP/s, f32 activations and, where the CPU has AVX512_BF16,
 *     bf16 activations (vlm_ops_set_bf16);
 * (d) attention at the vision tower's shape (12 heads of 128, one segment) with 2048 patches,
 *     GFLOP/s (4 L T hd H flops: QK^T and PV), f32 and, with AVX512_BF16, bf16 activations.
 * Usage: bench_ops [n_threads]   (default: online CPUs). Run a Release build without sanitizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membw.h"
#include "ops.h"

/* Best-of counts: on a shared machine the best run is the one least disturbed by neighbours. */
enum { MATVEC_ROUNDS = 10, MATMUL_REPEATS = 5 };

/* A bf16 weight [N, K] with random small values, in `copies` separate buffers. */
static uint16_t **make_weights(int64_t N, int64_t K, int copies)
{
	uint16_t **w = calloc((size_t)copies, sizeof *w);
	uint32_t s = 12345;
	for (int c = 0; c < copies; c++) {
		w[c] = malloc(sizeof(uint16_t) * (size_t)(N * K));
		for (int64_t i = 0; i < N * K; i++) {
			s = s * 1664525u + 1013904223u;
			w[c][i] = vlm_f32_to_bf16(((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f);
		}
	}
	return w;
}

static void free_weights(uint16_t **w, int copies)
{
	for (int c = 0; c < copies; c++)
		free(w[c]);
	free(w);
}

/* Best time of `runs` matmuls, each on the next copy of the weight. */
static double time_matmul(struct vlm_ops *ops, int64_t M, int64_t N, int64_t K, uint16_t **w,
			  int copies, int runs, const float *x, float *y)
{
	double best = 1e30;
	for (int r = 0; r < runs; r++) {
		struct vlm_tensor t = { .name = "bench.weight",
					.dtype = VLM_DTYPE_BF16,
					.n_dims = 2,
					.shape = { N, K },
					.data = w[r % copies],
					.n_bytes = sizeof(uint16_t) * (size_t)(N * K) };
		vlm_err err;
		double t0 = membw_now_s();
		if (vlm_op_matmul(ops, y, x, M, &t, NULL, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(1);
		}
		double dt = membw_now_s() - t0;
		best = dt < best ? dt : best;
	}
	return best;
}

int main(int argc, char **argv)
{
	int n_threads = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 0;
	vlm_err err;
	struct vlm_ops *ops = NULL;
	struct vlm_pool *pool = NULL;
	if (vlm_ops_new(n_threads, &ops, &err) < 0 ||
	    vlm_pool_new(vlm_ops_n_threads(ops), &pool, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("bench_ops: %d threads, ops %s\n\n", vlm_ops_n_threads(ops),
	       vlm_ops_impl_name(vlm_ops_get_impl(ops)));
	printf("%-40s %12s %12s\n", "measurement", "value", "of limit");

	struct membw *mb = NULL;
	if (membw_new((size_t)1 << 30, &mb, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	double bw = membw_read(mb, pool);
	membw_free(mb);
	printf("%-40s %8.1f GB/s %12s\n", "memory read (1 GiB buffer), all threads", bw, "");

	static const int64_t shapes[][2] = { { 4096, 4096 }, { 13696, 4096 } };
	float *x = malloc(sizeof(float) * 512 * 4096), *y = malloc(sizeof(float) * 512 * 13696);
	for (int64_t i = 0; i < 512 * 4096; i++)
		x[i] = (float)(i % 17) * 0.01f - 0.08f;
	for (int s = 0; s < 2; s++) {
		int64_t N = shapes[s][0], K = shapes[s][1];
		double bytes = 2.0 * (double)(N * K);
		int copies = (int)(256.0 * (1 << 20) / bytes) + 1; /* > 256 MiB: beyond any LLC */
		uint16_t **w = make_weights(N, K, copies);
		for (int impl = VLM_OPS_PORTABLE; impl < VLM_OPS_IMPL_COUNT; impl++) {
			if (vlm_ops_set_impl(ops, (enum vlm_ops_impl)impl, NULL) < 0)
				continue;
			double t =
				time_matmul(ops, 1, N, K, w, copies, MATVEC_ROUNDS * copies, x, y);
			char what[80];
			snprintf(what, sizeof what, "matvec bf16 %lldx%lld M=1 %s", (long long)N,
				 (long long)K, vlm_ops_impl_name((enum vlm_ops_impl)impl));
			printf("%-40s %8.1f GB/s %10.0f %%   (%.2f ms)\n", what, bytes / t / 1e9,
			       100.0 * bytes / t / 1e9 / bw, t * 1e3);
		}
		vlm_ops_set_impl(
			ops, vlm_ops_impl_supported(VLM_OPS_AVX2) ? VLM_OPS_AVX2 : VLM_OPS_PORTABLE,
			NULL);
		for (int bf16 = 0; s == 0 && bf16 < 2; bf16++) {
			if (vlm_ops_set_bf16(ops, bf16, NULL) < 0)
				continue;
			double t = time_matmul(ops, 512, N, K, w, 1, MATMUL_REPEATS, x, y);
			double flops = 2.0 * 512 * (double)(N * K);
			printf("%-40s %6.1f GFLOP/s %12s (%.1f ms)\n",
			       bf16 ? "matmul bf16 4096x4096 M=512 x in bf16"
				    : "matmul bf16 4096x4096 M=512",
			       flops / t / 1e9, "", t * 1e3);
		}
		vlm_ops_set_bf16(ops, false, NULL);
		free_weights(w, copies);
	}
	free(x);
	free(y);

	enum { ATT_L = 2048, ATT_H = 12, ATT_HD = 128 };
	int64_t n = (int64_t)ATT_L * ATT_H * ATT_HD;
	float *qkv = malloc(sizeof(float) * (size_t)(3 * n)),
	      *out = malloc(sizeof(float) * (size_t)n);
	for (int64_t i = 0; i < 3 * n; i++)
		qkv[i] = (float)(i % 23) * 0.01f - 0.11f;
	const int32_t cu[] = { 0, ATT_L };
	struct vlm_attn a = { .L = ATT_L,
			      .T = ATT_L,
			      .n_head = ATT_H,
			      .n_kv_head = ATT_H,
			      .head_dim = ATT_HD,
			      .q = qkv,
			      .q_stride = 3 * ATT_H * ATT_HD,
			      .k = qkv + ATT_H * ATT_HD,
			      .v = qkv + 2 * ATT_H * ATT_HD,
			      .kv_stride = 3 * ATT_H * ATT_HD,
			      .out = out,
			      .mask = VLM_ATTN_SEGMENTS,
			      .cu_seqlens = cu,
			      .n_segments = 1 };
	for (int bf16 = 0; bf16 < 2; bf16++) {
		if (vlm_ops_set_bf16(ops, bf16, NULL) < 0)
			continue;
		double best = 1e30;
		for (int r = 0; r < MATMUL_REPEATS; r++) {
			double t0 = membw_now_s();
			if (vlm_op_attention(ops, &a, &err) < 0) {
				fprintf(stderr, "%s\n", err.msg);
				return 1;
			}
			double dt = membw_now_s() - t0;
			best = dt < best ? dt : best;
		}
		printf("%-40s %6.1f GFLOP/s %12s (%.1f ms)\n",
		       bf16 ? "attention 2048x2048 x12 heads of 128 bf16"
			    : "attention 2048x2048, 12 heads of 128",
		       4.0 * ATT_L * ATT_L * ATT_HD * ATT_H / best / 1e9, "", best * 1e3);
	}
	vlm_ops_set_bf16(ops, false, NULL);
	free(qkv);
	free(out);
	vlm_pool_free(pool);
	vlm_ops_free(ops);
	return 0;
}
