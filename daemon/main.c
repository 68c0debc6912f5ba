/* intaked: the watched-folder daemon. run() is the table of contents: set up, recover, watch,
 * READY=1, the loop, STOPPING=1. The loop is single-threaded; beside it run the parser children
 * and the model worker thread (model.c), and every event (inotify, signals through a signalfd,
 * finished extractions through an eventfd, timers) arrives through one poll(). Modules:
 * config.c, watch.c, spool.c, jobs.c, sandbox.c, model.c, notify.c, log.c. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crash.h"
#include "jobs.h"
#include "log.h"
#include "model.h"
#include "notify.h"
#include "sandbox.h"
#include "spool.h"
#include "watch.h"

#define STOP_GRACE_S 20.0 /* in-flight parsing a stop waits for (TimeoutStopSec is larger) */
#define STATUS_EVERY_S 1.0
#define REPROCESS_EVERY_S 2.0

static const char usage_text[] =
	"usage: intaked [--config FILE] [--once]\n"
	"\n"
	"Watches the configured inboxes and turns every document dropped there into exactly one\n"
	"result in the outbox (or one quarantine record, or one duplicate notice).\n"
	"\n"
	"  --config FILE  configuration (default " CONFIG_DEFAULT_PATH ", or demo defaults under\n"
	"                 ./intake-demo when that file does not exist)\n"
	"  --once         process every file present, then exit (for cron)\n"
	"  --check        check the configuration and exit\n"
	"  --version      print the version\n";

struct options {
	const char *config;
	bool once, check;
};

struct daemon {
	struct options opt;
	struct config *cfg;
	struct jobs *jobs;
	struct watch *watch;
	int sigfd;
	bool stopping, fatal;
	double stop_deadline, next_status, next_watchdog, watchdog_every, next_reprocess;
};

static double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void report_problem(void *user, const char *msg)
{
	(void)user;
	log_msg(LOG_ERR, "%s", msg);
}

#ifdef INTAKE_TEST_HOOKS
static const char test_hooks[] =
	" (test hooks: INTAKE_TEST_PARSER, INTAKE_TEST_MODEL, INTAKE_CRASH_AT)";
#else
static const char test_hooks[] = "";
#endif

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "check", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
#ifdef INTAKE_TEST_HOOKS
		{ "list-crash-points", no_argument, NULL, 'L' },
#endif
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:ohV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opt->config = optarg;
			break;
		case 'o':
			opt->once = true;
			break;
		case 'k':
			opt->check = true;
			break;
		case 'V':
			printf("intaked %s%s\n", vlm_version(), test_hooks);
			return 0;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
#ifdef INTAKE_TEST_HOOKS
		case 'L':
			crash_points_list(stdout);
			return 0;
#endif
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	return -1;
}

/* Process-wide hygiene: private files, no core dumps (they would hold document pixels). */
static void harden_process(void)
{
	umask(0077);
	struct rlimit none = { 0, 0 };
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0);
}

static int setup_signals(struct daemon *d)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	return d->sigfd < 0 ? -errno : 0;
}

/* Creates the directories the configuration names (inboxes too, so a demo starts empty-handed). */
static int make_dirs(const struct config *cfg, vlm_err *err)
{
	const struct {
		const char *path;
		mode_t mode;
	} dirs[] = { { cfg->outbox, 0750 },
		     { cfg->archive, 0700 },
		     { cfg->failed, 0700 },
		     { cfg->state, 0700 } };
	int fd, rc;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		if (dirs[i].path == cfg->archive && cfg->originals == CONFIG_ORIGINALS_DELETE)
			continue;
		if ((rc = spool_open_dir(dirs[i].path, NULL, dirs[i].mode, &fd, err)) < 0)
			return rc;
		close(fd);
	}
	for (size_t i = 0; i < cfg->n_inboxes; i++) {
		if ((rc = spool_open_dir(cfg->inboxes[i].path, NULL, 0770, &fd, err)) < 0)
			return rc;
		close(fd);
	}
	return 0;
}

static int load_config(const char *path, struct config **out)
{
	vlm_err err = { 0 };
	int rc = config_load(path, out, report_problem, NULL, &err);
	if (rc < 0)
		log_msg(LOG_ERR, "%s", err.msg);
	return rc;
}

/* SIGHUP: a new configuration replaces the old one only if it is valid and its inboxes can be
 * opened; jobs in flight keep running either way. */
static void reload(struct daemon *d)
{
	notify_reloading();
	log_msg(LOG_NOTICE, "reloading the configuration");
	struct config *cfg = NULL;
	struct watch *w = NULL;
	vlm_err err = { 0 };
	if (load_config(d->opt.config, &cfg) < 0 || make_dirs(cfg, &err) < 0 ||
	    watch_new(cfg, now_mono(), &w, &err) < 0 || jobs_set_config(d->jobs, cfg, &err) < 0) {
		if (err.msg[0])
			log_msg(LOG_ERR, "%s", err.msg);
		log_msg(LOG_ERR, "reload failed; keeping the running configuration");
		watch_free(w);
		config_free(cfg);
		notify_ready();
		return;
	}
	if (strcmp(cfg->state, d->cfg->state) != 0)
		log_msg(LOG_WARNING, "config: 'state' changed; the new state directory is used "
				     "after a restart");
	watch_free(d->watch);
	d->watch = w;
	config_free(d->cfg);
	d->cfg = cfg;
	log_msg(LOG_NOTICE, "configuration reloaded from %s: %zu inbox%s", cfg->source,
		cfg->n_inboxes, cfg->n_inboxes == 1 ? "" : "es");
	notify_ready();
}

static void begin_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->stop_deadline = now_mono() + STOP_GRACE_S;
	notify_stopping();
	log_msg(LOG_NOTICE, "%s: taking no new files; finishing %zu running job%s", why,
		jobs_running(d->jobs), jobs_running(d->jobs) == 1 ? "" : "s");
}

static void handle_signals(struct daemon *d)
{
	struct signalfd_siginfo si;
	while (read(d->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (d->stopping) {
				log_msg(LOG_NOTICE, "second stop signal: requeueing running jobs");
				jobs_abandon(d->jobs, now_real());
			}
			begin_stop(d, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		case SIGHUP:
			if (!d->stopping)
				reload(d);
			break;
		default: /* SIGCHLD: reaped below */
			break;
		}
	}
}

/* Claims ready files while the spool has room. */
static int claim_ready(struct daemon *d, double now)
{
	size_t inbox;
	const char *name;
	while (!d->stopping && jobs_can_claim(d->jobs) &&
	       watch_next_ready(d->watch, &inbox, &name)) {
		int rc = jobs_claim(d->jobs, d->watch, inbox, name, now);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int poll_timeout_ms(struct daemon *d, double real, double mono)
{
	double t = watch_next_deadline(d->watch);
	double jt = jobs_next_deadline(d->jobs, real, mono);
	if (jt < t)
		t = jt;
	if (d->watchdog_every > 0 && d->next_watchdog < t)
		t = d->next_watchdog;
	if (d->next_status < t)
		t = d->next_status;
	if (d->next_reprocess < t)
		t = d->next_reprocess;
	if (d->stopping && d->stop_deadline < t)
		t = d->stop_deadline;
	double ms = (t - mono) * 1000;
	if (ms < 0)
		return 0;
	return ms > 60000 ? 60000 : (int)ms + 1;
}

/* One round of the loop: wait, then handle whatever is due. Returns <0 on a fatal error. */
static int loop_once(struct daemon *d)
{
	/* A negative descriptor (no inotify: every inbox polled) is skipped by poll(). */
	struct pollfd fds[3] = { { .fd = d->sigfd, .events = POLLIN },
				 { .fd = jobs_fd(d->jobs), .events = POLLIN },
				 { .fd = watch_fd(d->watch), .events = POLLIN } };
	int timeout = poll_timeout_ms(d, now_real(), now_mono());
	if (poll(fds, 3, timeout) < 0 && errno != EINTR)
		return -errno;
	double real = now_real(), mono = now_mono();
	handle_signals(d);
	int rc;
	if ((rc = jobs_reap(d->jobs, real)) < 0 || (rc = jobs_collect(d->jobs, real)) < 0)
		return rc;
	jobs_check_timeouts(d->jobs, mono);
	if (d->stopping && mono >= d->stop_deadline && (rc = jobs_abandon(d->jobs, real)) < 0)
		return rc;
	if (!d->stopping) {
		if (watch_fd(d->watch) >= 0)
			watch_read_events(d->watch, mono);
		watch_tick(d->watch, mono);
		if ((rc = claim_ready(d, real)) < 0 || (rc = jobs_retry_settle(d->jobs, real)) < 0)
			return rc;
		if (mono >= d->next_reprocess) {
			d->next_reprocess = mono + REPROCESS_EVERY_S;
			if ((rc = jobs_take_reprocess(d->jobs, real)) < 0)
				return rc;
		}
		if ((rc = jobs_start(d->jobs, real)) < 0)
			return rc;
	}
	if (mono >= d->next_status) {
		char status[200];
		jobs_status(d->jobs, status, sizeof status);
		notify_status(status);
		d->next_status = mono + STATUS_EVERY_S;
	}
	if (d->watchdog_every > 0 && mono >= d->next_watchdog) {
		notify_watchdog();
		d->next_watchdog = mono + d->watchdog_every;
	}
	return 0;
}

static bool finished(struct daemon *d)
{
	if (d->stopping)
		return jobs_running(d->jobs) == 0;
	return d->opt.once && watch_pending(d->watch) == 0 && jobs_idle(d->jobs, now_real()) &&
	       !jobs_reprocess_pending(d->jobs);
}

static int run(struct daemon *d)
{
	vlm_err err = { 0 };
	int rc;
	harden_process();
	log_init();
	if ((rc = load_config(d->opt.config, &d->cfg)) < 0)
		return rc;
	if (d->opt.check) {
		/* The inboxes' schemas are part of the configuration: they must load too. */
		struct model *m = NULL;
		if ((rc = model_new(d->cfg, &m, &err)) < 0) {
			log_msg(LOG_ERR, "%s", err.msg);
			return rc;
		}
		model_free(m);
		printf("intaked: configuration %s is valid (%zu inbox%s)\n", d->cfg->source,
		       d->cfg->n_inboxes, d->cfg->n_inboxes == 1 ? "" : "es");
		return 0;
	}
	log_msg(LOG_INFO, "intaked %s starting with %s", vlm_version(), d->cfg->source);
	if ((rc = setup_signals(d)) < 0)
		return vlm_err_set(&err, rc, "intaked: signals: %s", strerror(-rc));
	if ((rc = make_dirs(d->cfg, &err)) < 0 || (rc = jobs_new(d->cfg, &d->jobs, &err)) < 0)
		goto fail;
	if ((rc = jobs_recover(d->jobs, now_real(), &err)) < 0)
		goto fail;
	int abi = sandbox_landlock_abi();
	log_msg(abi ? LOG_INFO : LOG_WARNING, "sandbox: seccomp on%s%s",
		abi ? ", Landlock ABI " : "",
		abi ? (abi >= 2 ? "2+" : "1") : "; Landlock unavailable in this kernel");
	if ((rc = watch_new(d->cfg, now_mono(), &d->watch, &err)) < 0)
		goto fail;
	d->watchdog_every = notify_watchdog_interval();
	notify_ready();
	log_msg(LOG_NOTICE, "ready: %zu inbox%s, %d worker%s%s", d->cfg->n_inboxes,
		d->cfg->n_inboxes == 1 ? "" : "es", d->cfg->workers,
		d->cfg->workers == 1 ? "" : "s", d->opt.once ? ", once" : "");
	while (!finished(d)) {
		if ((rc = loop_once(d)) < 0) {
			log_msg(LOG_CRIT,
				"stopping after a fatal error; recovery at the next start "
				"finishes the work");
			jobs_abandon(d->jobs, now_real());
			return rc;
		}
	}
	notify_stopping();
	char status[200];
	jobs_status(d->jobs, status, sizeof status);
	log_msg(LOG_NOTICE, "stopped: %s", status);
	return 0;
fail:
	log_msg(LOG_ERR, "%s", err.msg);
	return rc;
}

int main(int argc, char **argv)
{
	struct daemon d = { .sigfd = -1 };
	int status = parse_options(argc, argv, &d.opt);
	if (status >= 0)
		return status;
	int rc = run(&d);
	watch_free(d.watch);
	jobs_free(d.jobs);
	config_free(d.cfg);
	if (d.sigfd >= 0)
		close(d.sigfd);
	return rc < 0 ? 1 : 0;
}
