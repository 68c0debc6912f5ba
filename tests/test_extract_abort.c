/* The extractor's abort hook (ex_extract_opts.abort) on the tiny fixture model: a hook that says
 * stop at its 4th check ends the extraction with -ECANCELED and no result after 3 generated tokens
 * (the engine asks before each decode step); one that never says stop is asked and changes
 * nothing. The daemon relies on -ECANCELED to retry such a document without using an attempt. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ex.h"
#include "schema.h"
#include "testpng.h"

static const char schema_text[] = "name: tiny\nversion: 1\ninstruction: Read the label.\n"
				  "fields:\n"
				  "  s: {type: string}\n";

struct hook {
	int calls, stop_at; /* stop_at 0: never */
};

static bool stop_hook(void *user)
{
	struct hook *h = user;
	return ++h->calls == h->stop_at;
}

/* A 16 x 16 grey RGB PNG. */
static void write_png(char *path)
{
	struct bytes b = { 0 };
	uint8_t raw[16 * (1 + 16 * 3)];
	for (int y = 0; y < 16; y++) {
		raw[y * 49] = 0;
		memset(raw + y * 49 + 1, 128, 48);
	}
	uint8_t packed[1024];
	uLongf n = sizeof packed;
	compress(packed, &n, raw, sizeof raw);
	const uint8_t ihdr[13] = { 0, 0, 0, 16, 0, 0, 0, 16, 8, 2, 0, 0, 0 };
	bytes_append(&b, "\x89PNG\r\n\x1a\n", 8);
	put_chunk(&b, "IHDR", ihdr, sizeof ihdr);
	put_chunk(&b, "IDAT", packed, (uint32_t)n);
	put_chunk(&b, "IEND", NULL, 0);
	scratch_write(path, "grey.png", b.data, b.size);
	bytes_free(&b);
}

int main(void)
{
	scratch_init();
	char model[512], png[SCRATCH_PATH_SIZE], yaml[SCRATCH_PATH_SIZE];
	snprintf(model, sizeof model, "%s/tests/fixtures/tiny-glm4v", getenv("INTAKE_SOURCE_DIR"));
	write_png(png);
	scratch_write(yaml, "tiny.yaml", schema_text, strlen(schema_text));
	struct hook hook = { 0 };
	struct ex_extract_opts opts = { .model_dir = model,
					.device = "cpu",
					.n_threads = 1,
					.max_tokens = 16,
					.n_ctx = 2048,
					.abort = stop_hook,
					.user = &hook };
	struct ex_extractor *x = NULL;
	struct ex_schema *schema = NULL;
	vlm_err err = { 0 };
	if (ex_extractor_new(&opts, &x, &err) < 0 || ex_schema_load(yaml, &schema, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		ex_schema_free(schema);
		ex_extractor_free(x);
		scratch_done();
		return 1;
	}

	json_t *result = NULL;
	hook = (struct hook){ .stop_at = 4 };
	CHECK_INT(ex_extract(x, png, schema, &result, &err), -ECANCELED);
	CHECK(result == NULL);
	json_decref(result); /* none expected; freed should the check above fail */
	CHECK_INT(hook.calls, 4);
	CHECK_CONTAINS(err.msg, "aborted after 3 tokens");

	/* The same extractor goes on: a hook that never stops is asked before every step. */
	hook = (struct hook){ .stop_at = 0 };
	err = (vlm_err){ 0 };
	CHECK_INT(ex_extract(x, png, schema, &result, &err), 0);
	CHECK(result != NULL);
	CHECK(hook.calls >= 1 && hook.calls <= 16);
	json_decref(result);

	ex_extractor_forget(x, schema);
	ex_schema_free(schema);
	ex_extractor_free(x);
	scratch_done();
	return CHECK_DONE();
}
