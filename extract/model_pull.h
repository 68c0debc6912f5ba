/* Internal pieces of model_pull.c that its unit test reaches directly: the download sink (the one
 * place a downloaded byte is written and hashed, where a full disk becomes one clear error) and
 * the mapping of a hub HTTP failure to the sentence the user reads. The public interface
 * (ex_model_pull, ex_model_verify, ex_model_id) is in ex.h. */
#ifndef EX_MODEL_PULL_H
#define EX_MODEL_PULL_H

#include <glib.h>
#include <stdint.h>

#include "ex.h"

/* A file being downloaded: bytes are appended at `have` and fed to the hashes. sha1 (may be NULL)
 * is primed with the git blob header "blob SIZE\0" so that it ends as the file's git object id,
 * which is what the hub lists for files not stored in LFS. The sink does not own fd or path. */
struct ex_pull_sink {
	int fd;
	const char *path; /* for messages */
	int64_t have;
	GChecksum *sha256;
	GChecksum *sha1;
};

/* Writes all n bytes at the current offset and hashes them. Errors: -ENOSPC or -EDQUOT ("disk
 * full ... run pull again to resume"), other -errno of write(2). */
int ex_pull_sink_write(struct ex_pull_sink *s, const void *buf, size_t n, vlm_err *err);

/* Fills err for a failed hub request and returns the errno that goes with it: -EACCES (401/403:
 * gated repository, invalid or insufficient HF_TOKEN), -ENOENT (404: repository, revision or
 * file), -EIO otherwise. `error_code` and `error_message` are the hub's X-Error-Code and
 * X-Error-Message headers ("" when absent); `what` names the request ("file 'config.json'"). */
int ex_pull_http_error(long status, const char *error_code, const char *error_message,
		       const char *repo, const char *revision, const char *what, bool have_token,
		       vlm_err *err);

#endif
