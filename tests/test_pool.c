/* The thread pool: every task of a run executes exactly once, on a valid thread index, across
 * many back-to-back runs (the generation handshake), with more threads than tasks, with one
 * thread, and with the default thread count. */
#include <stdatomic.h>
#include <unistd.h>

#include "check.h"
#include "cpu/pool.h"

enum { MAX_TASKS = 1000 };

struct run_ctx {
	int n_threads;
	int count[MAX_TASKS];  /* each task writes only its own slot */
	atomic_int bad_thread; /* tasks that saw an out-of-range thread index */
	atomic_int total;
};

static void task_fn(void *ctx, int64_t task, int thread)
{
	struct run_ctx *c = ctx;
	c->count[task]++;
	if (thread < 0 || thread >= c->n_threads)
		atomic_fetch_add(&c->bad_thread, 1);
	atomic_fetch_add(&c->total, 1);
}

static void run_and_check(struct vlm_pool *pool, int64_t n_tasks)
{
	struct run_ctx c = { .n_threads = vlm_pool_n_threads(pool) };
	vlm_pool_run(pool, task_fn, &c, n_tasks);
	CHECK_INT(atomic_load(&c.total), n_tasks);
	CHECK_INT(atomic_load(&c.bad_thread), 0);
	for (int64_t t = 0; t < n_tasks; t++)
		if (c.count[t] != 1) {
			CHECK_INT(c.count[t], 1);
			break;
		}
}

int main(void)
{
	vlm_err err = { 0 };
	struct vlm_pool *pool = NULL;

	CHECK_INT(vlm_pool_new(4, &pool, &err), 0);
	CHECK_INT(vlm_pool_n_threads(pool), 4);
	run_and_check(pool, 0);
	run_and_check(pool, 1);
	run_and_check(pool, 3); /* fewer tasks than threads */
	for (int r = 0; r < 200; r++)
		run_and_check(pool, 1 + r * 5 % MAX_TASKS);
	vlm_pool_free(pool);

	CHECK_INT(vlm_pool_new(1, &pool, &err), 0);
	run_and_check(pool, MAX_TASKS);
	vlm_pool_free(pool);

	CHECK_INT(vlm_pool_new(0, &pool, &err), 0);
	CHECK_INT(vlm_pool_n_threads(pool), sysconf(_SC_NPROCESSORS_ONLN));
	run_and_check(pool, MAX_TASKS);
	vlm_pool_free(pool);

	vlm_pool_free(NULL);
	return CHECK_DONE();
}
