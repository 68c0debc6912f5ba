/* intaked's log: one line per event on stderr. Under systemd (JOURNAL_STREAM set) each line
 * starts with an sd-daemon priority prefix ("<3>") that journald turns into the priority; on a
 * terminal it starts with the time and the level instead. Lines carry job ids, inbox names and
 * escaped file names, never document content. */
#ifndef INTAKED_LOG_H
#define INTAKED_LOG_H

#include <stddef.h>
#include <syslog.h> /* LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG */

void log_init(void); /* reads JOURNAL_STREAM once */
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies `name` into `dst` so a log line cannot be forged or broken by it: control characters
 * and backslashes become \xNN, and the result is cut at `size` - 1 bytes. Returns dst. */
const char *log_escape(char *dst, size_t size, const char *name);

#endif
