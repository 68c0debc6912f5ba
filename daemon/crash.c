/* Named crash points (see crash.h): the list of names, and the counter that kills the daemon at
 * the point and occurrence INTAKE_CRASH_AT names, and the trace INTAKE_CRASH_TRACE asks for
 * (which points a run reaches, so a test can crash a restart at each of them). Compiled to
 * nothing without test hooks. */
#include "crash.h"

#ifdef INTAKE_TEST_HOOKS

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AROUND(step) step ".before", step ".after"

/* One pair per durable step, in the order a document meets them. */
const char *const crash_point_names[] = {
	AROUND("claim.fsync"),		/* the spool copy */
	AROUND("claim.rename"),		/* spool/claim -> spool/active */
	AROUND("claim.fsync-dir"),	/* spool/active */
	AROUND("journal.insert"),	/* the claim's commit */
	AROUND("inbox.unlink"),		/* the original leaves the inbox */
	AROUND("inbox.fsync-dir"),
	AROUND("spool.discard-unlink"), /* a claim seen twice; originals: delete */
	AROUND("spool.discard-fsync-dir"),
	AROUND("journal.update"),	/* every later state change */
	AROUND("publish.fsync"),	/* result, duplicate notice or error record */
	AROUND("publish.rename"),
	AROUND("publish.fsync-dir"),
	AROUND("settle.rename"),	/* the original to archive/ or failed/ */
	AROUND("settle.fsync-dir-dest"),
	AROUND("settle.fsync-dir-src"),
	AROUND("settle-copy.fsync"),	/* archive/ or failed/ on another file system */
	AROUND("settle-copy.rename"),
	AROUND("settle-copy.fsync-dir-dest"),
	AROUND("settle-copy.unlink"),
	AROUND("settle-copy.fsync-dir-src"),
	AROUND("journal.reprocess"),	/* a reprocess request: the new job takes over */
	AROUND("reprocess.unlink"),	/* the archived or failed copy it replaces */
	AROUND("reprocess.unlink-record"), /* a failed job's error record */
	AROUND("reprocess.fsync-dir"),
	NULL,
};

static struct {
	bool parsed;
	char name[64];
	long at, seen;
	int trace_fd; /* INTAKE_CRASH_TRACE: every point reached, one a line; -1 when unset */
} target;

/* Reads INTAKE_CRASH_AT=NAME:N and INTAKE_CRASH_TRACE=FILE once; anything malformed is a test
 * bug, so it aborts. */
static void parse_target(void)
{
	target.parsed = true;
	const char *trace = getenv("INTAKE_CRASH_TRACE");
	target.trace_fd = -1;
	if (trace && *trace) {
		target.trace_fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (target.trace_fd < 0) {
			perror("crash: INTAKE_CRASH_TRACE");
			abort();
		}
	}
	const char *v = getenv("INTAKE_CRASH_AT");
	if (!v || !*v)
		return;
	const char *colon = strrchr(v, ':');
	char *end = NULL;
	long n = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || (size_t)(colon - v) >= sizeof target.name || end == colon + 1 || *end ||
	    n < 1) {
		fprintf(stderr, "crash: INTAKE_CRASH_AT '%s': expected NAME:N, N >= 1\n", v);
		abort();
	}
	memcpy(target.name, v, (size_t)(colon - v));
	target.at = n;
}

void crash_point(const char *name)
{
	bool known = false;
	for (size_t i = 0; crash_point_names[i] && !known; i++)
		known = strcmp(crash_point_names[i], name) == 0;
	if (!known) {
		/* A point the list misses would never be tested: fail loudly instead. */
		fprintf(stderr, "crash: point '%s' is not in crash_point_names\n", name);
		abort();
	}
	if (!target.parsed)
		parse_target();
	if (target.trace_fd >= 0) {
		/* One write per line, so the trace shows the order points were reached in. */
		char line[80];
		int n = snprintf(line, sizeof line, "%s\n", name);
		if (n >= (int)sizeof line || write(target.trace_fd, line, (size_t)n) != n)
			abort();
	}
	if (target.at == 0 || strcmp(target.name, name) != 0 || ++target.seen < target.at)
		return;
	fprintf(stderr, "crash: point '%s' reached %ld times: SIGKILL\n", name, target.seen);
	raise(SIGKILL);
}

void crash_points_list(FILE *f)
{
	for (size_t i = 0; crash_point_names[i]; i++)
		fprintf(f, "%s\n", crash_point_names[i]);
}

#endif
