/* The systemd notification protocol (sd_notify): READY=1 after recovery, STATUS= lines,
 * WATCHDOG=1 pings from the main loop, RELOADING=1 and STOPPING=1. Every call is a no-op when
 * the daemon does not run under systemd (no NOTIFY_SOCKET). */
#ifndef INTAKED_NOTIFY_H
#define INTAKED_NOTIFY_H

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* Sends STATUS=<text> when it differs from the last status sent. */
void notify_status(const char *text);
/* Seconds between watchdog pings (half of WatchdogSec), or 0 when the watchdog is off. */
double notify_watchdog_interval(void);
void notify_watchdog(void);

#endif
