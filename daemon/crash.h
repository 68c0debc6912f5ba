/* Named crash points (test builds only): crash_point("NAME") marks a spot just before or just
 * after a durable step (fsync, rename, unlink, journal commit) on a document's path. With
 * INTAKE_CRASH_AT=NAME:N the daemon kills itself with SIGKILL the Nth time NAME is reached, so
 * tests/daemon_test.sh crashpoints can check that recovery holds at every one of them. With
 * INTAKE_STALL_AT=NAME:N:SECONDS it sleeps there instead, so a test can change the inbox at that
 * exact moment (daemon_test.sh replace); with INTAKE_CRASH_TRACE=FILE it appends the name of
 * every point it reaches to FILE.
 * Release builds compile every point to nothing. */
#pragma once

#include <stdio.h>

#ifdef INTAKE_TEST_HOOKS
/* Every name crash_point() accepts; a name missing here aborts the daemon when reached. */
extern const char *const crash_point_names[];
void crash_point(const char *name);
/* Writes crash_point_names, one a line (intaked --list-crash-points). */
void crash_points_list(FILE *f);
#else
static inline void crash_point(const char *name)
{
	(void)name;
}
#endif
