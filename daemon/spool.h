/* The spool: intaked's private copies of claimed documents under STATE/spool, and the durable
 * file operations every state change is made of. A document's bytes live in exactly one place
 * the daemon owns at a time: spool/active/<job id> (0600) from claim until the job is settled,
 * then the archive or failed folder (or nowhere, when originals are deleted).
 *
 * Every operation here is durable when it returns (file and directory fsynced) and idempotent
 * when repeated after a crash: that is what start-up recovery relies on.
 * Not thread-safe; the daemon's main loop is its only user. */
#ifndef INTAKED_SPOOL_H
#define INTAKED_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ex.h"

struct spool;

/* Creates (0700) and opens STATE/spool/claim and STATE/spool/active. */
int spool_open(const char *state_dir, struct spool **out, vlm_err *err);
void spool_close(struct spool *s); /* accepts NULL */

/* Copies the file `name` of directory `dirfd` into the spool as active/<new id>: opened with
 * O_NOFOLLOW|O_NONBLOCK and checked to be a regular file with one link that is still the file
 * the name refers to; copied to claim/<id>.tmp (0600) while hashing (SHA-256), fsynced, renamed
 * without overwriting into active/, and active/ fsynced. Fills job->id, sha256, size, src_dev,
 * src_ino, src_mtime_ns and name. Returns 0; -EINVAL when the name is not a regular file with
 * one link (never to be taken); -EAGAIN when the file changed during the copy (still being
 * written); -EFBIG (err->reason EX_REASON_FILE_TOO_LARGE) when it is larger than `max_bytes`:
 * then it is only hashed, nothing is copied, the job's fields are filled all the same and the
 * original stays in `dirfd` (see spool_settle_source); another negative errno on failure, after
 * which nothing is left in the spool: with err->reason EX_REASON_IO when the file itself could
 * not be opened or read, without a reason when the spool could not be written (full, over
 * quota, failing: -ENOSPC, -EDQUOT, -EIO), a condition of the spool rather than of the file.
 * A failed fsync is never repeated: the partial copy is removed instead. */
int spool_claim(struct spool *s, int dirfd, const char *name, uint64_t max_bytes,
		struct ex_job *job, vlm_err *err);

/* Removes `name` from `dirfd` if it is still the file the job claimed (same device and inode):
 * renamed to the private ".intake-<job id>.claimed", checked again there, unlinked, and the
 * directory fsynced; a file that took the name in between is put back. Returns 0, or -ESTALE
 * when the name now refers to another file (left alone), 0 as well when it is already gone. */
int spool_release_source(int dirfd, const char *name, const struct ex_job *job, vlm_err *err);
/* Start-up: finishes spool_release_source for every ".intake-<job id>.claimed" left in the inbox
 * `dirfd` by a stop between its rename and its unlink; `find` looks a job up (1 found, 0 not or
 * not to be removed, negative on a journal error). Files of other jobs are kept. Returns how
 * many were finished, or a negative errno. */
int spool_recover_hidden(int dirfd, int (*find)(void *user, const char *id, struct ex_job *job),
			 void *user, vlm_err *err);

/* Removes active/<id> (a claim that lost to a crash or a duplicate of a claimed file). */
int spool_discard(struct spool *s, const char *id, vlm_err *err);

/* The path of active/<id>, for the parser child. */
int spool_job_path(const struct spool *s, const char *id, char *buf, size_t size);

/* Publishes `len` bytes as `name` in `dirfd`: writes .intake-<name>.tmp (O_EXCL, `mode` set
 * with fchmod so no umask or default ACL widens it), fsyncs, renames it to `name` without
 * overwriting, fsyncs the directory. Returns 0 when published, 1 when `name` already existed (a
 * publication before a crash; the temporary file is removed), or a negative errno. */
int spool_publish(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
		  vlm_err *err);

/* Moves active/<id> to `dest_name` in `dest_dirfd` without overwriting (copying when the two are
 * on different file systems), or deletes it when dest_dirfd is -1; fsyncs both directories.
 * Across file systems, a `dest_name` that already holds the same bytes is the copy of a move a
 * crash cut short: the move is finished by removing the source. Returns 0, 1 when active/<id>
 * was already gone (settled before a crash), -EEXIST when `dest_name` is taken, or a negative
 * errno. */
int spool_settle(struct spool *s, const char *id, int dest_dirfd, const char *dest_name,
		 vlm_err *err);

/* Moves the original of a job refused at claim (still job->name in `src_dirfd`, the inbox) to
 * `dest_name` in `dest_dirfd`, if the name is still the claimed file (same device and inode),
 * through the private name spool_release_source uses (where a stop may have left it).
 * Returns 0, 1 when it is gone, -ESTALE when the name is another file now (left alone or put
 * back), -EEXIST when `dest_name` is taken, or a negative errno. */
int spool_settle_source(int src_dirfd, const struct ex_job *job, int dest_dirfd,
			const char *dest_name, vlm_err *err);

/* True while active/<id> exists (also when it cannot be told: then it is not refused at claim). */
bool spool_has(const struct spool *s, const char *id);

/* Start-up cleaning: removes everything in claim/ (copies never committed) and every active/
 * file for which `known(user, id)` is false (claimed but not committed to the journal). Returns
 * the number of files removed or a negative errno. */
int spool_recover(struct spool *s, bool (*known)(void *user, const char *id), void *user,
		  vlm_err *err);

/* Removes temporary files spool_publish left in `dirfd` (a crash between write and rename). */
int spool_clean_tmp(int dirfd, vlm_err *err);

/* Bytes available to the daemon on the spool's file system. */
int spool_free_bytes(const struct spool *s, uint64_t *out, vlm_err *err);

/* Opens directory `base`/`sub` (sub may be NULL), creating missing directories with `mode`. */
int spool_open_dir(const char *base, const char *sub, mode_t mode, int *fd, vlm_err *err);

/* fsync of a directory by path; -errno on failure. */
int spool_fsync_dir(int dirfd, const char *what, vlm_err *err);

#endif
