/* `intake extract`: one document, one schema, one result JSON, through ex_extract (ex.h). Owns
 * the options, the exit status (0 ok or needs_review, 2 a refused document or bad usage, 1 an
 * internal failure or a failed result) and the progress line on a terminal. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ex.h"
#include "result.h"
#include "schema.h"

static const char extract_usage[] =
	"usage: intake extract FILE --schema NAME|PATH [--model DIR] [options]\n"
	"\n"
	"Extracts the schema's fields from FILE (PDF, TIFF, JPEG or PNG) with the model, checks\n"
	"them, and prints the result JSON (docs/result-format.md), or writes it with --out.\n"
	"\n"
	"  --schema NAME|PATH  a schema file, or NAME for NAME.yaml in $INTAKE_SCHEMA_DIR, else "
	"the\n"
	"                      installed share/intake/schemas, else the source tree's schemas/\n"
	"  --model DIR         the model directory (default $INTAKE_MODEL_DIR, else\n"
	"                      /var/lib/intake/models/OWNER--NAME of " EX_MODEL_DEFAULT_REPO ")\n"
	"  --device D          cpu, cuda or auto (default auto: the CPU in this version)\n"
	"  --out FILE          write the result to FILE atomically instead of stdout\n"
	"  --threads N         CPU threads (default: all)\n"
	"  --precision P       f32 (default) or bf16: matmuls and attention on bf16-rounded\n"
	"                      activations, prefill 2-4x as fast (CPUs with AVX512_BF16)\n"
	"  --max-tokens N      tokens per answer (default 2048); a longer answer fails\n"
	"  --ctx N             context per prompt in tokens (default 16384 or the model's "
	"maximum)\n"
	"  --text-budget N     bytes of PDF text layer given as a hint per prompt (default 6000)\n"
	"  --no-text-hint      give the model no PDF text layer\n"
	"  --max-value-bytes N a guard against runaway values: bytes of one value's text in the\n"
	"                      answer, 1 to 65535 (default 512): a value that long is closed "
	"there\n"
	"\n"
	"A terminal shows progress (pages, tokens/s) on stderr.\n"
	"Exit status: 0 status ok or needs_review, 2 a refused document or bad usage, 1 an\n"
	"internal failure or a failed result (which is still written).\n";

struct progress_line {
	double last;
	bool drawn;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Redraws one stderr line at most ten times a second. */
static void show_progress(void *user, const struct ex_progress *p)
{
	struct progress_line *line = user;
	double t = now_s();
	if (line->drawn && t - line->last < 0.1)
		return;
	line->last = t;
	line->drawn = true;
	fprintf(stderr,
		"\rintake: pages %d-%d of %d (prompt %zu/%zu): %zu tokens, %.1f tokens/s\033[K",
		p->first_page, p->last_page, p->n_pages, p->prompt, p->n_prompts, p->n_tokens,
		p->tokens_per_s);
}

static int write_result(const json_t *result, const char *out, vlm_err *err)
{
	if (out)
		return ex_result_write(result, out, err);
	if (ex_result_dumpf(result, stdout) < 0 || fflush(stdout) != 0)
		return vlm_err_set(err, -EIO, "intake: cannot write the result to stdout: %s",
				   strerror(errno));
	return 0;
}

int cmd_extract(int argc, char **argv)
{
	enum {
		OPT_MAX = 256,
		OPT_THREADS,
		OPT_CTX,
		OPT_BUDGET,
		OPT_NO_TEXT,
		OPT_VALUE_BYTES,
		OPT_PRECISION
	};
	static const struct option opts[] = {
		{ "schema", required_argument, NULL, 's' },
		{ "model", required_argument, NULL, 'm' },
		{ "device", required_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "precision", required_argument, NULL, OPT_PRECISION },
		{ "max-tokens", required_argument, NULL, OPT_MAX },
		{ "ctx", required_argument, NULL, OPT_CTX },
		{ "text-budget", required_argument, NULL, OPT_BUDGET },
		{ "no-text-hint", no_argument, NULL, OPT_NO_TEXT },
		{ "max-value-bytes", required_argument, NULL, OPT_VALUE_BYTES },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct progress_line line = { 0 };
	struct ex_extract_opts xo = { .device = "auto" };
	const char *schema_arg = NULL, *out = NULL;
	uint64_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:m:d:o:h", opts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 's':
			schema_arg = optarg;
			break;
		case 'm':
			xo.model_dir = optarg;
			break;
		case 'd':
			xo.device = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case OPT_THREADS:
			ok = cli_parse_u64(optarg, 1024, &v);
			xo.n_threads = (int)v;
			break;
		case OPT_MAX:
			ok = cli_parse_u64(optarg, 1 << 20, &v);
			xo.max_tokens = (int)v;
			break;
		case OPT_CTX:
			ok = cli_parse_u64(optarg, 1 << 24, &v);
			xo.n_ctx = (int64_t)v;
			break;
		case OPT_BUDGET:
			ok = cli_parse_u64(optarg, 1 << 24, &v);
			xo.text_budget = v;
			break;
		case OPT_NO_TEXT:
			xo.no_text_hint = true;
			break;
		case OPT_PRECISION:
			ok = cli_parse_precision(optarg, &xo.bf16);
			break;
		case OPT_VALUE_BYTES:
			ok = cli_parse_u64(optarg, 65535, &v) && v > 0;
			xo.max_value_bytes = v;
			break;
		case 'h':
			fputs(extract_usage, stdout);
			return EXIT_OK;
		default:
			fputs(extract_usage, stderr);
			return EXIT_REFUSED;
		}
		if (!ok) {
			fprintf(stderr, "intake extract: invalid value '%s'\n", optarg);
			return EXIT_REFUSED;
		}
	}
	if (optind != argc - 1 || !schema_arg) {
		fputs(extract_usage, stderr);
		return EXIT_REFUSED;
	}
	const char *path = argv[optind];

	vlm_err err = { 0 };
	char model_dir[4096];
	if (!xo.model_dir) {
		if (ex_model_default_dir(EX_MODEL_DEFAULT_REPO, model_dir, sizeof model_dir, &err) <
		    0) {
			fprintf(stderr, "%s\n", err.msg);
			return EXIT_REFUSED;
		}
		xo.model_dir = model_dir;
	}
	if (isatty(STDERR_FILENO)) {
		xo.progress = show_progress;
		xo.user = &line;
	}
	struct ex_schema *schema = NULL;
	struct ex_extractor *x = NULL;
	json_t *result = NULL;
	int status = EXIT_OK;
	if (ex_schema_find(schema_arg, ex_schema_dir_default(), &schema, &err) < 0) {
		status = EXIT_REFUSED;
	} else if (ex_extractor_new(&xo, &x, &err) < 0) {
		bool usage = err.code == -ENODEV || err.code == -ENOTSUP || err.code == -EINVAL;
		status = usage ? EXIT_REFUSED : EXIT_INTERNAL;
	} else if (ex_extract(x, path, schema, &result, &err) < 0) {
		status = ex_reason_is_refusal(err.reason) ? EXIT_REFUSED : EXIT_INTERNAL;
	} else if (write_result(result, out, &err) < 0) {
		status = EXIT_INTERNAL;
	} else {
		const char *st = json_string_value(json_object_get(result, "status"));
		if (st && strcmp(st, "failed") == 0) {
			vlm_err_set(&err, -EBADMSG, "intake: '%s': %s", path,
				    json_string_value(json_object_get(result, "error")));
			status = EXIT_INTERNAL;
		}
	}
	if (line.drawn)
		fputs("\r\033[K", stderr);
	if (status != EXIT_OK)
		fprintf(stderr, "%s\n", err.msg);
	json_decref(result);
	ex_extractor_free(x);
	ex_schema_free(schema);
	return status;
}
