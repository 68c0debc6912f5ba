/* membw: streaming read bandwidth with every thread of a pool, best of many short runs.
 * Owns the read loop and its buffer; what the figure means (a roofline for weight streaming) is
 * up to the caller. Short runs let best-of find quiet moments on a shared machine. */
#include "membw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { READ_RUNS = 64, READ_TASKS = 1024 };
#define SLICE ((size_t)128 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

double membw_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct read_job {
	const float *data;
	int64_t per_task;
	float sums[READ_TASKS]; /* one per task, so the reads cannot be optimised away */
};

/* Sixteen independent lanes: a shape compilers turn into wide vector loads and adds without
 * reassociating floats, so the loop is limited by memory, not by an add chain. */
static void read_task(void *ctx, int64_t task, int thread)
{
	struct read_job *j = ctx;
	const float *p = j->data + task * j->per_task;
	float acc[16] = { 0 };
	for (int64_t i = 0; i < j->per_task; i += 16)
		for (int l = 0; l < 16; l++)
			acc[l] += p[i + l];
	float s = 0;
	for (int l = 0; l < 16; l++)
		s += acc[l];
	j->sums[task] = s;
}

struct membw {
	float *data;
	size_t bytes;
	struct read_job job; /* per-task sums */
};

int membw_new(size_t bytes, struct membw **out, vlm_err *err)
{
	*out = NULL;
	if (bytes / SLICE < 2)
		return vlm_err_set(err, -EINVAL,
				   "membw: a buffer of %zu bytes is under two 128 MiB "
				   "slices",
				   bytes);
	struct membw *b = calloc(1, sizeof *b);
	/* 2 MiB-aligned and advised, so the reads run on huge pages where the kernel has them:
	 * the best case of the machine, which the roofline is (on this VM 4 KiB pages read up to
	 * 15% slower, depending on how scattered they are). */
	if (b)
		b->data = aligned_alloc(HUGE_PAGE, (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
	if (!b || !b->data) {
		membw_free(b);
		return vlm_err_set(err, -ENOMEM, "membw: out of memory for a %zu-byte buffer",
				   bytes);
	}
	madvise(b->data, bytes, MADV_HUGEPAGE); /* advice only: 4 KiB pages still work */
	/* Write every page so the timed runs neither fault nor read the shared zero page (a zero
	 * fill could become calloc, which writes nothing). */
	memset(b->data, 1, bytes);
	b->bytes = bytes;
	*out = b;
	return 0;
}

void membw_free(struct membw *b)
{
	if (!b)
		return;
	free(b->data);
	free(b);
}

size_t membw_bytes(const struct membw *b)
{
	return b->bytes;
}

double membw_read(struct membw *b, struct vlm_pool *pool)
{
	struct read_job *j = &b->job;
	int n_slices = (int)(b->bytes / SLICE);
	j->per_task = (int64_t)(SLICE / sizeof(float)) / READ_TASKS;
	double best = 1e30;
	float x = 0;
	for (int r = 0; r < READ_RUNS; r++) {
		j->data = b->data + (size_t)(r % n_slices) * (SLICE / sizeof(float));
		double t0 = membw_now_s();
		vlm_pool_run(pool, read_task, j, READ_TASKS);
		double t = membw_now_s() - t0;
		best = t < best ? t : best;
		for (int i = 0; i < READ_TASKS; i++)
			x += j->sums[i];
	}
	if (x < 0) /* never true for positive data; keeps the sums alive */
		printf(" ");
	return (double)(j->per_task * READ_TASKS) * sizeof(float) / best / 1e9;
}
