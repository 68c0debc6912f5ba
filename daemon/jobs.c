/* Job life cycle (see jobs.h). The order of every step, and why a crash between any two is safe:
 *
 *   claim:    copy into spool/active (durable) -> journal QUEUED -> out of the inbox: renamed
 *             to its private name .intake-<id>.claimed, checked to be the claimed inode there,
 *             unlinked (a file that took the name meanwhile is put back, never deleted).
 *             A crash before the journal commit leaves an unknown spool file (deleted at start);
 *             after it, the inbox file is claimed again, recognised (ex_journal_find_claim) and
 *             only removed; a private name left behind is finished at start. A file the daemon
 *             cannot read or remove stays in the inbox and is looked at again with backoff.
 *             Over max_file_bytes: hashed, not copied -> journal FAILED -> settled from the
 *             inbox. A crash before the settling finds the inbox file recognised as refused
 *             (start-up recovery or the claim) and moves it then.
 *   run:      journal RUNNING -> parser child -> (schema: the model worker) -> result published
 *             under its final name (tmp, fsync, rename without overwrite, fsync dir) -> DONE.
 *             RUNNING is requeued at start; a result already published is recognised by its
 *             deterministic name (<job id>.json) and not written twice.
 *   settle:   journal DONE/FAILED/DUPLICATE with the destination name -> original moved to the
 *             archive or failed folder (FAILED: <name>.error.json first) -> journal settled.
 *             Unsettled finished jobs are settled again after a backoff and at start; each step
 *             is idempotent.
 *
 * Disk faults on the daemon's own writes (ENOSPC, EDQUOT, EIO) are transient: a copy the spool
 * cannot take pauses all claiming with backoff (files wait in their inbox); a result that cannot
 * be written or fsynced is removed and its job run again from the spool copy, attempts untouched.
 * A failed fsync is never repeated on the same file: its data may be gone from the page cache.
 *
 * A write to the journal that fails is fatal: the daemon stops and recovery at the next start
 * repairs the state, rather than carrying on with a journal that disagrees with the disk. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "jobs.h"
#include "log.h"
#include "model.h"
#include "sandbox.h"
#include "spool.h"

#define DUPLICATE_WAIT_S 0.5 /* a duplicate whose original is unfinished looks again after this */

/* A document handed to the model worker, with what the worker reads: on the heap, because a
 * reload may move the slots while the worker holds it. */
struct extraction {
	struct model_job m; /* first: model_take's pointer is the extraction's */
	size_t slot;
	struct ex_doc *doc; /* its path is the job's name */
	char sha256[65];
};

/* A worker slot: a parser child (child.pid > 0), then for a schema job the extraction (ext). */
struct slot {
	bool busy;
	bool abandoned; /* killed by a stop, not by its document: requeued without an attempt */
	struct ex_job job;
	struct sandbox_child child;
	struct extraction *ext;
};

struct jobs {
	const struct config *cfg;
	struct ex_journal *journal;
	struct spool *spool;
	struct model *model;
	struct slot *slots;
	size_t n_slots, n_running, turn;
	int64_t unsettled; /* claimed jobs whose spool copy is still in the spool */
	/* The spool could not be written (disk full, over quota, I/O error): no file is claimed
	 * before claim_paused_until (monotonic), which backs off with each failure in a row. */
	double claim_paused_until;
	int claim_failures;
	/* Finished jobs whose original could not leave the spool are settled again, each after
	 * its own backoff (next_try); the earliest of those moments (monotonic). */
	double settle_retry_at;
};

/* ---- helpers ------------------------------------------------------------------------------- */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *esc(char buf[static 512], const char *name)
{
	return log_escape(buf, 512, name);
}

static json_t *iso_time(double t)
{
	char buf[80];
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)((t - floor(t)) * 1000));
	return json_string(buf);
}

static int save(struct jobs *j, const struct ex_job *job)
{
	vlm_err err = { 0 };
	crash_point("journal.update.before");
	int rc = ex_journal_update(j->journal, job, &err);
	if (rc == 0)
		crash_point("journal.update.after");
	if (rc < 0)
		log_msg(LOG_CRIT, "%s", err.msg);
	return rc;
}

static json_t *source_json(const struct ex_job *job)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:o}", "name", job->name, "inbox", job->inbox,
			 "size", (json_int_t)job->size, "sha256", job->sha256, "claimed_at",
			 iso_time(job->claimed_at));
}

/* Opens <base>/<inbox name>, creating it (0750: the reading team's group may enter). */
static int open_inbox_dir(const char *base, const char *inbox, int *fd, vlm_err *err)
{
	return spool_open_dir(base, inbox, 0750, fd, err);
}

/* The delay before the n-th retry (n >= 1): retry.backoff doubling up to retry.max_backoff. */
static double backoff_delay(const struct jobs *j, int n)
{
	double delay = j->cfg->backoff_initial_s * pow(2, n > 1 ? n - 1 : 0);
	return delay > j->cfg->backoff_max_s ? j->cfg->backoff_max_s : delay;
}

static void backoff(struct jobs *j, struct ex_job *job, int n, double now)
{
	job->state = EX_JOB_QUEUED;
	job->next_try = now + backoff_delay(j, n);
}

/* Picks where the original goes: its own name when free, else "<job id>-<name>". */
static void choose_dest(int dirfd, struct ex_job *job, bool with_error_json)
{
	char err_name[300];
	snprintf(err_name, sizeof err_name, "%s.error.json", job->name);
	bool taken =
		faccessat(dirfd, job->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		(with_error_json && faccessat(dirfd, err_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0);
	if (taken || strlen(job->name) > 240)
		snprintf(job->dest, sizeof job->dest, "%s-%.200s", job->id, job->name);
	else
		snprintf(job->dest, sizeof job->dest, "%s", job->name);
}

/* ---- settling: the original leaves the spool -------------------------------------------------- */

static int write_error_json(int dirfd, const struct ex_job *job, vlm_err *err)
{
	char name[320];
	snprintf(name, sizeof name, "%s.error.json", job->dest);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:o, s:o}", "job", job->id,
			      "file", job->name, "inbox", job->inbox, "sha256", job->sha256, "size",
			      (json_int_t)job->size, "reason", job->reason, "error", job->error,
			      "attempts", job->attempts, "claimed_at", iso_time(job->claimed_at),
			      "failed_at", iso_time(job->finished_at));
	char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text)
		return vlm_err_set(err, -ENOMEM, "jobs: job '%s': out of memory", job->id);
	int rc = spool_publish(dirfd, name, text, strlen(text), 0640, err);
	free(text);
	return rc < 0 ? rc : 0;
}

/* A job refused at claim (over max_file_bytes) was never copied: its original is still in the
 * inbox, under its name. */
static bool refused_at_claim(const struct jobs *j, const struct ex_job *job)
{
	return job->state == EX_JOB_FAILED &&
	       strcmp(job->reason, ex_reason_name(EX_REASON_FILE_TOO_LARGE)) == 0 &&
	       !spool_has(j->spool, job->id);
}

/* Moves the original (from the spool, or from the inbox when refused at claim) to `dest` in
 * `dirfd`, or deletes the spool copy when dirfd is -1. As spool_settle. */
static int move_original(struct jobs *j, const struct ex_job *job, int dirfd, vlm_err *err)
{
	if (!refused_at_claim(j, job))
		return spool_settle(j->spool, job->id, dirfd, job->dest, err);
	const char *path = NULL;
	for (size_t i = 0; i < j->cfg->n_inboxes && !path; i++)
		if (strcmp(j->cfg->inboxes[i].name, job->inbox) == 0)
			path = j->cfg->inboxes[i].path;
	if (!path)
		return vlm_err_set(err, -ENOENT, "jobs: inbox '%s': no longer configured",
				   job->inbox);
	int inbox_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (inbox_fd < 0)
		return vlm_err_set(err, -errno, "jobs: inbox '%s': cannot open: %s", job->inbox,
				   strerror(errno));
	int rc = spool_settle_source(inbox_fd, job, dirfd, job->dest, err);
	close(inbox_fd);
	return rc;
}

/* Moves (or deletes) the original of a finished job and marks it settled. Returns 0, or a
 * negative errno: journal errors are fatal; file errors (the archive or failed folder full,
 * unwritable, failing) leave the job unsettled, retried with backoff by jobs_retry_settle. */
static int settle(struct jobs *j, struct ex_job *job, double now)
{
	char e1[512];
	vlm_err err = { 0 };
	bool failed = job->state == EX_JOB_FAILED;
	int dirfd = -1, rc = 0;
	if (failed || j->cfg->originals == CONFIG_ORIGINALS_ARCHIVE) {
		rc = open_inbox_dir(failed ? j->cfg->failed : j->cfg->archive, job->inbox, &dirfd,
				    &err);
		if (rc < 0)
			goto file_error;
		if (!job->dest[0]) {
			choose_dest(dirfd, job, failed);
			if ((rc = save(j, job)) < 0)
				goto out;
		}
		if (failed && (rc = write_error_json(dirfd, job, &err)) < 0)
			goto file_error;
	}
	rc = move_original(j, job, dirfd, &err);
	if (rc == -EEXIST) {
		/* Someone put a file under the chosen name since: take the job-unique name. */
		snprintf(job->dest, sizeof job->dest, "%s-%.200s", job->id, job->name);
		if ((rc = save(j, job)) < 0)
			goto out;
		if (failed && (rc = write_error_json(dirfd, job, &err)) < 0)
			goto file_error;
		rc = move_original(j, job, dirfd, &err);
	}
	if (rc == -ESTALE) {
		/* Refused at claim and replaced in the inbox since: the claimed bytes are gone
		 * (their record stays); the new file is claimed as any other. */
		log_msg(LOG_NOTICE,
			"job %s '%s': a new file took its name in the inbox before the "
			"original was moved; it is kept and taken as a new document",
			job->id, esc(e1, job->name));
		rc = 0;
	}
	if (rc < 0)
		goto file_error;
	job->settled = true;
	if ((rc = save(j, job)) < 0)
		goto out;
	j->unsettled--;
	goto out;
file_error:
	job->transient++;
	job->next_try = now + backoff_delay(j, job->transient);
	if (mono() + (job->next_try - now) < j->settle_retry_at)
		j->settle_retry_at = mono() + (job->next_try - now);
	log_msg(LOG_ERR,
		"job %s '%s': cannot move the original out of the spool, retry in %.1fs: "
		"%s",
		job->id, esc(e1, job->name), job->next_try - now, err.msg);
	rc = save(j, job);
out:
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

static void mark_failed(struct ex_job *job, const char *reason, const char *error, double now)
{
	job->state = EX_JOB_FAILED;
	job->finished_at = now;
	snprintf(job->reason, sizeof job->reason, "%s", reason);
	snprintf(job->error, sizeof job->error, "%s", error);
}

static void log_failed(const struct ex_job *job)
{
	char e1[512], e2[512];
	log_msg(LOG_WARNING, "job %s '%s': failed (%s): %s", job->id, esc(e1, job->name),
		job->reason, esc(e2, job->error));
}

/* Quarantines a job: FAILED with its reason, then the original and <name>.error.json go to the
 * failed folder. */
static int fail_job(struct jobs *j, struct ex_job *job, const char *reason, const char *error,
		    double now)
{
	mark_failed(job, reason, error, now);
	int rc = save(j, job);
	if (rc < 0)
		return rc;
	log_failed(job);
	return settle(j, job, now);
}

/* ---- results ------------------------------------------------------------------------------- */

/* A job without a schema: the decoded document as `intake pages --json --text` prints it, plus
 * provenance. */
static json_t *pages_result(const struct ex_job *job, const struct ex_doc *doc)
{
	double now = (double)time(NULL);
	json_t *root = ex_doc_to_json(doc, true);
	if (!root)
		return NULL;
	json_object_set_new(root, "job", json_string(job->id));
	json_object_set_new(root, "processor", json_string("pages"));
	json_object_set_new(root, "schema", json_null());
	json_object_set_new(root, "source", source_json(job));
	json_object_set_new(root, "timings",
			    json_pack("{s:f, s:f, s:f}", "queued_s",
				      job->started_at - job->claimed_at, "parse_s",
				      now - job->started_at, "total_s", now - job->claimed_at));
	return root;
}

/* Publishes `root` as `name` in the job's outbox folder. */
static int publish_json(struct jobs *j, const struct ex_job *job, const char *name, json_t *root,
			vlm_err *err)
{
	char *text = json_dumps(root, JSON_INDENT(2));
	if (!text)
		return vlm_err_set(err, -ENOMEM, "jobs: job '%s': out of memory", job->id);
	int dirfd;
	int rc = open_inbox_dir(j->cfg->outbox, job->inbox, &dirfd, err);
	if (rc == 0) {
		rc = spool_publish(dirfd, name, text, strlen(text), 0640, err);
		close(dirfd);
	}
	free(text);
	return rc;
}

/* A failure that is not the document's fault (disk full, outbox unwritable, fork refused):
 * retried with backoff, attempts untouched. Said once per job and reason: a stuck outbox must
 * not fill the log (intake status shows the last error meanwhile). */
static int retry_transient(struct jobs *j, struct ex_job *job, const char *what, double now)
{
	char e1[512], e2[512];
	bool again = job->transient > 0 && strncmp(job->error, what, sizeof job->error - 1) == 0;
	job->transient++;
	snprintf(job->error, sizeof job->error, "%s", what);
	backoff(j, job, job->transient, now);
	if (!again)
		log_msg(LOG_WARNING, "job %s '%s': transient failure, retry in %.0fs: %s", job->id,
			esc(e1, job->name), job->next_try - now, esc(e2, what));
	return save(j, job);
}

static int finish_done(struct jobs *j, struct ex_job *job, const char *result, double now)
{
	char e1[512];
	snprintf(job->result, sizeof job->result, "%s", result);
	job->finished_at = now;
	int rc = save(j, job);
	if (rc < 0)
		return rc;
	if (job->state == EX_JOB_DUPLICATE)
		log_msg(LOG_NOTICE, "job %s '%s': duplicate of job %s; notice %s/%s", job->id,
			esc(e1, job->name), job->dup_of, job->inbox, result);
	else
		log_msg(LOG_NOTICE, "job %s '%s': done, %d page%s -> %s/%s", job->id,
			esc(e1, job->name), job->pages, job->pages == 1 ? "" : "s", job->inbox,
			result);
	return settle(j, job, now);
}

/* Publishes `root` as <job id>.json and finishes the job as DONE; a failure to publish is
 * transient. */
static int publish_result(struct jobs *j, struct ex_job *job, json_t *root, int pages, double now)
{
	vlm_err err = { 0 };
	char name[96];
	snprintf(name, sizeof name, "%s.json", job->id);
	int rc = publish_json(j, job, name, root, &err);
	if (rc < 0)
		return retry_transient(j, job, err.msg, now);
	job->state = EX_JOB_DONE;
	job->pages = pages;
	return finish_done(j, job, name, now);
}

/* A crash, a timeout or a failed extraction: one attempt used; quarantined with `reason` when
 * none is left. */
static int count_attempt(struct jobs *j, struct ex_job *job, const char *reason, const char *msg,
			 double now)
{
	char e1[512];
	job->attempts++;
	if (job->attempts >= j->cfg->max_attempts)
		return fail_job(j, job, reason, msg, now);
	snprintf(job->error, sizeof job->error, "%s", msg);
	backoff(j, job, job->attempts, now);
	log_msg(LOG_WARNING, "job %s '%s': attempt %d of %d failed, retry in %.0fs: %s", job->id,
		esc(e1, job->name), job->attempts, j->cfg->max_attempts, job->next_try - now, msg);
	return save(j, job);
}

/* The earlier result, when `duplicates: reuse` and it is still in the outbox. */
static json_t *earlier_result(struct jobs *j, const struct ex_job *earlier)
{
	char path[4096];
	if (!earlier->result[0] || snprintf(path, sizeof path, "%s/%s/%s", j->cfg->outbox,
					    earlier->inbox, earlier->result) >= (int)sizeof path)
		return NULL;
	return json_load_file(path, 0, NULL);
}

/* A duplicate: a notice (or, with `duplicates: reuse`, the earlier result) instead of a second
 * extraction. */
static int complete_duplicate(struct jobs *j, struct ex_job *job, double now)
{
	vlm_err err = { 0 };
	struct ex_job earlier;
	int found = ex_journal_get(j->journal, job->dup_of, &earlier, &err);
	if (found < 0) {
		log_msg(LOG_CRIT, "%s", err.msg);
		return found;
	}
	if (found && (earlier.state == EX_JOB_QUEUED || earlier.state == EX_JOB_RUNNING)) {
		/* Wait for the original, so the notice (or the reused result) can name its result. */
		job->state = EX_JOB_QUEUED;
		job->next_try = now + DUPLICATE_WAIT_S;
		return save(j, job);
	}
	json_t *reused = found && j->cfg->duplicates == CONFIG_DUPLICATES_REUSE
				 ? earlier_result(j, &earlier)
				 : NULL;
	char name[96];
	json_t *root;
	if (reused) {
		root = reused;
		json_object_set_new(root, "job", json_string(job->id));
		json_object_set_new(root, "source", source_json(job));
		json_object_set_new(root, "duplicate_of", json_string(job->dup_of));
		snprintf(name, sizeof name, "%s.json", job->id);
	} else {
		root = json_pack("{s:s, s:s, s:s, s:o, s:o}", "job", job->id, "duplicate_of",
				 job->dup_of, "note",
				 "the same bytes were already taken from this "
				 "inbox; no second extraction was made",
				 "earlier_result",
				 found && earlier.result[0] ? json_string(earlier.result)
							    : json_null(),
				 "source", source_json(job));
		snprintf(name, sizeof name, "%s.duplicate.json", job->id);
	}
	int rc = root ? publish_json(j, job, name, root, &err)
		      : vlm_err_set(&err, -ENOMEM, "jobs: out of memory");
	json_decref(root);
	if (rc < 0)
		return retry_transient(j, job, err.msg, now);
	job->state = EX_JOB_DUPLICATE;
	return finish_done(j, job, name, now);
}

/* ---- life cycle -------------------------------------------------------------------------------- */

static void release_slot(struct jobs *j, struct slot *s);

static bool grow_slots(struct jobs *j, size_t want)
{
	if (want <= j->n_slots)
		return true; /* fewer workers: busy slots above the count drain and are not refilled */
	struct slot *grown = realloc(j->slots, want * sizeof *grown);
	if (!grown)
		return false;
	memset(grown + j->n_slots, 0, (want - j->n_slots) * sizeof *grown);
	j->slots = grown;
	j->n_slots = want;
	return true;
}

int jobs_new(const struct config *cfg, struct jobs **out, vlm_err *err)
{
	*out = NULL;
	struct jobs *j = calloc(1, sizeof *j);
	if (!j)
		return vlm_err_set(err, -ENOMEM, "jobs: out of memory");
	j->cfg = cfg;
	char path[4096];
	int rc, dirfd = -1;
	if ((rc = spool_open_dir(cfg->state, NULL, 0700, &dirfd, err)) < 0)
		goto fail;
	close(dirfd);
	snprintf(path, sizeof path, "%s/journal.db", cfg->state);
	if ((rc = ex_journal_open(path, false, &j->journal, err)) < 0 ||
	    (rc = spool_open(cfg->state, &j->spool, err)) < 0 ||
	    (rc = model_new(cfg, &j->model, err)) < 0)
		goto fail;
	if (!grow_slots(j, (size_t)cfg->workers)) {
		rc = vlm_err_set(err, -ENOMEM, "jobs: out of memory");
		goto fail;
	}
	*out = j;
	return 0;
fail:
	jobs_free(j);
	return rc;
}

void jobs_free(struct jobs *j)
{
	if (!j)
		return;
	/* The model first: it waits for the extraction in progress, which reads a slot's
	 * document. */
	model_free(j->model);
	for (size_t i = 0; i < j->n_slots; i++) {
		struct slot *s = &j->slots[i];
		if (s->busy && s->child.memfd >= 0)
			close(s->child.memfd);
		if (s->busy && s->ext)
			release_slot(j, s);
	}
	free(j->slots);
	spool_close(j->spool);
	ex_journal_close(j->journal);
	free(j);
}

int jobs_set_config(struct jobs *j, const struct config *cfg, vlm_err *err)
{
	int rc = model_set_config(j->model, cfg, err);
	if (rc < 0)
		return rc;
	j->cfg = cfg;
	/* Without room for more slots the old count stays in force. */
	grow_slots(j, (size_t)cfg->workers);
	return 0;
}

static bool job_known(void *user, const char *id)
{
	struct jobs *j = user;
	struct ex_job job;
	/* When in doubt (journal error) keep the file: recovery must never delete committed work. */
	return ex_journal_get(j->journal, id, &job, NULL) != 0;
}

static int recover_reprocessed(struct jobs *j);

/* For spool_recover_hidden: the job whose original it finds, unless that original was refused
 * at claim (it goes to the failed folder when the job is settled, not away). */
static int find_job(void *user, const char *id, struct ex_job *job)
{
	struct jobs *j = user;
	int found = ex_journal_get(j->journal, id, job, NULL);
	return found > 0 && refused_at_claim(j, job) ? 0 : found;
}

/* Originals a stop caught between their private name and their removal (spool_release_source).
 * A failure here is said and left for the next start: the files are kept meanwhile. */
static void recover_inboxes(struct jobs *j)
{
	char e1[512];
	for (size_t i = 0; i < j->cfg->n_inboxes; i++) {
		int dirfd = open(j->cfg->inboxes[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			continue; /* a missing inbox is the watch's to report */
		vlm_err e = { 0 };
		int n = spool_recover_hidden(dirfd, find_job, j, &e);
		close(dirfd);
		if (n < 0)
			log_msg(LOG_WARNING, "recovery: inbox '%s': %s",
				esc(e1, j->cfg->inboxes[i].name), e.msg);
		else if (n)
			log_msg(LOG_INFO,
				"recovery: inbox '%s': finished removing %d claimed file%s",
				esc(e1, j->cfg->inboxes[i].name), n, n == 1 ? "" : "s");
	}
}

int jobs_recover(struct jobs *j, double now, vlm_err *err)
{
	int removed = spool_recover(j->spool, job_known, j, err);
	if (removed < 0)
		return removed;
	if (removed)
		log_msg(LOG_INFO, "recovery: removed %d uncommitted spool file%s", removed,
			removed == 1 ? "" : "s");
	recover_inboxes(j);
	for (size_t i = 0; i < j->cfg->n_inboxes; i++) {
		const char *bases[] = { j->cfg->outbox, j->cfg->failed, j->cfg->archive };
		for (size_t k = 0; k < 3; k++) {
			int dirfd;
			int rc = open_inbox_dir(bases[k], j->cfg->inboxes[i].name, &dirfd, err);
			if (rc < 0)
				return rc;
			rc = spool_clean_tmp(dirfd, err);
			close(dirfd);
			if (rc < 0)
				return rc;
		}
	}
	struct ex_job *list = NULL;
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_RUNNING;
	int n = ex_journal_list(j->journal, &f, &list, err);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		list[i].state = EX_JOB_QUEUED;
		list[i].next_try = now;
		if (ex_journal_update(j->journal, &list[i], err) < 0) {
			free(list);
			return err ? err->code : -EIO;
		}
	}
	if (n)
		log_msg(LOG_INFO, "recovery: requeued %d job%s that were running", n,
			n == 1 ? "" : "s");
	free(list);
	f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_DONE | 1u << EX_JOB_DUPLICATE | 1u << EX_JOB_FAILED;
	f.settled = 0;
	n = ex_journal_list(j->journal, &f, &list, err);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		int rc = settle(j, &list[i], now);
		if (rc < 0) {
			free(list);
			return vlm_err_set(err, rc, "recovery: the journal cannot be written");
		}
	}
	free(list);
	int rc = recover_reprocessed(j);
	if (rc < 0)
		return vlm_err_set(err, rc, "recovery: the journal cannot be written");
	f = EX_JOB_FILTER_ANY;
	f.settled = 0;
	f.states = (1u << EX_JOB_QUEUED) | (1u << EX_JOB_RUNNING) | (1u << EX_JOB_DONE) |
		   (1u << EX_JOB_DUPLICATE) | (1u << EX_JOB_FAILED);
	j->unsettled = ex_journal_count(j->journal, &f, err);
	return j->unsettled < 0 ? (int)j->unsettled : 0;
}

bool jobs_can_claim(struct jobs *j)
{
	if (j->unsettled >= j->cfg->max_claimed || mono() < j->claim_paused_until)
		return false;
	uint64_t free_bytes;
	if (j->cfg->spool_min_free && spool_free_bytes(j->spool, &free_bytes, NULL) == 0 &&
	    free_bytes < j->cfg->spool_min_free) {
		static double warned;
		if (mono() - warned > 60) {
			log_msg(LOG_WARNING,
				"spool: less than %llu bytes free; not taking new files",
				(unsigned long long)j->cfg->spool_min_free);
			warned = mono();
		}
		return false;
	}
	return true;
}

/* A failed spool_claim: true when the spool, not the file, is at fault (see spool.h). */
static bool spool_unwritable(int rc, const vlm_err *err)
{
	return rc < 0 && rc != -EINVAL && rc != -ENOENT && rc != -EAGAIN && rc != -EFBIG &&
	       err->reason != EX_REASON_IO;
}

/* The spool cannot take a copy: every file would fail the same way, so claiming stops for a
 * backoff instead of trying each file (and logging each) in turn. Files stay in their inbox. */
static void pause_claiming(struct jobs *j, const char *why)
{
	char e1[512];
	j->claim_failures++;
	double delay = backoff_delay(j, j->claim_failures);
	j->claim_paused_until = mono() + delay;
	log_msg(LOG_WARNING, "spool: cannot take a copy, claiming paused for %.1fs: %s", delay,
		esc(e1, why));
}

/* A copy went into the spool: the pause, if any, is over. */
static void claim_succeeded(struct jobs *j)
{
	if (j->claim_failures)
		log_msg(LOG_NOTICE, "spool: writable again after %d failure%s; claiming resumed",
			j->claim_failures, j->claim_failures == 1 ? "" : "s");
	j->claim_failures = 0;
}

/* What the watch makes of a claimed file after spool_release_source returned `rc`: forgotten
 * once removed; a new file under the name (-ESTALE) is looked at as any new file; one the daemon
 * cannot remove (the inbox not writable) is claimed again later, which only removes it (it is
 * recognised), and said once. */
static void release_done(struct watch *w, size_t inbox, const char *name, const struct ex_job *job,
			 int rc, const vlm_err *err)
{
	char e1[512];
	if (rc == 0) {
		watch_done(w, inbox, name);
	} else if (rc == -ESTALE) {
		log_msg(LOG_NOTICE,
			"job %s '%s': a new file took its name in the inbox since the "
			"claim; it is kept and taken as a new document",
			job->id, esc(e1, name));
		watch_again(w, inbox, name);
	} else if (watch_later(w, inbox, name, mono(), 5) == 1) {
		log_msg(LOG_WARNING,
			"job %s '%s': claimed, but left in the inbox (removed once "
			"it can be): %s",
			job->id, esc(e1, name), err->msg);
	}
}

int jobs_claim(struct jobs *j, struct watch *w, size_t inbox, const char *name_in, double now)
{
	const struct config_inbox *box = &j->cfg->inboxes[inbox];
	char name[256], e1[512];
	snprintf(name, sizeof name, "%s", name_in); /* name_in dies with the watch entry */
	int dirfd = watch_inbox_fd(w, inbox);
	struct ex_job job = { .state = EX_JOB_QUEUED, .claimed_at = now, .next_try = now };
	snprintf(job.inbox, sizeof job.inbox, "%s", box->name);
	snprintf(job.schema, sizeof job.schema, "%s", box->schema ? box->schema : "");
	vlm_err err = { 0 };
	int rc = dirfd < 0 ? -ENOENT
			   : spool_claim(j->spool, dirfd, name, j->cfg->limits.max_file_bytes, &job,
					 &err);
	bool too_large = rc == -EFBIG;
	if (too_large) {
		mark_failed(&job, ex_reason_name(EX_REASON_FILE_TOO_LARGE), err.msg, now);
		rc = 0;
	}
	if (rc == -EINVAL) {
		log_msg(LOG_WARNING, "inbox '%s': '%s' is never taken: %s", box->name,
			esc(e1, name), err.msg);
		watch_refuse(w, inbox, name);
		return 0;
	}
	if (rc == -ENOENT) {
		watch_done(w, inbox, name);
		return 0;
	}
	if (spool_unwritable(rc, &err)) {
		pause_claiming(j, err.msg); /* the file stays first in line */
		return 0;
	}
	if (rc < 0) {
		/* Logged once until the file changes: an unreadable file is looked at again with
		 * backoff, quietly. */
		if (watch_later(w, inbox, name, mono(), rc == -EAGAIN ? box->stability_s : 5) == 1)
			log_msg(rc == -EAGAIN ? LOG_INFO : LOG_WARNING,
				"inbox '%s': '%s' not taken yet (tried again until it can be): %s",
				box->name, esc(e1, name), err.msg);
		return 0;
	}
	if (!too_large)
		claim_succeeded(j);

	struct ex_job same;
	int found = ex_journal_find_claim(j->journal, &job, &same, &err);
	if (found > 0 && too_large && !same.settled) {
		/* Refused and committed before a stop that came before the move to failed/. */
		watch_done(w, inbox, name);
		log_msg(LOG_INFO, "job %s '%s': already refused; moving it to the failed folder",
			same.id, esc(e1, name));
		return settle(j, &same, now);
	}
	if (found > 0) {
		/* Claimed and committed before a stop that came before the unlink, or left in an
		 * inbox the daemon could not write. */
		spool_discard(j->spool, job.id, NULL);
		rc = spool_release_source(dirfd, name, &same, &err);
		if (rc == 0)
			log_msg(LOG_INFO, "job %s '%s': already claimed; removed from the inbox",
				same.id, esc(e1, name));
		release_done(w, inbox, name, &same, rc, &err);
		return 0;
	}
	if (found == 0 && !too_large)
		found = ex_journal_find_sha(j->journal, job.inbox, job.sha256, &same, &err);
	if (found < 0) {
		log_msg(LOG_CRIT, "%s", err.msg);
		spool_discard(j->spool, job.id, NULL);
		return found;
	}
	if (found)
		snprintf(job.dup_of, sizeof job.dup_of, "%s", same.id);
	crash_point("journal.insert.before");
	if ((rc = ex_journal_insert(j->journal, &job, &err)) < 0) {
		log_msg(LOG_CRIT, "%s", err.msg);
		spool_discard(j->spool, job.id, NULL);
		return rc;
	}
	crash_point("journal.insert.after");
	j->unsettled++;
	if (too_large) {
		watch_done(w, inbox, name);
		log_failed(&job);
		return settle(j, &job, now);
	}
	log_msg(LOG_INFO, "job %s '%s': claimed from inbox '%s' (%lld bytes, sha256 %.16s)", job.id,
		esc(e1, name), job.inbox, (long long)job.size, job.sha256);
	rc = spool_release_source(dirfd, name, &job, &err);
	release_done(w, inbox, name, &job, rc, &err);
	return 0;
}

/* The next queued job that may run now, taking inboxes in turn. 1 when found. */
static int next_queued(struct jobs *j, double now, struct ex_job *out)
{
	vlm_err err = { 0 };
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_QUEUED;
	f.ready_by = now;
	f.limit = 1;
	size_t n = j->cfg->n_inboxes;
	for (size_t k = 0; k <= n; k++) {
		/* The last round takes any inbox: jobs of an inbox removed by a reload still run. */
		f.inbox = k < n ? j->cfg->inboxes[(j->turn + k) % n].name : NULL;
		struct ex_job *list;
		int got = ex_journal_list(j->journal, &f, &list, &err);
		if (got < 0) {
			log_msg(LOG_CRIT, "%s", err.msg);
			return got;
		}
		if (got) {
			*out = list[0];
			free(list);
			if (k < n)
				j->turn = (j->turn + k + 1) % n;
			return 1;
		}
	}
	return 0;
}

int jobs_start(struct jobs *j, double now)
{
	while (j->n_running < (size_t)j->cfg->workers) {
		struct ex_job job;
		int rc = next_queued(j, now, &job);
		if (rc <= 0)
			return rc;
		job.started_at = now;
		if (job.dup_of[0]) {
			if ((rc = complete_duplicate(j, &job, now)) < 0)
				return rc;
			continue;
		}
		struct slot *s = NULL;
		for (size_t i = 0; i < j->n_slots && i < (size_t)j->cfg->workers && !s; i++)
			if (!j->slots[i].busy)
				s = &j->slots[i];
		if (!s)
			return 0; /* the slots above a count that could not grow stay unused */
		char path[4096];
		vlm_err err = { 0 };
		spool_job_path(j->spool, job.id, path, sizeof path);
		job.state = EX_JOB_RUNNING;
		if ((rc = save(j, &job)) < 0)
			return rc;
		rc = sandbox_start(path, j->cfg, mono(), &s->child, &err);
		if (rc < 0) {
			if ((rc = retry_transient(j, &job, err.msg, now)) < 0)
				return rc;
			return 0; /* no more children this round */
		}
		s->busy = true;
		s->abandoned = false;
		s->job = job;
		j->n_running++;
	}
	return 0;
}

static void release_slot(struct jobs *j, struct slot *s)
{
	if (s->ext) {
		ex_doc_free(s->ext->doc);
		json_decref(s->ext->m.result);
		free(s->ext);
		s->ext = NULL;
	}
	s->busy = false;
	j->n_running--;
}

static int requeue_stopped(struct jobs *j, struct ex_job *job, double now)
{
	char e1[512];
	job->state = EX_JOB_QUEUED;
	job->next_try = now;
	log_msg(LOG_INFO, "job %s '%s': requeued (stopping)", job->id, esc(e1, job->name));
	return save(j, job);
}

/* Hands a decoded document of a schema job to the model worker; the slot stays busy until
 * jobs_collect. Returns 1 when handed over, else what the job became (0 or a fatal errno). */
static int start_extraction(struct jobs *j, struct slot *s, struct ex_doc *doc, double now)
{
	struct ex_job *job = &s->job;
	vlm_err err = { 0 };
	const struct ex_schema *schema = model_schema(j->model, job->schema, &err);
	if (!schema)
		return retry_transient(j, job, err.msg, now);
	struct extraction *e = calloc(1, sizeof *e);
	if (!e)
		return retry_transient(j, job, "out of memory", now);
	e->slot = (size_t)(s - j->slots);
	e->doc = doc;
	snprintf(e->sha256, sizeof e->sha256, "%s", job->sha256);
	/* The worker reads only the extraction and the document, never the slot. */
	e->m = (struct model_job){ .doc = doc,
				   .schema = schema,
				   .src = { .name = doc->path,
					    .size = (uint64_t)job->size,
					    .sha256 = e->sha256,
					    .ingest_s = now - job->started_at } };
	s->ext = e;
	model_submit(j->model, &e->m);
	return 1;
}

static int finish_slot(struct jobs *j, struct slot *s, int wstatus, double now)
{
	struct ex_job *job = &s->job;
	struct ex_doc *doc = NULL;
	vlm_err err = { 0 };
	char shown[512];
	log_escape(shown, sizeof shown, job->name);
	enum sandbox_outcome outcome =
		sandbox_finish(&s->child, wstatus, j->cfg, shown, &doc, &err);
	int rc;
	if (s->abandoned) {
		rc = requeue_stopped(j, job, now);
	} else if (outcome == SANDBOX_OK) {
		/* The document's own name, not the spool path, is what results show. */
		free(doc->path);
		doc->path = strdup(job->name);
		if (!doc->path) {
			rc = retry_transient(j, job, "out of memory", now);
		} else if (job->schema[0]) {
			rc = start_extraction(j, s, doc, now);
			if (rc == 1)
				return 0; /* the document now belongs to the extraction */
		} else {
			json_t *root = pages_result(job, doc);
			rc = root ? publish_result(j, job, root, (int)doc->n_pages, now)
				  : retry_transient(j, job, "out of memory", now);
			json_decref(root);
		}
	} else if (outcome == SANDBOX_REFUSED) {
		rc = fail_job(j, job, ex_reason_name((enum ex_ingest_reason)err.reason), err.msg,
			      now);
	} else {
		rc = count_attempt(j, job, err.code == -ETIMEDOUT ? "timeout" : "crashed", err.msg,
				   now);
	}
	ex_doc_free(doc);
	release_slot(j, s);
	return rc;
}

int jobs_reap(struct jobs *j, double now)
{
	for (;;) {
		int wstatus;
		pid_t pid = waitpid(-1, &wstatus, WNOHANG);
		if (pid <= 0)
			return 0;
		for (size_t i = 0; i < j->n_slots; i++) {
			struct slot *s = &j->slots[i];
			if (!s->busy || s->child.pid != pid)
				continue;
			int rc = finish_slot(j, s, wstatus, now);
			if (rc < 0)
				return rc;
			break;
		}
	}
}

/* What an extraction's outcome makes of its job. */
static int finish_extraction(struct jobs *j, struct slot *s, double now)
{
	struct ex_job *job = &s->job;
	struct model_job *m = &s->ext->m;
	if (m->rc == 0) {
		json_object_set_new(m->result, "job", json_string(job->id));
		return publish_result(j, job, m->result, (int)s->ext->doc->n_pages, now);
	}
	if (m->transient)
		return retry_transient(j, job, m->err.msg, now);
	if (m->err.reason > EX_REASON_NONE && m->err.reason < EX_REASON_COUNT &&
	    ex_reason_is_refusal((enum ex_ingest_reason)m->err.reason))
		return fail_job(j, job, ex_reason_name((enum ex_ingest_reason)m->err.reason),
				m->err.msg, now);
	return count_attempt(j, job, "extraction failed", m->err.msg, now);
}

int jobs_collect(struct jobs *j, double now)
{
	struct model_job *m;
	while ((m = model_take(j->model))) {
		struct slot *s = &j->slots[((struct extraction *)m)->slot];
		int rc = finish_extraction(j, s, now);
		release_slot(j, s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int jobs_fd(const struct jobs *j)
{
	return model_fd(j->model);
}

void jobs_check_timeouts(struct jobs *j, double mono_now)
{
	for (size_t i = 0; i < j->n_slots; i++)
		if (j->slots[i].busy && j->slots[i].child.pid > 0 &&
		    mono_now >= j->slots[i].child.deadline)
			sandbox_kill(&j->slots[i].child);
}

int jobs_abandon(struct jobs *j, double now)
{
	for (size_t i = 0; i < j->n_slots; i++) {
		struct slot *s = &j->slots[i];
		if (!s->busy || s->abandoned)
			continue;
		if (s->child.pid > 0) {
			s->abandoned = true;
			kill(s->child.pid, SIGKILL);
		} else if (s->ext && model_cancel(j->model, &s->ext->m)) {
			/* Waiting for the model: requeued now. One being extracted finishes. */
			int rc = requeue_stopped(j, &s->job, now);
			release_slot(j, s);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int jobs_retry_settle(struct jobs *j, double now)
{
	if (mono() < j->settle_retry_at)
		return 0;
	struct ex_job *list;
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_DONE | 1u << EX_JOB_DUPLICATE | 1u << EX_JOB_FAILED;
	f.settled = 0;
	vlm_err err = { 0 };
	int n = ex_journal_list(j->journal, &f, &list, &err);
	if (n < 0) {
		log_msg(LOG_CRIT, "%s", err.msg);
		return n;
	}
	/* settle() lowers it again for each job that fails once more. */
	j->settle_retry_at = 1e300;
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		if (list[i].next_try <= now)
			rc = settle(j, &list[i], now);
		else if (mono() + (list[i].next_try - now) < j->settle_retry_at)
			j->settle_retry_at = mono() + (list[i].next_try - now);
	}
	free(list);
	return rc;
}

/* ---- reprocess requests ------------------------------------------------------------------------- */

/* Removes the archived or failed copy a reprocessed job left behind, then forgets its name. */
static int drop_reprocessed_original(struct jobs *j, struct ex_job *old)
{
	bool failed = old->reason[0] != '\0'; /* only quarantine sets a reason */
	int dirfd;
	if (open_inbox_dir(failed ? j->cfg->failed : j->cfg->archive, old->inbox, &dirfd, NULL) ==
	    0) {
		char err_name[320];
		snprintf(err_name, sizeof err_name, "%s.error.json", old->dest);
		crash_point("reprocess.unlink.before");
		unlinkat(dirfd, old->dest, 0);
		crash_point("reprocess.unlink.after");
		if (failed) {
			crash_point("reprocess.unlink-record.before");
			unlinkat(dirfd, err_name, 0);
			crash_point("reprocess.unlink-record.after");
		}
		crash_point("reprocess.fsync-dir.before");
		fsync(dirfd);
		crash_point("reprocess.fsync-dir.after");
		close(dirfd);
	}
	old->dest[0] = '\0';
	return save(j, old);
}

static int recover_reprocessed(struct jobs *j)
{
	struct ex_job *list;
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_REPROCESSED;
	int n = ex_journal_list(j->journal, &f, &list, NULL);
	int rc = n < 0 ? n : 0;
	for (int i = 0; i < n && rc == 0; i++)
		if (list[i].dest[0])
			rc = drop_reprocessed_original(j, &list[i]);
	free(list);
	return rc;
}

static int reprocess_one(struct jobs *j, struct ex_job *old, double now)
{
	char e1[512];
	vlm_err err = { 0 };
	bool failed = old->state == EX_JOB_FAILED;
	int dirfd = -1, rc = 0;
	struct ex_job job = { .state = EX_JOB_QUEUED, .claimed_at = now, .next_try = now };
	if (old->dest[0] && old->settled &&
	    open_inbox_dir(failed ? j->cfg->failed : j->cfg->archive, old->inbox, &dirfd, &err) ==
		    0) {
		/* No size limit here: the parser refuses a file still too large with its reason. */
		rc = spool_claim(j->spool, dirfd, old->dest, UINT64_MAX, &job, &err);
		if (spool_unwritable(rc, &err)) {
			/* The request stays: it is taken again once the spool has room. */
			close(dirfd);
			pause_claiming(j, err.msg);
			return 0;
		}
		if (rc == 0)
			claim_succeeded(j);
	}
	if (dirfd < 0 || rc < 0) {
		log_msg(LOG_WARNING,
			"job %s '%s': cannot reprocess, the original is not in the %s "
			"folder%s%s",
			old->id, esc(e1, old->name), failed ? "failed" : "archive",
			err.msg[0] ? ": " : "", err.msg);
		if (dirfd >= 0)
			close(dirfd);
		old->reprocess = false;
		return save(j, old);
	}
	close(dirfd);
	snprintf(job.inbox, sizeof job.inbox, "%s", old->inbox);
	snprintf(job.name, sizeof job.name, "%s", old->name);
	snprintf(job.reprocess_of, sizeof job.reprocess_of, "%s", old->id);
	const char *schema = old->schema;
	for (size_t i = 0; i < j->cfg->n_inboxes; i++)
		if (strcmp(j->cfg->inboxes[i].name, old->inbox) == 0)
			schema = j->cfg->inboxes[i].schema ? j->cfg->inboxes[i].schema : "";
	snprintf(job.schema, sizeof job.schema, "%s", schema);
	/* A job can be reprocessed once: the new job takes over the original in one transaction. */
	old->state = EX_JOB_REPROCESSED;
	old->reprocess = false;
	crash_point("journal.reprocess.before");
	if ((rc = ex_journal_begin(j->journal, &err)) < 0 ||
	    (rc = ex_journal_insert(j->journal, &job, &err)) < 0 ||
	    (rc = ex_journal_update(j->journal, old, &err)) < 0 ||
	    (rc = ex_journal_commit(j->journal, &err)) < 0) {
		ex_journal_rollback(j->journal);
		spool_discard(j->spool, job.id, NULL);
		log_msg(LOG_CRIT, "%s", err.msg);
		return rc;
	}
	crash_point("journal.reprocess.after");
	j->unsettled++;
	log_msg(LOG_INFO, "job %s '%s': reprocessing job %s", job.id, esc(e1, job.name), old->id);
	return drop_reprocessed_original(j, old);
}

int jobs_take_reprocess(struct jobs *j, double now)
{
	struct ex_job *list;
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.reprocess = 1;
	f.limit = 64;
	vlm_err err = { 0 };
	int n = ex_journal_list(j->journal, &f, &list, &err);
	if (n < 0) {
		log_msg(LOG_CRIT, "%s", err.msg);
		return n;
	}
	int rc = 0;
	for (int i = 0; i < n && rc == 0 && jobs_can_claim(j); i++)
		rc = reprocess_one(j, &list[i], now);
	free(list);
	return rc;
}

bool jobs_reprocess_pending(struct jobs *j)
{
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.reprocess = 1;
	return ex_journal_count(j->journal, &f, NULL) != 0;
}

/* ---- questions from the main loop -------------------------------------------------------------- */

double jobs_next_deadline(struct jobs *j, double now, double mono_now)
{
	double t = 1e300, next_try;
	for (size_t i = 0; i < j->n_slots; i++)
		if (j->slots[i].busy && j->slots[i].child.pid > 0 && j->slots[i].child.deadline < t)
			t = j->slots[i].child.deadline;
	if (j->n_running < (size_t)j->cfg->workers &&
	    ex_journal_next_try(j->journal, false, &next_try, NULL) == 1 &&
	    mono_now + (next_try - now) < t)
		t = mono_now + (next_try - now);
	/* Only moments still ahead: one already past is served by the next round, and a stopping
	 * daemon (which serves neither) must not spin on it. */
	if (j->claim_paused_until > mono_now && j->claim_paused_until < t)
		t = j->claim_paused_until; /* files wait in the ready queue for the pause's end */
	if (j->settle_retry_at > mono_now && j->settle_retry_at < t)
		t = j->settle_retry_at;
	return t;
}

size_t jobs_running(const struct jobs *j)
{
	return j->n_running;
}

bool jobs_idle(struct jobs *j, double now)
{
	if (j->n_running)
		return false;
	/* Queued jobs count unless they are backing off after a failure (a duplicate waiting for
	 * its original is not): idle when no job is due and none is waiting without a failure. */
	double next_try;
	int due = ex_journal_next_try(j->journal, false, &next_try, NULL);
	if (due < 0 || (due == 1 && next_try <= now))
		return false;
	return ex_journal_next_try(j->journal, true, &next_try, NULL) == 0;
}

void jobs_status(struct jobs *j, char *buf, size_t size)
{
	int64_t counts[EX_JOB_STATE_COUNT];
	for (int s = 0; s < EX_JOB_STATE_COUNT; s++) {
		struct ex_job_filter f = EX_JOB_FILTER_ANY;
		f.states = 1u << s;
		counts[s] = ex_journal_count(j->journal, &f, NULL);
	}
	snprintf(buf, size, "queued %lld, running %zu, done %lld, failed %lld, duplicates %lld",
		 (long long)counts[EX_JOB_QUEUED], j->n_running, (long long)counts[EX_JOB_DONE],
		 (long long)counts[EX_JOB_FAILED], (long long)counts[EX_JOB_DUPLICATE]);
}
