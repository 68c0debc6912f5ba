/* intake: the command-line interface. main() looks the subcommand up in one table and calls it;
 * each cmd_* function parses its own options, does its work through libextract, prints the single
 * error line on failure, and returns the process exit status:
 *   0 success, 1 internal failure, 2 bad usage or a refused document. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ex.h"
#include "schema.h"

static const char pages_usage[] =
	"usage: intake pages FILE [--out DIR] [--text] [--json] [limits]\n"
	"\n"
	"Decodes FILE (PDF, TIFF, JPEG or PNG, decided by its magic bytes) the way intake feeds\n"
	"documents to the model, and prints one line per page: number, size, DPI, format.\n"
	"\n"
	"  --out DIR            write each page as DIR/page-NNN.png\n"
	"  --text               print the PDF text layer of each page\n"
	"  --json               print a JSON object with a \"pages\" array instead of lines\n"
	"  --pixel-budget N     PDF pages are rendered to about N pixels (default 2000000)\n"
	"  --max-dpi N          PDF render resolution cap (default 300)\n"
	"  --max-pages N        refuse documents with more pages (default 500)\n"
	"  --max-page-pixels N  refuse pages with more pixels (default 60000000)\n"
	"  --max-file-bytes N   refuse larger files (default 268435456)\n"
	"\n"
	"Exit status: 0 success, 2 refused document (bad, unsupported or over a limit), 1 "
	"internal\n"
	"failure.\n";

bool cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_precision(const char *s, bool *bf16)
{
	if (!s || (strcmp(s, "f32") != 0 && strcmp(s, "bf16") != 0))
		return false;
	*bf16 = strcmp(s, "bf16") == 0;
	return true;
}

static const char *option_name(const struct option *opts, int val)
{
	for (; opts->name; opts++)
		if (opts->val == val)
			return opts->name;
	return "?";
}

static void print_page_line(const struct ex_doc *doc, const struct ex_page *p)
{
	printf("page %d: %dx%d", p->number, p->width, p->height);
	if (p->dpi_x > 0 && p->dpi_y > 0)
		printf(", %.4g x %.4g dpi", p->dpi_x, p->dpi_y);
	else
		printf(", dpi unknown");
	printf(", %s\n", ex_format_name(doc->format));
}

static int print_json(const struct ex_doc *doc, bool with_text)
{
	json_t *root = ex_doc_to_json(doc, with_text);
	int rc = root && json_dumpf(root, stdout, JSON_INDENT(2)) == 0 ? 0 : -ENOMEM;
	putchar('\n');
	json_decref(root);
	return rc;
}

/* mkdir -p: creates `dir` and any missing parents. */
static int make_dirs(const char *dir, vlm_err *err)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
		return vlm_err_set(err, -ENAMETOOLONG, "intake: directory '%s': path too long",
				   dir);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0777) < 0 && errno != EEXIST)
			return vlm_err_set(err, -errno, "intake: directory '%s': %s", path,
					   strerror(errno));
		*p = c;
		if (!c)
			return 0;
	}
}

static int write_pages(const struct ex_doc *doc, const char *dir, vlm_err *err)
{
	int rc = make_dirs(dir, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < doc->n_pages; i++) {
		char path[4096];
		int n = snprintf(path, sizeof path, "%s/page-%03d.png", dir, doc->pages[i].number);
		if (n < 0 || (size_t)n >= sizeof path)
			return vlm_err_set(err, -ENAMETOOLONG,
					   "intake: output directory '%s': "
					   "path too long",
					   dir);
		rc = ex_page_write_png(&doc->pages[i], path, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int cmd_pages(int argc, char **argv)
{
	enum { OPT_BUDGET = 256, OPT_DPI, OPT_PAGES, OPT_PAGE_PIXELS, OPT_FILE_BYTES };
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "text", no_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "pixel-budget", required_argument, NULL, OPT_BUDGET },
		{ "max-dpi", required_argument, NULL, OPT_DPI },
		{ "max-pages", required_argument, NULL, OPT_PAGES },
		{ "max-page-pixels", required_argument, NULL, OPT_PAGE_PIXELS },
		{ "max-file-bytes", required_argument, NULL, OPT_FILE_BYTES },
		{ 0 },
	};
	struct ex_limits limits;
	ex_limits_default(&limits);
	const char *out_dir = NULL;
	bool text = false, as_json = false;
	int c;
	while ((c = getopt_long(argc, argv, "o:tjh", opts, NULL)) != -1) {
		uint64_t v = 0;
		bool ok = true;
		switch (c) {
		case 'o':
			out_dir = optarg;
			break;
		case 't':
			text = true;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			fputs(pages_usage, stdout);
			return EXIT_OK;
		case OPT_BUDGET:
			ok = cli_parse_u64(optarg, 1ull << 40, &limits.pdf_pixel_budget);
			break;
		case OPT_DPI:
			ok = cli_parse_u64(optarg, 2400, &v);
			limits.pdf_max_dpi = (double)v;
			break;
		case OPT_PAGES:
			ok = cli_parse_u64(optarg, 1000000, &v);
			limits.max_pages = (uint32_t)v;
			break;
		case OPT_PAGE_PIXELS:
			ok = cli_parse_u64(optarg, 1ull << 40, &limits.max_page_pixels);
			break;
		case OPT_FILE_BYTES:
			ok = cli_parse_u64(optarg, 1ull << 44, &limits.max_file_bytes);
			break;
		default:
			fputs(pages_usage, stderr);
			return EXIT_REFUSED;
		}
		if (!ok) {
			fprintf(stderr, "intake pages: invalid value '%s' for --%s\n", optarg,
				option_name(opts, c));
			return EXIT_REFUSED;
		}
	}
	if (optind != argc - 1) {
		fputs(pages_usage, stderr);
		return EXIT_REFUSED;
	}

	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	int rc = ex_doc_load(argv[optind], &limits, &doc, &err);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return ex_reason_is_refusal(err.reason) ? EXIT_REFUSED : EXIT_INTERNAL;
	}
	if (as_json) {
		rc = print_json(doc, text);
	} else {
		for (size_t i = 0; i < doc->n_pages; i++) {
			print_page_line(doc, &doc->pages[i]);
			if (text && doc->pages[i].text)
				printf("%s\n", doc->pages[i].text);
		}
	}
	if (rc == 0 && out_dir)
		rc = write_pages(doc, out_dir, &err);
	else if (rc < 0)
		vlm_err_set(&err, rc, "intake: cannot print the result");
	ex_doc_free(doc);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

static const char schema_usage[] =
	"usage: intake schema check FILE...\n"
	"\n"
	"Loads each extraction schema (docs/schemas.md) and prints every problem found as\n"
	"FILE:LINE:COLUMN: reason.\n"
	"\n"
	"Exit status: 0 when every schema is valid, 2 otherwise.\n";

static int cmd_schema(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(schema_usage, stdout);
		return EXIT_OK;
	}
	if (argc < 3 || strcmp(argv[1], "check") != 0) {
		fputs(schema_usage, stderr);
		return EXIT_REFUSED;
	}
	int status = EXIT_OK;
	for (int k = 2; k < argc; k++) {
		struct ex_schema *schema = NULL;
		struct ex_schema_errors errors = { 0 };
		vlm_err err = { 0 };
		if (ex_schema_load_report(argv[k], &schema, &errors, &err) < 0) {
			status = EXIT_REFUSED;
			for (size_t i = 0; i < errors.n; i++)
				fprintf(stderr, "%s\n", errors.lines[i]);
			if (errors.n_dropped)
				fprintf(stderr, "%s: %zu more problems not shown\n", argv[k],
					errors.n_dropped);
			if (errors.n == 0)
				fprintf(stderr, "%s\n", err.msg);
		} else {
			printf("%s: ok (schema '%s' version %s, %zu fields, %zu rules)\n", argv[k],
			       schema->name, schema->version, schema->n_fields, schema->n_rules);
		}
		ex_schema_errors_done(&errors);
		ex_schema_free(schema);
	}
	return status;
}

/* ---- intake status / intake reprocess: read and flag intaked's job journal ------------------ */

static const char status_usage[] =
	"usage: intake status [--state DIR] [--errors N]\n"
	"\n"
	"Prints, per inbox, the jobs of intaked's journal: queued, in progress, done, failed,\n"
	"duplicates; the throughput of the last hour; and the most recent errors.\n"
	"\n"
	"  --state DIR   intaked's state directory (default /var/lib/intake, or\n"
	"                ./intake-demo/state when only that one has a journal)\n"
	"  --errors N    how many recent errors to show (default 5)\n";

static const char reprocess_usage[] =
	"usage: intake reprocess [--state DIR] [--failed] [--schema NAME] [--since DATE]\n"
	"                        [--no-wait] [FILE...]\n"
	"\n"
	"Asks intaked to process archived or failed documents again (for example after a fix or a\n"
	"new model): each matching job's original goes back into the queue as a new job. FILE\n"
	"names a document by its original file name. At least one selection is required.\n"
	"\n"
	"  --failed       only documents that failed\n"
	"  --schema NAME  only documents of inboxes with this schema\n"
	"  --since DATE   only documents claimed since DATE (YYYY-MM-DD[THH:MM[:SS]], local time)\n"
	"  --no-wait      return once the request is recorded (default: wait, with a progress bar\n"
	"                 on a terminal, until intaked has finished them)\n";

/* The journal's path: --state's, else the service's, else the demo's. */
static void journal_path(const char *state, char *buf, size_t size)
{
	if (state) {
		snprintf(buf, size, "%s/journal.db", state);
		return;
	}
	snprintf(buf, size, "/var/lib/intake/journal.db");
	if (access(buf, F_OK) != 0 && access("intake-demo/state/journal.db", F_OK) == 0)
		snprintf(buf, size, "intake-demo/state/journal.db");
}

static void print_time(double t)
{
	char buf[64];
	time_t s = (time_t)t;
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
	fputs(buf, stdout);
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "errors", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state = NULL;
	uint64_t n_errors = 5;
	int c;
	while ((c = getopt_long(argc, argv, "s:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'e':
			if (!cli_parse_u64(optarg, 1000, &n_errors)) {
				fprintf(stderr, "intake status: invalid value '%s' for --errors\n",
					optarg);
				return EXIT_REFUSED;
			}
			break;
		case 'h':
			fputs(status_usage, stdout);
			return EXIT_OK;
		default:
			fputs(status_usage, stderr);
			return EXIT_REFUSED;
		}
	}
	if (optind != argc) {
		fputs(status_usage, stderr);
		return EXIT_REFUSED;
	}
	char path[4096];
	journal_path(state, path, sizeof path);
	vlm_err err = { 0 };
	struct ex_journal *j = NULL;
	struct ex_inbox_stats *stats = NULL;
	struct ex_job *failed = NULL;
	int rc = ex_journal_open(path, true, &j, &err);
	double now = (double)time(NULL);
	int n = rc < 0 ? rc : ex_journal_stats(j, now - 3600, &stats, &err);
	if (n < 0) {
		fprintf(stderr, "%s\n", err.msg);
		ex_journal_close(j);
		return EXIT_INTERNAL;
	}
	printf("journal %s\n\n%-16s %8s %8s %8s %8s %8s %10s %8s\n", path, "inbox", "queued",
	       "running", "done", "failed", "dupl.", "last hour", "mean s");
	for (int i = 0; i < n; i++) {
		const struct ex_inbox_stats *s = &stats[i];
		printf("%-16s %8lld %8lld %8lld %8lld %8lld %10lld %8.1f\n", s->inbox,
		       (long long)s->jobs[EX_JOB_QUEUED], (long long)s->jobs[EX_JOB_RUNNING],
		       (long long)s->jobs[EX_JOB_DONE], (long long)s->jobs[EX_JOB_FAILED],
		       (long long)s->jobs[EX_JOB_DUPLICATE], (long long)s->recent,
		       s->recent_seconds);
	}
	if (n == 0)
		printf("(no jobs yet)\n");
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_FAILED;
	f.newest_first = true;
	f.limit = n_errors;
	int nf = ex_journal_list(j, &f, &failed, &err);
	if (nf > 0)
		printf("\nlast errors:\n");
	for (int i = 0; i < nf; i++) {
		printf("  ");
		print_time(failed[i].finished_at);
		printf("  %s  %s  %s: %s\n", failed[i].inbox, failed[i].id, failed[i].reason,
		       failed[i].error);
	}
	free(failed);
	free(stats);
	ex_journal_close(j);
	if (nf < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

/* YYYY-MM-DD[THH:MM[:SS]] in local time. */
static bool parse_date(const char *s, double *out)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%d", &tm);
	if (end && *end == 'T') {
		const char *t = strptime(end + 1, "%H:%M:%S", &tm);
		end = t ? t : strptime(end + 1, "%H:%M", &tm);
	}
	if (!end || *end)
		return false;
	tm.tm_isdst = -1;
	time_t v = mktime(&tm);
	if (v == (time_t)-1)
		return false;
	*out = (double)v;
	return true;
}

/* Counts the flagged jobs whose new job has finished. */
static int reprocess_progress(struct ex_journal *j, const struct ex_job *jobs, int n, vlm_err *err)
{
	int finished = 0;
	for (int i = 0; i < n; i++) {
		struct ex_job *next = NULL;
		struct ex_job_filter f = EX_JOB_FILTER_ANY;
		f.reprocess_of = jobs[i].id;
		f.states = 1u << EX_JOB_DONE | 1u << EX_JOB_DUPLICATE | 1u << EX_JOB_FAILED;
		int got = ex_journal_list(j, &f, &next, err);
		free(next);
		if (got < 0)
			return got;
		finished += got > 0;
	}
	return finished;
}

static int cmd_reprocess(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "failed", no_argument, NULL, 'f' },
		{ "schema", required_argument, NULL, 'S' },
		{ "since", required_argument, NULL, 'd' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state = NULL;
	struct ex_job_filter f = EX_JOB_FILTER_ANY;
	f.states = 1u << EX_JOB_DONE | 1u << EX_JOB_DUPLICATE | 1u << EX_JOB_FAILED;
	f.settled = 1;
	f.reprocess = 0;
	bool wait = true, selected = false;
	int c;
	while ((c = getopt_long(argc, argv, "s:fS:d:nh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'f':
			f.states = 1u << EX_JOB_FAILED;
			selected = true;
			break;
		case 'S':
			f.schema = optarg;
			selected = true;
			break;
		case 'd':
			if (!parse_date(optarg, &f.since)) {
				fprintf(stderr,
					"intake reprocess: invalid date '%s' (use "
					"YYYY-MM-DD[THH:MM[:SS]])\n",
					optarg);
				return EXIT_REFUSED;
			}
			selected = true;
			break;
		case 'n':
			wait = false;
			break;
		case 'h':
			fputs(reprocess_usage, stdout);
			return EXIT_OK;
		default:
			fputs(reprocess_usage, stderr);
			return EXIT_REFUSED;
		}
	}
	if (!selected && optind == argc) {
		fputs("intake reprocess: say what to reprocess (--failed, --schema, --since or "
		      "FILE...)\n",
		      stderr);
		return EXIT_REFUSED;
	}
	char path[4096];
	journal_path(state, path, sizeof path);
	vlm_err err = { 0 };
	struct ex_journal *j = NULL;
	struct ex_job *jobs = NULL;
	int n = 0, rc = ex_journal_open(path, false, &j, &err);
	/* One list per FILE (or one for all), flagged in one transaction. */
	for (int a = optind; rc == 0 && a < (optind == argc ? argc + 1 : argc); a++) {
		struct ex_job *some = NULL;
		if (a < argc) {
			const char *slash = strrchr(argv[a], '/');
			f.name = slash ? slash + 1 : argv[a];
		}
		int got = ex_journal_list(j, &f, &some, &err);
		if (got < 0) {
			rc = got;
			break;
		}
		struct ex_job *grown = got ? realloc(jobs, (size_t)(n + got) * sizeof *jobs) : jobs;
		if (!grown) {
			free(some);
			rc = vlm_err_set(&err, -ENOMEM, "intake: out of memory");
			break;
		}
		jobs = grown;
		int kept = 0;
		for (int i = 0; i < got; i++)
			if (some[i].dest[0]) /* the original was kept (not deleted) */
				jobs[n + kept++] = some[i];
		if (a < argc && kept == 0)
			fprintf(stderr,
				"intake reprocess: no archived or failed document named '%s'\n",
				f.name);
		n += kept;
		free(some);
	}
	if (rc == 0 && n > 0 && (rc = ex_journal_begin(j, &err)) == 0) {
		for (int i = 0; i < n && rc == 0; i++) {
			jobs[i].reprocess = true;
			rc = ex_journal_update(j, &jobs[i], &err);
		}
		if (rc == 0)
			rc = ex_journal_commit(j, &err);
		else
			ex_journal_rollback(j);
	}
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		free(jobs);
		ex_journal_close(j);
		return EXIT_INTERNAL;
	}
	printf("intake reprocess: %d document%s queued for reprocessing\n", n, n == 1 ? "" : "s");
	bool tty = isatty(STDERR_FILENO);
	int done = 0;
	while (wait && n > 0 && done < n) {
		done = reprocess_progress(j, jobs, n, &err);
		if (done < 0) {
			fprintf(stderr, "%s\n", err.msg);
			break;
		}
		if (tty) {
			int width = 40, fill = done * width / n;
			fprintf(stderr, "\r[%.*s%*s] %d/%d", fill,
				"########################################", width - fill, "", done,
				n);
		}
		if (done < n)
			usleep(500000);
	}
	if (tty && wait && n > 0)
		fputc('\n', stderr);
	free(jobs);
	ex_journal_close(j);
	return done < 0 ? EXIT_INTERNAL : EXIT_OK;
}

static const struct command commands[] = {
	{ "extract", cmd_extract, "extract a schema's fields from a document as checked JSON" },
	{ "pages", cmd_pages, "decode a document into page images (PDF, TIFF, JPEG, PNG)" },
	{ "schema", cmd_schema, "check extraction schemas: intake schema check FILE..." },
	{ "model", cmd_model,
	  "get, check, inspect and try the model (pull, verify, info, generate)" },
	{ "status", cmd_status, "intaked's jobs per inbox, throughput and recent errors" },
	{ "reprocess", cmd_reprocess, "queue archived or failed documents for intaked again" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: intake COMMAND [OPTIONS]\n\n"
		   "intake extracts validated JSON from documents with a local vision-language "
		   "model.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'intake COMMAND --help' describes one command. 'intake --version' prints the "
		   "version.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_REFUSED;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("intake %s\n", vlm_version());
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "intake: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_REFUSED;
}
