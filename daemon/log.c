/* Logging to stderr for journald or a terminal (see log.h). A line is formatted whole and
 * written with one write(), so lines from the daemon and its parser children never interleave. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "vlm.h"

static bool to_journal;

void log_init(void)
{
	to_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_msg(int priority, const char *fmt, ...)
{
	static const char *const levels[] = { "emerg",   "alert",  "crit", "error",
					      "warning", "notice", "info", "debug" };
	char line[1024];
	int n;
	if (to_journal) {
		n = snprintf(line, sizeof line, "<%d>", priority & 7);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld intaked %s: ", tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, levels[priority & 7]);
	}
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w; /* nowhere left to report a failed log write */
}

const char *log_escape(char *dst, size_t size, const char *name)
{
	return vlm_err_escape(dst, size, name);
}
