/* One safetensors file, mapped read-only and fully validated at open: every tensor's dtype, shape
 * and byte range are checked against the file, so callers can read any tensor's data without
 * further bounds checks. Tensor data pointers are aligned to their element size.
 *
 * Ownership: vlm_st_open returns a file the caller frees with vlm_st_close; the tensors, their
 * names and their data live inside it and stay valid until then. An open file is immutable, so it
 * may be read from several threads at once. */
#ifndef VLM_SAFETENSORS_H
#define VLM_SAFETENSORS_H

#include <stddef.h>

#include "tensor.h"
#include "vlm.h"

struct vlm_st_file;

/* Maps `path` and validates its header. Errors: -ENOENT/-EACCES/-EIO opening or mapping it,
 * -EBADMSG for anything malformed (err says "safetensors: 'path'[: tensor 'name']: ..."),
 * -ENOTSUP for an unknown dtype, -ENOMEM. */
int vlm_st_open(const char *path, struct vlm_st_file **out, vlm_err *err);

/* Unmaps and frees; accepts NULL. */
void vlm_st_close(struct vlm_st_file *f);

/* The path given to vlm_st_open (owned by f). */
const char *vlm_st_path(const struct vlm_st_file *f);

/* Number of tensors (the header's __metadata__ is not one). */
size_t vlm_st_count(const struct vlm_st_file *f);

/* Tensor i in name order, i < vlm_st_count(f). The name is as stored in the file. */
const struct vlm_tensor *vlm_st_tensor(const struct vlm_st_file *f, size_t i);

/* The tensor named `name`, or NULL if the file has none. */
const struct vlm_tensor *vlm_st_find(const struct vlm_st_file *f, const char *name);

#endif
