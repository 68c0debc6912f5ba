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
	"Exit status: 0 success, 2 refused document (bad, unsupported or over a limit), 1 internal\n"
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

static json_t *page_json(const struct ex_page *p, bool with_text)
{
	json_t *o = json_pack("{s:i, s:i, s:i, s:f, s:f}", "page", p->number, "width", p->width,
			      "height", p->height, "dpi_x", p->dpi_x, "dpi_y", p->dpi_y);
	if (o && with_text && p->text) {
		json_t *words = json_array();
		for (size_t i = 0; i < p->n_words; i++) {
			const struct ex_word *w = &p->words[i];
			json_array_append_new(words, json_pack("{s:s, s:[f,f,f,f]}", "text", w->text,
							       "box", w->x0, w->y0, w->x1, w->y1));
		}
		json_object_set_new(o, "text", json_string(p->text));
		json_object_set_new(o, "words", words);
	}
	return o;
}

static int print_json(const struct ex_doc *doc, bool with_text)
{
	json_t *pages = json_array();
	for (size_t i = 0; i < doc->n_pages; i++)
		json_array_append_new(pages, page_json(&doc->pages[i], with_text));
	json_t *root = json_pack("{s:s, s:s, s:o}", "file", doc->path, "format",
				 ex_format_name(doc->format), "pages", pages);
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
		return vlm_err_set(err, -ENAMETOOLONG, "intake: directory '%s': path too long", dir);
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
			return vlm_err_set(err, -ENAMETOOLONG, "intake: output directory '%s': "
					   "path too long", dir);
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
		{"out", required_argument, NULL, 'o'},
		{"text", no_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"pixel-budget", required_argument, NULL, OPT_BUDGET},
		{"max-dpi", required_argument, NULL, OPT_DPI},
		{"max-pages", required_argument, NULL, OPT_PAGES},
		{"max-page-pixels", required_argument, NULL, OPT_PAGE_PIXELS},
		{"max-file-bytes", required_argument, NULL, OPT_FILE_BYTES},
		{0},
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
		case 'o': out_dir = optarg; break;
		case 't': text = true; break;
		case 'j': as_json = true; break;
		case 'h': fputs(pages_usage, stdout); return EXIT_OK;
		case OPT_BUDGET: ok = cli_parse_u64(optarg, 1ull << 40, &limits.pdf_pixel_budget); break;
		case OPT_DPI:
			ok = cli_parse_u64(optarg, 2400, &v);
			limits.pdf_max_dpi = (double)v;
			break;
		case OPT_PAGES:
			ok = cli_parse_u64(optarg, 1000000, &v);
			limits.max_pages = (uint32_t)v;
			break;
		case OPT_PAGE_PIXELS: ok = cli_parse_u64(optarg, 1ull << 40, &limits.max_page_pixels); break;
		case OPT_FILE_BYTES: ok = cli_parse_u64(optarg, 1ull << 44, &limits.max_file_bytes); break;
		default: fputs(pages_usage, stderr); return EXIT_REFUSED;
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

	vlm_err err = {0};
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
		struct ex_schema_errors errors = {0};
		vlm_err err = {0};
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

static const struct command commands[] = {
	{"extract", cmd_extract, "extract a schema's fields from a document as checked JSON"},
	{"pages", cmd_pages, "decode a document into page images (PDF, TIFF, JPEG, PNG)"},
	{"schema", cmd_schema, "check extraction schemas: intake schema check FILE..."},
	{"model", cmd_model, "get, check, inspect and try the model (pull, verify, info, generate)"},
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
