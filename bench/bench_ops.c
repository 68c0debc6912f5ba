/* bench_ops: how close the CPU ops come to this machine's limits.
 * (a) memory read bandwidth: streaming reads over a 1 GiB buffer by all threads, 128 MiB per run,
 *     best of N;
 * (b) matmul M = 1 (decode) with bf16 weights 4096x4096 and 13696x4096, as effective GB/s of
 *     weight read and as a share of (a); the weights rotate over copies larger than the last-level
 *     cache so every run streams from DRAM, as decode does;
 * (c) matmul M = 512 (prefill) GFLOP/s.
 * Usage: bench_ops [n_threads]   (default: online CPUs). Run a Release build without sanitizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/pool.h"
#include "ops.h"

/* Best-of counts: on a shared machine the best run is the one least disturbed by neighbours. */
enum { READ_RUNS = 64, MATVEC_ROUNDS = 10, MATMUL_REPEATS = 5 };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct read_job {
	const float *data;
	int64_t n, per_task;
	float sums[1024]; /* one per task, so the reads cannot be optimised away */
};

/* Sixteen independent lanes: a shape compilers turn into wide vector loads and adds without
 * reassociating floats, so the loop is limited by memory, not by an add chain. */
static void read_task(void *ctx, int64_t task, int thread)
{
	struct read_job *j = ctx;
	const float *p = j->data + task * j->per_task;
	float acc[16] = {0};
	for (int64_t i = 0; i < j->per_task; i += 16)
		for (int l = 0; l < 16; l++)
			acc[l] += p[i + l];
	float s = 0;
	for (int l = 0; l < 16; l++)
		s += acc[l];
	j->sums[task] = s;
}

/* GB/s of the best of READ_RUNS reads of one 128 MiB slice of a `bytes` buffer, each run on the
 * next slice, so no run finds its data in cache; short runs let best-of find quiet moments on a
 * shared machine, as the matvec runs below do. */
static double read_bandwidth(struct vlm_pool *pool, size_t bytes)
{
	size_t slice = (size_t)128 << 20;
	int n_slices = (int)(bytes / slice);
	struct read_job *j = calloc(1, sizeof *j);
	float *data = malloc(bytes);
	if (!j || !data || n_slices < 2) {
		free(j);
		free(data);
		return 0;
	}
	/* Write every page so the timed runs neither fault nor read the shared zero page (a zero
	 * fill could become calloc, which writes nothing). */
	memset(data, 1, bytes);
	j->n = (int64_t)(slice / sizeof(float));
	j->per_task = j->n / 1024;
	double best = 1e30;
	float x = 0;
	for (int r = 0; r < READ_RUNS; r++) {
		j->data = data + (size_t)(r % n_slices) * (slice / sizeof(float));
		double t0 = now_s();
		vlm_pool_run(pool, read_task, j, 1024);
		double t = now_s() - t0;
		best = t < best ? t : best;
		for (int i = 0; i < 1024; i++)
			x += j->sums[i];
	}
	if (x < 0) /* never true for positive data; keeps the sums alive */
		printf(" ");
	double read = (double)(j->per_task * 1024) * sizeof(float);
	free(data);
	free(j);
	return read / best / 1e9;
}

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
		struct vlm_tensor t = {.name = "bench.weight", .dtype = VLM_DTYPE_BF16, .n_dims = 2,
				       .shape = {N, K}, .data = w[r % copies],
				       .n_bytes = sizeof(uint16_t) * (size_t)(N * K)};
		vlm_err err;
		double t0 = now_s();
		if (vlm_op_matmul(ops, y, x, M, &t, NULL, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(1);
		}
		double dt = now_s() - t0;
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

	double bw = read_bandwidth(pool, (size_t)1 << 30);
	printf("%-40s %8.1f GB/s %12s\n", "memory read (1 GiB buffer), all threads", bw, "");

	static const int64_t shapes[][2] = {{4096, 4096}, {13696, 4096}};
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
			double t = time_matmul(ops, 1, N, K, w, copies, MATVEC_ROUNDS * copies, x, y);
			char what[80];
			snprintf(what, sizeof what, "matvec bf16 %lldx%lld M=1 %s", (long long)N,
				 (long long)K, vlm_ops_impl_name((enum vlm_ops_impl)impl));
			printf("%-40s %8.1f GB/s %10.0f %%   (%.2f ms)\n", what, bytes / t / 1e9,
			       100.0 * bytes / t / 1e9 / bw, t * 1e3);
		}
		vlm_ops_set_impl(ops, vlm_ops_impl_supported(VLM_OPS_AVX2) ? VLM_OPS_AVX2
									  : VLM_OPS_PORTABLE, NULL);
		if (s == 0) {
			double t = time_matmul(ops, 512, N, K, w, 1, MATMUL_REPEATS, x, y);
			double flops = 2.0 * 512 * (double)(N * K);
			printf("%-40s %6.1f GFLOP/s %12s (%.1f ms)\n", "matmul bf16 4096x4096 M=512",
			       flops / t / 1e9, "", t * 1e3);
		}
		free_weights(w, copies);
	}
	free(x);
	free(y);
	vlm_pool_free(pool);
	vlm_ops_free(ops);
	return 0;
}
