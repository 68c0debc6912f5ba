/* sd_notify through libsystemd (see notify.h). Keeps the last STATUS= sent so the main loop can
 * call notify_status every round without flooding the manager. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "notify.h"

static char last_status[256];

static double monotonic_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void notify_reloading(void)
{
	/* systemd 253+ matches RELOADING=1 to the reload by MONOTONIC_USEC; older ones ignore it. */
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)(monotonic_now() * 1e6));
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void notify_status(const char *text)
{
	if (strncmp(text, last_status, sizeof last_status) == 0)
		return;
	snprintf(last_status, sizeof last_status, "%s", text);
	sd_notifyf(0, "STATUS=%s", text);
}

double notify_watchdog_interval(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return (double)usec * 1e-6 / 2;
}

void notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
