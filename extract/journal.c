/* The job journal (see ex.h): SQLite in WAL mode with synchronous=FULL, so a committed state
 * change survives a power cut. Owns the table layout and every SQL statement; knows nothing of
 * spool files or directories, which the daemon keeps consistent with it. A job row is read and
 * written whole, so callers change a struct ex_job and save it. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ex.h"

struct ex_journal {
	sqlite3 *db;
	char *path;
};

static const char *const state_names[] = { "queued",    "running", "done",
					   "duplicate", "failed",  "reprocessed" };
_Static_assert(sizeof state_names / sizeof state_names[0] == EX_JOB_STATE_COUNT, "state names");

const char *ex_job_state_name(enum ex_job_state state)
{
	return (unsigned)state < EX_JOB_STATE_COUNT ? state_names[state] : "unknown";
}

/* The column list, in the order job_bind and job_read use. */
#define JOB_COLUMNS                                                                              \
	"id, inbox, name, schema, sha256, size, src_dev, src_ino, src_mtime_ns, state, dup_of, " \
	"reprocess_of, attempts, transient, next_try, claimed_at, started_at, finished_at, "     \
	"pages, result, dest, settled, reprocess, reason, error"
#define JOB_N_COLUMNS 25

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS jobs ("
	" id TEXT PRIMARY KEY, inbox TEXT NOT NULL, name TEXT NOT NULL, schema TEXT NOT NULL,"
	" sha256 TEXT NOT NULL, size INTEGER NOT NULL, src_dev INTEGER NOT NULL,"
	" src_ino INTEGER NOT NULL, src_mtime_ns INTEGER NOT NULL, state INTEGER NOT NULL,"
	" dup_of TEXT NOT NULL, reprocess_of TEXT NOT NULL, attempts INTEGER NOT NULL,"
	" transient INTEGER NOT NULL, next_try REAL NOT NULL, claimed_at REAL NOT NULL,"
	" started_at REAL NOT NULL, finished_at REAL NOT NULL, pages INTEGER NOT NULL,"
	" result TEXT NOT NULL, dest TEXT NOT NULL, settled INTEGER NOT NULL,"
	" reprocess INTEGER NOT NULL, reason TEXT NOT NULL, error TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS jobs_sha ON jobs (inbox, sha256);"
	"CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, inbox, next_try);"
	"CREATE INDEX IF NOT EXISTS jobs_claimed ON jobs (claimed_at);"
	/* The main loop asks for the earliest retry every round: one index seek, not a scan. */
	"CREATE INDEX IF NOT EXISTS jobs_next_try ON jobs (state, next_try);";

static int db_fail(struct ex_journal *j, vlm_err *err, const char *what)
{
	int code = sqlite3_errcode(j->db);
	int e = code == SQLITE_BUSY || code == SQLITE_LOCKED      ? -EBUSY
		: code == SQLITE_FULL                             ? -ENOSPC
		: code == SQLITE_NOMEM                            ? -ENOMEM
		: code == SQLITE_READONLY || code == SQLITE_PERM  ? -EACCES
		: code == SQLITE_CANTOPEN                         ? -ENOENT
		: code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? -EBADMSG
								  : -EIO;
	return vlm_err_set(err, e, "journal: '%s': %s: %s", j->path, what, sqlite3_errmsg(j->db));
}

static int exec(struct ex_journal *j, const char *sql, vlm_err *err)
{
	if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(j, err, sql);
	return 0;
}

int ex_journal_open(const char *path, bool readonly, struct ex_journal **out, vlm_err *err)
{
	*out = NULL;
	struct ex_journal *j = calloc(1, sizeof *j);
	if (!j || !(j->path = strdup(path))) {
		free(j);
		return vlm_err_set(err, -ENOMEM, "journal: '%s': out of memory", path);
	}
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc = 0;
	if (sqlite3_open_v2(path, &j->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = j->db ? db_fail(j, err, "cannot open")
			   : vlm_err_set(err, -ENOMEM, "journal: '%s': out of memory", path);
		goto fail;
	}
	/* Readers (intake status) and the daemon share the file: wait for a lock rather than fail. */
	sqlite3_busy_timeout(j->db, 10000);
	if (!readonly) {
		/* WAL keeps readers off the writer's back; FULL makes each commit durable (a WAL
		 * database with NORMAL may lose the last commits on power loss). */
		if ((rc = exec(j, "PRAGMA journal_mode=WAL;", err)) < 0 ||
		    (rc = exec(j, "PRAGMA synchronous=FULL;", err)) < 0 ||
		    (rc = exec(j, schema_sql, err)) < 0)
			goto fail;
	}
	*out = j;
	return 0;
fail:
	ex_journal_close(j);
	return rc;
}

void ex_journal_close(struct ex_journal *j)
{
	if (!j)
		return;
	sqlite3_close(j->db);
	free(j->path);
	free(j);
}

int ex_journal_begin(struct ex_journal *j, vlm_err *err)
{
	/* IMMEDIATE takes the write lock now, so a later statement cannot fail with BUSY midway. */
	return exec(j, "BEGIN IMMEDIATE;", err);
}

int ex_journal_commit(struct ex_journal *j, vlm_err *err)
{
	return exec(j, "COMMIT;", err);
}

void ex_journal_rollback(struct ex_journal *j)
{
	sqlite3_exec(j->db, "ROLLBACK;", NULL, NULL, NULL);
}

static int prepare(struct ex_journal *j, const char *sql, sqlite3_stmt **st, vlm_err *err)
{
	if (sqlite3_prepare_v2(j->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(j, err, "prepare");
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Binds every column of JOB_COLUMNS, starting at parameter 1. */
static void job_bind(sqlite3_stmt *st, const struct ex_job *job)
{
	int i = 1;
	bind_text(st, i++, job->id);
	bind_text(st, i++, job->inbox);
	bind_text(st, i++, job->name);
	bind_text(st, i++, job->schema);
	bind_text(st, i++, job->sha256);
	sqlite3_bind_int64(st, i++, job->size);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)job->src_dev);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)job->src_ino);
	sqlite3_bind_int64(st, i++, job->src_mtime_ns);
	sqlite3_bind_int(st, i++, (int)job->state);
	bind_text(st, i++, job->dup_of);
	bind_text(st, i++, job->reprocess_of);
	sqlite3_bind_int(st, i++, job->attempts);
	sqlite3_bind_int(st, i++, job->transient);
	sqlite3_bind_double(st, i++, job->next_try);
	sqlite3_bind_double(st, i++, job->claimed_at);
	sqlite3_bind_double(st, i++, job->started_at);
	sqlite3_bind_double(st, i++, job->finished_at);
	sqlite3_bind_int(st, i++, job->pages);
	bind_text(st, i++, job->result);
	bind_text(st, i++, job->dest);
	sqlite3_bind_int(st, i++, job->settled);
	sqlite3_bind_int(st, i++, job->reprocess);
	bind_text(st, i++, job->reason);
	bind_text(st, i++, job->error);
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	snprintf(dst, size, "%s", s ? (const char *)s : "");
}

static void job_read(sqlite3_stmt *st, struct ex_job *job)
{
	int i = 0;
	memset(job, 0, sizeof *job);
	copy_col(job->id, sizeof job->id, st, i++);
	copy_col(job->inbox, sizeof job->inbox, st, i++);
	copy_col(job->name, sizeof job->name, st, i++);
	copy_col(job->schema, sizeof job->schema, st, i++);
	copy_col(job->sha256, sizeof job->sha256, st, i++);
	job->size = sqlite3_column_int64(st, i++);
	job->src_dev = (uint64_t)sqlite3_column_int64(st, i++);
	job->src_ino = (uint64_t)sqlite3_column_int64(st, i++);
	job->src_mtime_ns = sqlite3_column_int64(st, i++);
	int state = sqlite3_column_int(st, i++);
	job->state =
		state >= 0 && state < EX_JOB_STATE_COUNT ? (enum ex_job_state)state : EX_JOB_FAILED;
	copy_col(job->dup_of, sizeof job->dup_of, st, i++);
	copy_col(job->reprocess_of, sizeof job->reprocess_of, st, i++);
	job->attempts = sqlite3_column_int(st, i++);
	job->transient = sqlite3_column_int(st, i++);
	job->next_try = sqlite3_column_double(st, i++);
	job->claimed_at = sqlite3_column_double(st, i++);
	job->started_at = sqlite3_column_double(st, i++);
	job->finished_at = sqlite3_column_double(st, i++);
	job->pages = sqlite3_column_int(st, i++);
	copy_col(job->result, sizeof job->result, st, i++);
	copy_col(job->dest, sizeof job->dest, st, i++);
	job->settled = sqlite3_column_int(st, i++) != 0;
	job->reprocess = sqlite3_column_int(st, i++) != 0;
	copy_col(job->reason, sizeof job->reason, st, i++);
	copy_col(job->error, sizeof job->error, st, i++);
}

int ex_journal_insert(struct ex_journal *j, const struct ex_job *job, vlm_err *err)
{
	sqlite3_stmt *st;
	int rc = prepare(j,
			 "INSERT INTO jobs (" JOB_COLUMNS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,"
			 "?,?,?,?,?,?,?,?,?,?,?,?)",
			 &st, err);
	if (rc < 0)
		return rc;
	job_bind(st, job);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(j, err, "insert job");
	sqlite3_finalize(st);
	return rc;
}

int ex_journal_update(struct ex_journal *j, const struct ex_job *job, vlm_err *err)
{
	sqlite3_stmt *st;
	/* Rewrites the whole row: "INSERT OR REPLACE" would also insert a job that was never
	 * claimed, so the id is matched explicitly and a missing row is an error. */
	int rc = prepare(j,
			 "UPDATE jobs SET (" JOB_COLUMNS ") = (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
			 "?,?,?,?,?,?,?,?,?) WHERE id = ?26",
			 &st, err);
	if (rc < 0)
		return rc;
	job_bind(st, job);
	bind_text(st, JOB_N_COLUMNS + 1, job->id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(j, err, "update job");
	else if (sqlite3_changes(j->db) != 1)
		rc = vlm_err_set(err, -ENOENT, "journal: '%s': job '%s': no such job", j->path,
				 job->id);
	sqlite3_finalize(st);
	return rc;
}

/* Runs a prepared SELECT of JOB_COLUMNS and returns its first row (1) or none (0). */
static int select_one(struct ex_journal *j, sqlite3_stmt *st, struct ex_job *out, vlm_err *err)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		job_read(st, out);
		rc = 1;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = db_fail(j, err, "select job");
	}
	sqlite3_finalize(st);
	return rc;
}

int ex_journal_get(struct ex_journal *j, const char *id, struct ex_job *out, vlm_err *err)
{
	sqlite3_stmt *st;
	int rc = prepare(j, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, id);
	return select_one(j, st, out, err);
}

int ex_journal_find_sha(struct ex_journal *j, const char *inbox, const char *sha256,
			struct ex_job *out, vlm_err *err)
{
	sqlite3_stmt *st;
	int rc = prepare(j,
			 "SELECT " JOB_COLUMNS " FROM jobs WHERE inbox = ?1 AND sha256 = ?2"
			 " AND state NOT IN (?3, ?4) ORDER BY claimed_at, id LIMIT 1",
			 &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, inbox);
	bind_text(st, 2, sha256);
	sqlite3_bind_int(st, 3, EX_JOB_FAILED);
	sqlite3_bind_int(st, 4, EX_JOB_REPROCESSED);
	return select_one(j, st, out, err);
}

int ex_journal_find_claim(struct ex_journal *j, const struct ex_job *probe, struct ex_job *out,
			  vlm_err *err)
{
	sqlite3_stmt *st;
	int rc = prepare(j,
			 "SELECT " JOB_COLUMNS " FROM jobs WHERE inbox = ?1 AND sha256 = ?2"
			 " AND name = ?3 AND src_dev = ?4 AND src_ino = ?5 AND src_mtime_ns = ?6"
			 " LIMIT 1",
			 &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, probe->inbox);
	bind_text(st, 2, probe->sha256);
	bind_text(st, 3, probe->name);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)probe->src_dev);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)probe->src_ino);
	sqlite3_bind_int64(st, 6, probe->src_mtime_ns);
	return select_one(j, st, out, err);
}

/* Appends the WHERE clause of `f` to `sql`; parameter numbers are fixed per field. */
static void filter_sql(const struct ex_job_filter *f, char *sql, size_t size)
{
	size_t n = strlen(sql);
	n += (size_t)snprintf(sql + n, size - n, " WHERE 1");
	if (f->states)
		n += (size_t)snprintf(sql + n, size - n, " AND ((1 << state) & ?1) != 0");
	if (f->settled >= 0)
		n += (size_t)snprintf(sql + n, size - n, " AND settled = ?2");
	if (f->reprocess >= 0)
		n += (size_t)snprintf(sql + n, size - n, " AND reprocess = ?3");
	if (f->inbox)
		n += (size_t)snprintf(sql + n, size - n, " AND inbox = ?4");
	if (f->schema)
		n += (size_t)snprintf(sql + n, size - n, " AND schema = ?5");
	if (f->name)
		n += (size_t)snprintf(sql + n, size - n, " AND name = ?6");
	if (f->reprocess_of)
		n += (size_t)snprintf(sql + n, size - n, " AND reprocess_of = ?7");
	if (f->since > 0)
		n += (size_t)snprintf(sql + n, size - n, " AND claimed_at >= ?8");
	if (f->ready_by > 0)
		n += (size_t)snprintf(sql + n, size - n, " AND next_try <= ?9");
}

static void filter_bind(sqlite3_stmt *st, const struct ex_job_filter *f)
{
	if (f->states)
		sqlite3_bind_int64(st, 1, f->states);
	if (f->settled >= 0)
		sqlite3_bind_int(st, 2, f->settled);
	if (f->reprocess >= 0)
		sqlite3_bind_int(st, 3, f->reprocess);
	if (f->inbox)
		bind_text(st, 4, f->inbox);
	if (f->schema)
		bind_text(st, 5, f->schema);
	if (f->name)
		bind_text(st, 6, f->name);
	if (f->reprocess_of)
		bind_text(st, 7, f->reprocess_of);
	if (f->since > 0)
		sqlite3_bind_double(st, 8, f->since);
	if (f->ready_by > 0)
		sqlite3_bind_double(st, 9, f->ready_by);
}

int ex_journal_list(struct ex_journal *j, const struct ex_job_filter *f, struct ex_job **out,
		    vlm_err *err)
{
	char sql[1024] = "SELECT " JOB_COLUMNS " FROM jobs";
	filter_sql(f, sql, sizeof sql);
	size_t n = strlen(sql);
	n += (size_t)snprintf(sql + n, sizeof sql - n, " ORDER BY claimed_at %s, id %s",
			      f->newest_first ? "DESC" : "ASC", f->newest_first ? "DESC" : "ASC");
	if (f->limit)
		snprintf(sql + n, sizeof sql - n, " LIMIT %zu", f->limit);
	*out = NULL;
	sqlite3_stmt *st;
	int rc = prepare(j, sql, &st, err);
	if (rc < 0)
		return rc;
	filter_bind(st, f);
	struct ex_job *jobs = NULL;
	size_t count = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? 2 * cap : 16;
			struct ex_job *grown = realloc(jobs, cap * sizeof *jobs);
			if (!grown) {
				rc = vlm_err_set(err, -ENOMEM, "journal: '%s': out of memory",
						 j->path);
				goto fail;
			}
			jobs = grown;
		}
		job_read(st, &jobs[count++]);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(j, err, "list jobs");
		goto fail;
	}
	sqlite3_finalize(st);
	if (count > (size_t)INT32_MAX)
		count = INT32_MAX;
	*out = jobs;
	return (int)count;
fail:
	sqlite3_finalize(st);
	free(jobs);
	return rc;
}

int64_t ex_journal_count(struct ex_journal *j, const struct ex_job_filter *f, vlm_err *err)
{
	char sql[1024] = "SELECT count(*) FROM jobs";
	filter_sql(f, sql, sizeof sql);
	sqlite3_stmt *st;
	int rc = prepare(j, sql, &st, err);
	if (rc < 0)
		return rc;
	filter_bind(st, f);
	int64_t count;
	if (sqlite3_step(st) == SQLITE_ROW)
		count = sqlite3_column_int64(st, 0);
	else
		count = db_fail(j, err, "count jobs");
	sqlite3_finalize(st);
	return count;
}

int ex_journal_next_try(struct ex_journal *j, bool fresh_only, double *out, vlm_err *err)
{
	sqlite3_stmt *st;
	int rc = prepare(j,
			 fresh_only ? "SELECT next_try FROM jobs WHERE state = ?1 AND attempts = 0"
				      " AND transient = 0 ORDER BY next_try LIMIT 1"
				    : "SELECT next_try FROM jobs WHERE state = ?1"
				      " ORDER BY next_try LIMIT 1",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, EX_JOB_QUEUED);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_double(st, 0);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : db_fail(j, err, "next retry");
	}
	sqlite3_finalize(st);
	return rc;
}

int ex_journal_stats(struct ex_journal *j, double since, struct ex_inbox_stats **out, vlm_err *err)
{
	*out = NULL;
	sqlite3_stmt *st;
	int rc = prepare(j,
			 "SELECT inbox, state, count(*), sum(finished_at >= ?1 AND state IN "
			 "(?2, ?3, ?4)), avg(CASE WHEN finished_at >= ?1 AND state IN (?2, ?3, ?4)"
			 " THEN finished_at - claimed_at END) FROM jobs GROUP BY inbox, state"
			 " ORDER BY inbox",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_double(st, 1, since);
	sqlite3_bind_int(st, 2, EX_JOB_DONE);
	sqlite3_bind_int(st, 3, EX_JOB_DUPLICATE);
	sqlite3_bind_int(st, 4, EX_JOB_FAILED);
	struct ex_inbox_stats *stats = NULL;
	size_t n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *inbox = (const char *)sqlite3_column_text(st, 0);
		if (!n || strcmp(stats[n - 1].inbox, inbox ? inbox : "") != 0) {
			struct ex_inbox_stats *grown = realloc(stats, (n + 1) * sizeof *stats);
			if (!grown) {
				free(stats);
				sqlite3_finalize(st);
				return vlm_err_set(err, -ENOMEM, "journal: out of memory");
			}
			stats = grown;
			memset(&stats[n], 0, sizeof stats[n]);
			copy_col(stats[n].inbox, sizeof stats[n].inbox, st, 0);
			n++;
		}
		struct ex_inbox_stats *s = &stats[n - 1];
		int state = sqlite3_column_int(st, 1);
		int64_t recent = sqlite3_column_int64(st, 3);
		if (state >= 0 && state < EX_JOB_STATE_COUNT)
			s->jobs[state] += sqlite3_column_int64(st, 2);
		if (recent > 0) {
			double mean = sqlite3_column_double(st, 4);
			s->recent_seconds =
				(s->recent_seconds * (double)s->recent + mean * (double)recent) /
				(double)(s->recent + recent);
			s->recent += recent;
		}
	}
	if (rc != SQLITE_DONE) {
		free(stats);
		rc = db_fail(j, err, "statistics");
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	*out = stats;
	return (int)n;
}
