/* The engine's CPU thread pool. Owns its worker threads and nothing else. A run publishes
 * (fn, ctx, n_tasks) under the mutex and bumps a generation number; workers wake, claim task
 * indices from an atomic counter until none are left, and report back. The caller works too and
 * returns only after every worker has left the run, so ctx may live on the caller's stack.
 *
 * Between runs a worker first spins for up to SPIN_NS on the generation, and the caller spins on
 * the count of busy workers, before either sleeps on a condition variable: a decode step is some
 * fifteen runs of a few milliseconds each, and waking a sleeping thread cost 40-45 us a run on
 * the 2-core VM (a quarter of that thread's share of a small matvec, while the other streams
 * alone). The spin is bounded, so an idle pool sleeps and costs nothing. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/pool.h"

enum { SPIN_NS = 200000 }; /* longer than the gaps inside a decode step, shorter than a human */

struct vlm_pool_worker {
	struct vlm_pool *pool;
	int thread;
};

struct vlm_pool {
	int n_threads;
	int n_started; /* workers actually running, so a half-built pool can be torn down */
	pthread_t *threads;
	struct vlm_pool_worker *workers;

	pthread_mutex_t mu;
	pthread_cond_t wake;         /* new generation or stop */
	pthread_cond_t done;         /* a worker left the current run */
	_Atomic uint64_t generation; /* written under mu, read by spinners without it */
	atomic_int n_busy;           /* workers still inside the current run */
	int stop;

	vlm_pool_fn *fn;
	void *ctx;
	int64_t n_tasks;
	atomic_int_fast64_t next;
};

static void pool_work(struct vlm_pool *pool, int thread)
{
	for (;;) {
		int64_t t = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
		if (t >= pool->n_tasks)
			return;
		pool->fn(pool->ctx, t, thread);
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static bool generation_moved(struct vlm_pool *pool, uint64_t seen)
{
	return atomic_load_explicit(&pool->generation, memory_order_acquire) != seen;
}

static bool workers_idle(struct vlm_pool *pool, uint64_t unused)
{
	(void)unused;
	return atomic_load_explicit(&pool->n_busy, memory_order_acquire) == 0;
}

/* Spins until done(pool, arg) (true) or SPIN_NS has passed (false). */
static bool spin(struct vlm_pool *pool, bool (*done)(struct vlm_pool *, uint64_t), uint64_t arg)
{
	int64_t deadline = now_ns() + SPIN_NS;
	for (unsigned i = 1;; i++) {
		if (done(pool, arg))
			return true;
		cpu_relax();
		if (i % 64 == 0 && now_ns() > deadline)
			return false;
	}
}

static void *pool_main(void *arg)
{
	struct vlm_pool_worker *w = arg;
	struct vlm_pool *pool = w->pool;
	uint64_t seen = 0;

	for (;;) {
		spin(pool, generation_moved, seen);
		/* Under the mutex either way: the run's fn, ctx and n_tasks were published under it. */
		pthread_mutex_lock(&pool->mu);
		while (!pool->stop && pool->generation == seen)
			pthread_cond_wait(&pool->wake, &pool->mu);
		if (pool->stop)
			break;
		seen = pool->generation;
		pthread_mutex_unlock(&pool->mu);

		pool_work(pool, w->thread);

		/* The last one out signals under the mutex, so a caller between its check of n_busy
		 * and its wait cannot miss it. */
		if (atomic_fetch_sub_explicit(&pool->n_busy, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&pool->mu);
			pthread_cond_signal(&pool->done);
			pthread_mutex_unlock(&pool->mu);
		}
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

int vlm_pool_new(int n_threads, struct vlm_pool **out, vlm_err *err)
{
	*out = NULL;
	if (n_threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		n_threads = n > 0 ? (int)(n < 256 ? n : 256) : 1;
	}
	struct vlm_pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		return vlm_err_set(err, -ENOMEM, "pool: %d threads: out of memory", n_threads);
	pool->n_threads = n_threads;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->wake, NULL);
	pthread_cond_init(&pool->done, NULL);
	pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
	pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
	if (!pool->threads || !pool->workers) {
		vlm_pool_free(pool);
		return vlm_err_set(err, -ENOMEM, "pool: %d threads: out of memory", n_threads);
	}
	for (int i = 1; i < n_threads; i++) {
		pool->workers[i] = (struct vlm_pool_worker){ .pool = pool, .thread = i };
		int rc = pthread_create(&pool->threads[i], NULL, pool_main, &pool->workers[i]);
		if (rc != 0) {
			vlm_pool_free(pool);
			return vlm_err_set(err, -rc, "pool: thread %d of %d: cannot start: %s", i,
					   n_threads, strerror(rc));
		}
		pool->n_started = i;
	}
	*out = pool;
	return 0;
}

void vlm_pool_free(struct vlm_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stop = 1;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 1; i <= pool->n_started; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->done);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->mu);
	free(pool->workers);
	free(pool->threads);
	free(pool);
}

int vlm_pool_n_threads(const struct vlm_pool *pool)
{
	return pool->n_threads;
}

void vlm_pool_run(struct vlm_pool *pool, vlm_pool_fn *fn, void *ctx, int64_t n_tasks)
{
	if (n_tasks <= 0)
		return;
	/* One task or one thread: waking workers would only add latency. */
	if (n_tasks == 1 || pool->n_threads == 1) {
		for (int64_t t = 0; t < n_tasks; t++)
			fn(ctx, t, 0);
		return;
	}
	pthread_mutex_lock(&pool->mu);
	pool->fn = fn;
	pool->ctx = ctx;
	pool->n_tasks = n_tasks;
	atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
	pool->n_busy = pool->n_threads - 1;
	pool->generation++;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->mu);

	pool_work(pool, 0);

	if (spin(pool, workers_idle, 0))
		return;
	pthread_mutex_lock(&pool->mu);
	while (pool->n_busy > 0)
		pthread_cond_wait(&pool->done, &pool->mu);
	pthread_mutex_unlock(&pool->mu);
}
