/* membw: the machine's streaming memory read bandwidth, measured with the engine's thread pool,
 * shared by bench_ops (ops against the machine's limits) and bench_engine (the decode roofline).
 * Owns the buffer it reads; single-threaded caller. */
#ifndef BENCH_MEMBW_H
#define BENCH_MEMBW_H

#include <stddef.h>

#include "cpu/pool.h"
#include "vlm.h"

/* The monotonic clock in seconds; every benchmark here times with it. */
double membw_now_s(void);

struct membw;

/* A buffer of `bytes` (at least two 128 MiB slices) with every page written, in transparent huge
 * pages where the kernel grants them. -EINVAL for a buffer under two slices, -ENOMEM. On success
 * *out owns it; free with membw_free. */
int membw_new(size_t bytes, struct membw **out, vlm_err *err);
void membw_free(struct membw *b); /* accepts NULL */
size_t membw_bytes(const struct membw *b);

/* Best GB/s (1e9 bytes/s) of many short streaming reads of the buffer's 128 MiB slices by every
 * thread of `pool`. */
double membw_read(struct membw *b, struct vlm_pool *pool);

#endif
