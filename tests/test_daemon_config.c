/* daemon/config.c: a full file read back with its values (sizes, durations, relative paths
 * resolved against the file's directory), the demo defaults, and a broken file that must report
 * each of its problems once, with its line and key. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "daemon/config.h"

static char dir[] = "/tmp/test_daemon_config.XXXXXX";
static char problems[16][640];
static int n_problems;

static void collect(void *user, const char *msg)
{
	(void)user;
	if (n_problems < 16)
		snprintf(problems[n_problems], sizeof problems[0], "%s", msg);
	n_problems++;
}

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	return path;
}

/* True when some reported problem contains both strings. */
static bool reported(const char *a, const char *b)
{
	for (int i = 0; i < n_problems && i < 16; i++)
		if (strstr(problems[i], a) && strstr(problems[i], b))
			return true;
	return false;
}

static void test_full(void)
{
	const char *path =
		write_file("full.yaml", "inboxes:\n"
					"  - path: in/invoices\n"
					"    schema: invoice\n"
					"  - path: /srv/scans\n"
					"    name: lab\n"
					"    watch: poll\n"
					"    stability: 30s\n"
					"outbox: out\n"
					"archive: /var/archive\n"
					"failed: failed\n"
					"state: ./state/\n"
					"device: cpu\n"
					"precision: f32\n"
					"schemas: my-schemas\n"
					"max_tokens: 600\n"
					"context: 4096\n"
					"workers: 4\n"
					"stability: 500ms\n"
					"poll_interval: 2m\n"
					"rescan_interval: 1h\n"
					"originals: delete\n"
					"duplicates: reuse\n"
					"spool_min_free: 1G\n"
					"retry: {attempts: 5, backoff: 2s, max_backoff: 1m}\n"
					"limits:\n"
					"  max_file_bytes: 10M\n"
					"  max_pages: 20\n"
					"  pdf_max_dpi: 150\n"
					"  parse_timeout: 90s\n"
					"  parse_memory: 1G\n");
	struct config *cfg = NULL;
	vlm_err err = { 0 };
	n_problems = 0;
	CHECK_INT(config_load(path, &cfg, collect, NULL, &err), 0);
	CHECK_INT(n_problems, 0);
	if (!cfg)
		return;
	char want[300];
	CHECK_INT(cfg->n_inboxes, 2);
	snprintf(want, sizeof want, "%s/in/invoices", dir);
	CHECK_STR(cfg->inboxes[0].path, want);
	CHECK_STR(cfg->inboxes[0].name, "invoices"); /* the directory's name by default */
	CHECK_STR(cfg->inboxes[0].schema, "invoice");
	CHECK_INT(cfg->inboxes[0].watch, CONFIG_WATCH_AUTO);
	CHECK_NEAR(cfg->inboxes[0].stability_s, 0.5, 1e-9); /* the top-level default */
	CHECK_STR(cfg->inboxes[1].path, "/srv/scans");
	CHECK_STR(cfg->inboxes[1].name, "lab");
	CHECK(cfg->inboxes[1].schema == NULL);
	CHECK_INT(cfg->inboxes[1].watch, CONFIG_WATCH_POLL);
	CHECK_NEAR(cfg->inboxes[1].stability_s, 30, 1e-9);
	snprintf(want, sizeof want, "%s/state", dir); /* "./" and the trailing slash tidied */
	CHECK_STR(cfg->state, want);
	CHECK_STR(cfg->archive, "/var/archive");
	CHECK_STR(cfg->device, "cpu");
	CHECK(!cfg->bf16);
	snprintf(want, sizeof want, "%s/my-schemas", dir);
	CHECK_STR(cfg->schemas, want);
	CHECK_INT(cfg->max_tokens, 600);
	CHECK_INT(cfg->context, 4096);
	CHECK_INT(cfg->workers, 4);
	CHECK_NEAR(cfg->poll_interval_s, 120, 1e-9);
	CHECK_NEAR(cfg->rescan_interval_s, 3600, 1e-9);
	CHECK_INT(cfg->originals, CONFIG_ORIGINALS_DELETE);
	CHECK_INT(cfg->duplicates, CONFIG_DUPLICATES_REUSE);
	CHECK_INT(cfg->spool_min_free, 1073741824);
	CHECK_INT(cfg->max_attempts, 5);
	CHECK_NEAR(cfg->backoff_initial_s, 2, 1e-9);
	CHECK_NEAR(cfg->backoff_max_s, 60, 1e-9);
	CHECK_INT(cfg->limits.max_file_bytes, 10 * 1048576);
	CHECK_INT(cfg->limits.max_pages, 20);
	CHECK_NEAR(cfg->limits.pdf_max_dpi, 150, 1e-9);
	CHECK_INT(cfg->limits.max_page_pixels, 60000000); /* untouched: ingest's default */
	CHECK_NEAR(cfg->parse_timeout_s, 90, 1e-9);
	CHECK_INT(cfg->parse_memory, 1073741824);
	config_free(cfg);
}

static void test_broken(void)
{
	const char *path = write_file("broken.yaml", "inboxes:\n"                 /* 1 */
						     "  - path: in/a\n"           /* 2 */
						     "    schema: 'bad schema'\n" /* 3 */
						     "  - name: nopath\n"         /* 4 */
						     "  - path: in/a/sub\n"       /* 5 */
						     "    watch: sometimes\n"     /* 6 */
						     "outbox: in/a/out\n"         /* 7 */
						     "workers: lots\n"            /* 8 */
						     "stability: 2 weeks\n"       /* 9 */
						     "colour: blue\n"             /* 10 */
						     "retry: {attempts: 0}\n"     /* 11 */
						     "limits:\n"                  /* 12 */
						     "  max_pages: [1, 2]\n"      /* 13 */
						     "  max_file_bytes: 12X\n"    /* 14 */
						     "context: 10\n"              /* 15 */
						     "precision: fp8\n");         /* 16 */
	struct config *cfg = (struct config *)1;
	vlm_err err = { 0 };
	n_problems = 0;
	CHECK_INT(config_load(path, &cfg, collect, NULL, &err), -EINVAL);
	CHECK(cfg == NULL);
	CHECK(reported("line 3", "key 'inboxes[1].schema'"));
	CHECK(reported("line 4", "inboxes[2]': has no 'path'"));
	CHECK(reported("line 6", "'sometimes' is not one of auto, inotify, poll"));
	CHECK(reported("line 8", "key 'workers': 'lots' is not a whole number"));
	CHECK(reported("line 9", "key 'stability': '2 weeks' is not a duration"));
	CHECK(reported("line 10", "key 'colour': unknown key"));
	CHECK(reported("line 11", "key 'retry.attempts': '0' is out of range"));
	CHECK(reported("line 13", "key 'limits.max_pages': expected a single value, not a list"));
	CHECK(reported("line 14", "key 'limits.max_file_bytes': '12X'"));
	CHECK(reported("line 15", "key 'context': '10' is out of range"));
	CHECK(reported("line 16", "'fp8' is not one of f32, bf16"));
	CHECK(reported("inboxes 1 and 3 overlap", "in/a/sub"));
	CHECK(reported("inbox 1", "overlaps outbox"));
	CHECK_INT(n_problems, 13);
	CHECK_CONTAINS(err.msg, "13 problems");
	if (n_problems != 13)
		for (int i = 0; i < n_problems && i < 16; i++)
			fprintf(stderr, "  reported: %s\n", problems[i]);
}

static void test_syntax_and_missing(void)
{
	struct config *cfg = NULL;
	vlm_err err = { 0 };
	n_problems = 0;
	const char *path = write_file("syntax.yaml", "inboxes:\n  - path: [unclosed\n");
	CHECK_INT(config_load(path, &cfg, collect, NULL, &err), -EINVAL);
	CHECK_INT(n_problems, 1);
	CHECK_CONTAINS(err.msg, "YAML syntax error");
	n_problems = 0;
	path = write_file("empty.yaml", "outbox: out\n");
	CHECK_INT(config_load(path, &cfg, collect, NULL, &err), -EINVAL);
	CHECK(reported("key 'inboxes'", "is missing"));
	/* A value spanning lines ("x\n\ny" by YAML's folding) is quoted back on one line. */
	n_problems = 0;
	path = write_file("multiline.yaml", "inboxes:\n  - path: in\nworkers: \"x\n\n  y\"\n");
	CHECK_INT(config_load(path, &cfg, collect, NULL, &err), -EINVAL);
	CHECK(reported("key 'workers'", "'x y' is not a whole number"));
	char missing[300];
	snprintf(missing, sizeof missing, "%s/nonexistent.yaml", dir);
	CHECK_INT(config_load(missing, &cfg, collect, NULL, &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "cannot open");
}

static void test_demo_defaults(void)
{
	char cwd[4096], want[4200];
	if (!getcwd(cwd, sizeof cwd) || chdir(dir) < 0)
		return;
	struct config *cfg = NULL;
	vlm_err err = { 0 };
	/* No file given: /etc/intake/intake.yaml when it exists, else the demo defaults. */
	if (access(CONFIG_DEFAULT_PATH, F_OK) == 0) {
		if (chdir(cwd) < 0)
			exit(1);
		return;
	}
	CHECK_INT(config_load(NULL, &cfg, collect, NULL, &err), 0);
	if (cfg) {
		snprintf(want, sizeof want, "%s/intake-demo/inbox", dir);
		CHECK_STR(cfg->inboxes[0].path, want);
		snprintf(want, sizeof want, "%s/intake-demo/outbox", dir);
		CHECK_STR(cfg->outbox, want);
		CHECK_INT(cfg->workers, 2);
		CHECK_NEAR(cfg->rescan_interval_s, 300, 1e-9);
		CHECK_INT(cfg->max_attempts, 3);
		CHECK(cfg->schemas == NULL); /* the extractor's default directory */
		CHECK_INT(cfg->max_tokens, 0);
		CHECK_INT(cfg->context, 0);
		CHECK(!cfg->bf16);
	}
	config_free(cfg);
	if (chdir(cwd) < 0)
		exit(1);
}

/* precision: bf16 loads where the engine can run it and is refused, naming the reason, where it
 * cannot (this CPU or build lacks AVX512_BF16) instead of failing at every document later. */
static void test_precision(void)
{
	const char *path = write_file("bf16.yaml", "inboxes:\n"
						   "  - path: in/x\n"
						   "precision: bf16\n");
	struct config *cfg = NULL;
	vlm_err err = { 0 };
	n_problems = 0;
	if (vlm_bf16_supported()) {
		CHECK_INT(config_load(path, &cfg, collect, NULL, &err), 0);
		CHECK(cfg && cfg->bf16);
	} else {
		CHECK_INT(config_load(path, &cfg, collect, NULL, &err), -EINVAL);
		CHECK(reported("line 3", "'bf16' needs AVX512_BF16"));
	}
	config_free(cfg);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_full();
	test_broken();
	test_syntax_and_missing();
	test_demo_defaults();
	test_precision();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return CHECK_DONE();
}
