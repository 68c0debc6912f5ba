/* extract/journal.c: jobs written and read back field by field, state filters, the duplicate and
 * re-claim lookups, transactions, WAL mode, and a second connection seeing committed work. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "ex.h"

static char dir[] = "/tmp/test_journal.XXXXXX";

static struct ex_job make_job(const char *id, const char *inbox, const char *name, const char *sha,
			      enum ex_job_state state, double claimed)
{
	struct ex_job j = { .state = state,
			    .claimed_at = claimed,
			    .next_try = claimed,
			    .size = 1234,
			    .src_dev = 2049,
			    .src_ino = 77,
			    .src_mtime_ns = 5 };
	snprintf(j.id, sizeof j.id, "%s", id);
	snprintf(j.inbox, sizeof j.inbox, "%s", inbox);
	snprintf(j.name, sizeof j.name, "%s", name);
	snprintf(j.sha256, sizeof j.sha256, "%s", sha);
	return j;
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	char path[256];
	snprintf(path, sizeof path, "%s/journal.db", dir);
	struct ex_journal *j = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_journal_open(path, false, &j, &err), 0);
	if (!j)
		return CHECK_DONE();

	struct ex_job a = make_job("0000000001-aaaaaaaaaaaa", "finance", "scan 1.pdf", "aa",
				   EX_JOB_QUEUED, 100);
	struct ex_job b = make_job("0000000002-bbbbbbbbbbbb", "finance", "scan 2.pdf", "bb",
				   EX_JOB_QUEUED, 200);
	struct ex_job c = make_job("0000000003-cccccccccccc", "medical", "scan 1.pdf", "aa",
				   EX_JOB_FAILED, 300);
	snprintf(a.schema, sizeof a.schema, "invoice");
	CHECK_INT(ex_journal_insert(j, &a, &err), 0);
	CHECK_INT(ex_journal_insert(j, &b, &err), 0);
	CHECK_INT(ex_journal_insert(j, &c, &err), 0);
	CHECK(ex_journal_insert(j, &a, &err) < 0); /* ids are unique */

	struct ex_job got;
	CHECK_INT(ex_journal_get(j, a.id, &got, &err), 1);
	CHECK_STR(got.name, "scan 1.pdf");
	CHECK_STR(got.schema, "invoice");
	CHECK_INT(got.src_ino, 77);
	CHECK_INT(got.size, 1234);
	CHECK_INT(ex_journal_get(j, "nope", &got, &err), 0);

	/* Update every mutable field and read it back. */
	a.state = EX_JOB_DONE;
	a.attempts = 2;
	a.transient = 3;
	a.pages = 7;
	a.settled = true;
	a.finished_at = 150.5;
	snprintf(a.result, sizeof a.result, "%s.json", a.id);
	snprintf(a.dest, sizeof a.dest, "scan 1.pdf");
	CHECK_INT(ex_journal_update(j, &a, &err), 0);
	CHECK_INT(ex_journal_get(j, a.id, &got, &err), 1);
	CHECK_INT(got.state, EX_JOB_DONE);
	CHECK_INT(got.attempts, 2);
	CHECK_INT(got.transient, 3);
	CHECK_INT(got.pages, 7);
	CHECK(got.settled);
	CHECK_NEAR(got.finished_at, 150.5, 1e-9);
	CHECK_STR(got.dest, "scan 1.pdf");
	struct ex_job ghost = make_job("ghost", "x", "y", "z", EX_JOB_DONE, 1);
	CHECK_INT(ex_journal_update(j, &ghost, &err), -ENOENT);

	/* Duplicates are per inbox: "aa" in medical (failed) is not finance's. */
	CHECK_INT(ex_journal_find_sha(j, "finance", "aa", &got, &err), 1);
	CHECK_STR(got.id, a.id);
	CHECK_INT(ex_journal_find_sha(j, "medical", "aa", &got, &err),
		  0); /* failed: not an original */
	CHECK_INT(ex_journal_find_sha(j, "finance", "cc", &got, &err), 0);

	/* The same inbox file is recognised only with every identity field equal. */
	struct ex_job probe = make_job("new", "finance", "scan 2.pdf", "bb", EX_JOB_QUEUED, 0);
	CHECK_INT(ex_journal_find_claim(j, &probe, &got, &err), 1);
	CHECK_STR(got.id, b.id);
	probe.src_ino = 78;
	CHECK_INT(ex_journal_find_claim(j, &probe, &got, &err), 0);

	/* Filters. */
	struct ex_job *list = NULL;
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_QUEUED | 1u << EX_JOB_FAILED;
	CHECK_INT(ex_journal_list(j, &f, &list, &err), 2);
	if (list) {
		CHECK_STR(list[0].id, b.id); /* oldest claimed first */
		CHECK_STR(list[1].id, c.id);
	}
	free(list);
	f = EX_JOB_FILTER_ANY;
	f.inbox = "finance";
	f.newest_first = true;
	f.limit = 1;
	CHECK_INT(ex_journal_list(j, &f, &list, &err), 1);
	if (list)
		CHECK_STR(list[0].id, b.id);
	free(list);
	f = EX_JOB_FILTER_ANY;
	f.since = 150;
	CHECK_INT(ex_journal_count(j, &f, &err), 2);
	f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_QUEUED;
	f.ready_by = 199;
	CHECK_INT(ex_journal_count(j, &f, &err), 0); /* b may run from 200 on */
	f.ready_by = 200;
	CHECK_INT(ex_journal_count(j, &f, &err), 1);

	/* The earliest retry, over every queued job or only over those that never failed. */
	double next = 0;
	CHECK_INT(ex_journal_next_try(j, false, &next, &err), 1);
	CHECK_NEAR(next, 200, 1e-9); /* b, the only queued job */
	struct ex_job e =
		make_job("0000000005-eeeeeeeeeeee", "medical", "e.pdf", "ee", EX_JOB_QUEUED, 120);
	e.attempts = 1;
	e.next_try = 150;
	CHECK_INT(ex_journal_insert(j, &e, &err), 0);
	CHECK_INT(ex_journal_next_try(j, false, &next, &err), 1);
	CHECK_NEAR(next, 150, 1e-9); /* e backs off until 150 */
	CHECK_INT(ex_journal_next_try(j, true, &next, &err), 1);
	CHECK_NEAR(next, 200, 1e-9); /* e has failed once: not fresh */
	e.state = EX_JOB_DONE;
	CHECK_INT(ex_journal_update(j, &e, &err), 0);
	b.state = EX_JOB_RUNNING;
	CHECK_INT(ex_journal_update(j, &b, &err), 0);
	CHECK_INT(ex_journal_next_try(j, false, &next, &err), 0); /* nothing queued */
	b.state = EX_JOB_QUEUED;
	CHECK_INT(ex_journal_update(j, &b, &err), 0);

	/* A rolled-back transaction leaves nothing; a committed one is seen by another reader. */
	struct ex_job d =
		make_job("0000000004-dddddddddddd", "finance", "d.pdf", "dd", EX_JOB_QUEUED, 400);
	CHECK_INT(ex_journal_begin(j, &err), 0);
	CHECK_INT(ex_journal_insert(j, &d, &err), 0);
	ex_journal_rollback(j);
	CHECK_INT(ex_journal_get(j, d.id, &got, &err), 0);
	CHECK_INT(ex_journal_begin(j, &err), 0);
	CHECK_INT(ex_journal_insert(j, &d, &err), 0);
	CHECK_INT(ex_journal_commit(j, &err), 0);
	struct ex_journal *r = NULL;
	CHECK_INT(ex_journal_open(path, true, &r, &err), 0);
	if (r) {
		CHECK_INT(ex_journal_get(r, d.id, &got, &err), 1);
		CHECK(ex_journal_insert(r, &ghost, &err) < 0); /* read-only */
		CHECK_CONTAINS(err.msg, "journal:");
	}
	ex_journal_close(r);
	ex_journal_close(j);

	/* WAL mode and synchronous=FULL as set by open (journal_mode persists in the file). */
	sqlite3 *db;
	sqlite3_stmt *st;
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);

	CHECK_STR(ex_job_state_name(EX_JOB_DUPLICATE), "duplicate");
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return CHECK_DONE();
}
