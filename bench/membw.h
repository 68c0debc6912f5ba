/* membw: the machine's streaming memory read bandwidth, measured with the engine's thread pool,
 * shared by bench_ops (ops against the machine's limits) and bench_engine (the decode roofline).
 * Single-threaded caller; allocates and frees its own buffer. */
#ifndef BENCH_MEMBW_H
#define BENCH_MEMBW_H

#include <stddef.h>

#include "cpu/pool.h"
#include "vlm.h"

/* The monotonic clock in seconds; every benchmark here times with it. */
double membw_now_s(void);

/* Best GB/s (1e9 bytes/s) of many short streaming reads of 128 MiB slices of a `bytes` buffer
 * (at least two slices) by every thread of `pool`. -EINVAL for a buffer under two slices,
 * -ENOMEM. */
int membw_read(struct vlm_pool *pool, size_t bytes, double *gb_per_s, vlm_err *err);

#endif
