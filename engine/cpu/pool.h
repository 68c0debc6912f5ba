/* A small persistent thread pool: n_threads - 1 parked workers plus the calling thread share the
 * tasks of one run. Tasks are claimed from an atomic counter, so uneven tasks balance themselves.
 * Thread safety: one vlm_pool_run at a time per pool (the engine's single inference thread owns
 * it); a task function must not call vlm_pool_run on the same pool. */
#ifndef VLM_POOL_H
#define VLM_POOL_H

#include <stdint.h>

#include "vlm.h"

struct vlm_pool;

/* Runs task `task` (0 <= task < n_tasks) on thread `thread` (0 <= thread < n_threads; 0 is the
 * caller). `thread` lets a task use per-thread scratch without locking. */
typedef void vlm_pool_fn(void *ctx, int64_t task, int thread);

/* Starts the workers. n_threads <= 0 means the number of online CPUs. On success *out owns the
 * pool; free it with vlm_pool_free. */
int vlm_pool_new(int n_threads, struct vlm_pool **out, vlm_err *err);
/* Stops and joins the workers. Accepts NULL. */
void vlm_pool_free(struct vlm_pool *pool);
int vlm_pool_n_threads(const struct vlm_pool *pool);
/* Runs fn over n_tasks tasks and returns when every task has finished. Allocates nothing. */
void vlm_pool_run(struct vlm_pool *pool, vlm_pool_fn *fn, void *ctx, int64_t n_tasks);

#endif
