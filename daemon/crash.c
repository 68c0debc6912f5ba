/* Named crash points (see crash.h): the list of names, the counters that kill the daemon at the
 * point and occurrence INTAKE_CRASH_AT names or hold it there for the seconds INTAKE_STALL_AT
 * names, and the trace INTAKE_CRASH_TRACE asks for (which points a run reaches, so a test can
 * crash a restart at each of them). Compiled to nothing without test hooks. */
#include "crash.h"

#ifdef INTAKE_TEST_HOOKS

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AROUND(step) step ".before", step ".after"

/* One pair per durable step, in the order a document meets them. */
const char *const crash_point_names[] = {
	AROUND("claim.fsync"),     /* the spool copy */
	AROUND("claim.rename"),    /* spool/claim -> spool/active */
	AROUND("claim.fsync-dir"), /* spool/active */
	AROUND("journal.insert"),  /* the claim's commit */
	AROUND("inbox.hide"),      /* the original takes its private name */
	AROUND("inbox.unlink"),    /* ...and leaves the inbox */
	AROUND("inbox.fsync-dir"),
	AROUND("spool.discard-unlink"), /* a claim seen twice; originals: delete */
	AROUND("spool.discard-fsync-dir"),
	AROUND("journal.update"), /* every later state change */
	AROUND("publish.fsync"),  /* result, duplicate notice or error record */
	AROUND("publish.rename"),
	AROUND("publish.fsync-dir"),
	AROUND("settle.rename"), /* the original to archive/ or failed/ */
	AROUND("settle.fsync-dir-dest"),
	AROUND("settle.fsync-dir-src"),
	AROUND("settle-copy.fsync"), /* archive/ or failed/ on another file system */
	AROUND("settle-copy.rename"),
	AROUND("settle-copy.fsync-dir-dest"),
	AROUND("settle-copy.unlink"),
	AROUND("settle-copy.fsync-dir-src"),
	AROUND("journal.reprocess"),       /* a reprocess request: the new job takes over */
	AROUND("reprocess.unlink"),        /* the archived or failed copy it replaces */
	AROUND("reprocess.unlink-record"), /* a failed job's error record */
	AROUND("reprocess.fsync-dir"),
	NULL,
};

struct target {
	bool parsed;
	char name[64];
	long at, seen;
	long stall_s; /* INTAKE_STALL_AT only */
};
static struct target crash_at, stall_at;
static int trace_fd = -1; /* INTAKE_CRASH_TRACE: every point reached, one a line */

/* Opens INTAKE_CRASH_TRACE=FILE, if set, once; a file that cannot be opened is a test bug. */
static void open_trace(void)
{
	const char *trace = getenv("INTAKE_CRASH_TRACE");
	if (!trace || !*trace)
		return;
	trace_fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (trace_fd < 0) {
		perror("crash: INTAKE_CRASH_TRACE");
		abort();
	}
}

/* Reads `var` once: NAME:N (INTAKE_CRASH_AT) or NAME:N:SECONDS (INTAKE_STALL_AT). Anything
 * malformed is a test bug, so it aborts. */
static void parse_target(struct target *t, const char *var, bool with_seconds)
{
	t->parsed = true;
	const char *v = getenv(var);
	if (!v || !*v)
		return;
	const char *colon = strchr(v, ':');
	char *end = NULL;
	long n = colon ? strtol(colon + 1, &end, 10) : 0, s = 0;
	if (with_seconds && end && *end == ':' && end[1])
		s = strtol(end + 1, &end, 10);
	if (!colon || (size_t)(colon - v) >= sizeof t->name || end == colon + 1 || *end || n < 1 ||
	    (with_seconds && (s < 1 || s > 3600))) {
		fprintf(stderr, "crash: %s '%s': expected NAME:N%s, N >= 1\n", var, v,
			with_seconds ? ":SECONDS (1-3600)" : "");
		abort();
	}
	memcpy(t->name, v, (size_t)(colon - v));
	t->at = n;
	t->stall_s = s;
}

/* True the Nth time `name` is reached, N as `t` says. */
static bool hit(struct target *t, const char *name)
{
	return t->at != 0 && strcmp(t->name, name) == 0 && ++t->seen == t->at;
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
	if (!crash_at.parsed) {
		parse_target(&crash_at, "INTAKE_CRASH_AT", false);
		parse_target(&stall_at, "INTAKE_STALL_AT", true);
		open_trace();
	}
	if (trace_fd >= 0) {
		/* One write per line, so the trace shows the order points were reached in. */
		char line[80];
		int n = snprintf(line, sizeof line, "%s\n", name);
		if (n >= (int)sizeof line || write(trace_fd, line, (size_t)n) != n)
			abort();
	}
	if (hit(&stall_at, name)) {
		/* The daemon is single-threaded here: a test changes the files meanwhile. */
		fprintf(stderr, "crash: point '%s' reached %ld times: stalling %lds\n", name,
			stall_at.seen, stall_at.stall_s);
		struct timespec left = { .tv_sec = stall_at.stall_s };
		while (nanosleep(&left, &left) < 0 && errno == EINTR)
			continue; /* a signal's flag is seen once the stall is over */
		fprintf(stderr, "crash: point '%s': going on\n", name);
	}
	if (hit(&crash_at, name)) {
		fprintf(stderr, "crash: point '%s' reached %ld times: SIGKILL\n", name,
			crash_at.seen);
		raise(SIGKILL);
	}
}

void crash_points_list(FILE *f)
{
	for (size_t i = 0; crash_point_names[i]; i++)
		fprintf(f, "%s\n", crash_point_names[i]);
}

#endif
