/* File-system helpers shared by libextract's writers. */
#ifndef EX_FSUTIL_H
#define EX_FSUTIL_H

#include <stdio.h>

#include "vlm.h"

/* Writes the whole content to `fp` (borrowed: do not close it); returns 0 or a negative errno
 * with err filled. */
typedef int ex_fill_fn(FILE *fp, void *user, vlm_err *err);

/* Writes `path` atomically: `fill` writes a temporary file beside it ("PATH.XXXXXX.tmp", mode
 * 0644), which is flushed to disk and renamed over `path`, and then the directory is synced, so
 * after a crash `path` holds the old content or the whole new one, never a partial file. On
 * failure the temporary file is removed and `path` is untouched. Does not create directories.
 * Returns 0 or a negative errno. */
int ex_write_atomic(const char *path, ex_fill_fn *fill, void *user, vlm_err *err);

#endif
