/* tile.c: prompts per document, page sizes under a budget (expected sizes worked out by hand),
 * the area-averaging downscale on pixels whose means are known, and the merge rule with its
 * evidence re-indexing, on the shipped lab_report schema. */
#include <glib.h>

#include "check.h"
#include "tile.h"

static void test_prompts(void)
{
	CHECK_INT(ex_tile_n_prompts(2, 2), 1);
	CHECK_INT(ex_tile_n_prompts(3, 2), 2);
	CHECK_INT(ex_tile_n_prompts(5, 1), 5);
	CHECK_INT(ex_tile_n_prompts(1, 0), 1);
}

static void test_fit(void)
{
	int w, h;
	/* A4 at 300 dpi to 2 megapixels: scale sqrt(2e6 / 8699840) = 0.47947; 1189.1 and 1681.9
	 * round down to 42 and 60 blocks of 28. */
	CHECK(ex_tile_fit(2480, 3508, 2000000, 28, &w, &h));
	CHECK_INT(w, 1176);
	CHECK_INT(h, 1680);
	CHECK_INT(ex_tile_tokens(w, h, 28), 42 * 60);
	/* Under the budget even rounded up (1204 x 812): left to the engine. */
	CHECK(!ex_tile_fit(1200, 800, 1500000, 28, &w, &h));
	CHECK_INT(w, 1200);
	CHECK_INT(h, 800);
	CHECK_INT(ex_tile_tokens(1200, 800, 28), 43 * 29);
	/* Just over: 1280 x 800 to 1e6: scale 0.98821 gives 1264.9 -> 1260, 790.6 -> 784. */
	CHECK(ex_tile_fit(1280, 800, 1000000, 28, &w, &h));
	CHECK_INT(w, 1260);
	CHECK_INT(h, 784);
	/* A tiny budget still leaves one block. */
	CHECK(ex_tile_fit(2480, 3508, 100, 28, &w, &h));
	CHECK_INT(w, 28);
	CHECK_INT(h, 28);
}

static void test_downscale(void)
{
	/* 4x2 to 2x1: each output pixel is the mean of a 2x2 block. */
	const uint8_t src[] = { 10, 20, 30, 30, 40, 50, 100, 0, 0, 200, 0, 0,
				50, 60, 70, 70, 80, 90, 0,   0, 0, 0,   0, 0 };
	uint8_t dst[6] = { 0 };
	vlm_err err = { 0 };
	CHECK_INT(ex_tile_downscale(src, 4, 2, dst, 2, 1, &err), 0);
	const uint8_t want[] = { 40, 50, 60, 75, 0, 0 };
	for (int i = 0; i < 6; i++)
		CHECK_INT(dst[i], want[i]);
	/* 3x1 to 2x1: output 0 covers source [0, 1.5): (0 + 90 / 2) / 1.5 = 30; output 1 covers
	 * [1.5, 3): (90 / 2 + 180) / 1.5 = 150. */
	const uint8_t row[] = { 0, 0, 0, 90, 90, 90, 180, 180, 180 };
	CHECK_INT(ex_tile_downscale(row, 3, 1, dst, 2, 1, &err), 0);
	CHECK_INT(dst[0], 30);
	CHECK_INT(dst[3], 150);
	CHECK_INT(dst[5], 150);
	CHECK_INT(ex_tile_downscale(row, 3, 1, dst, 4, 1, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "tile: cannot downscale 3x1 to 4x1");
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j) {
		fprintf(stderr, "test JSON: %s\n", jerr.text);
		exit(1);
	}
	return j;
}

static const struct ex_field_evidence *find(const struct ex_tile_merged *m, const char *path)
{
	for (size_t i = 0; i < m->n_evidence; i++)
		if (strcmp(m->evidence[i].path, path) == 0)
			return &m->evidence[i];
	return NULL;
}

static void test_merge(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/schemas/lab_report.yaml", getenv("INTAKE_SOURCE_DIR"));
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	if (ex_schema_load(path, &s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	json_t *a =
		parse("{\"lab_name\": \"City Lab\", \"patient\": null, \"specimen_date\": null,"
		      " \"report_date\": null, \"items\": [{\"test\": \"Hb\", \"value\": \"13.9\","
		      " \"unit\": null, \"reference_range\": null, \"flag\": null}]}");
	json_t *b =
		parse("{\"lab_name\": \"Other\", \"patient\": {\"name\": null, \"id\": \"P1\","
		      " \"sex\": \"F\", \"birth_date\": null}, \"specimen_date\": \"2026-10-28\","
		      " \"report_date\": null, \"items\": [{\"test\": \"K\", \"value\": \"3.2\","
		      " \"unit\": null, \"reference_range\": null, \"flag\": \"L\"},"
		      " {\"test\": \"Na\", \"value\": \"140\", \"unit\": null,"
		      " \"reference_range\": null, \"flag\": null}]}");
	json_t *not_object = json_string("garbage");
	float lp[] = { -0.1f, -0.2f, -0.3f, -0.4f, -0.5f, -0.6f };
	const struct ex_field_evidence ev_a[] = {
		{ "lab_name", &lp[0], 1, 1 },
		{ "report_date", &lp[1], 1, 1 },
		{ "items[0].test", &lp[2], 1, 1 },
	};
	const struct ex_field_evidence ev_b[] = {
		{ "lab_name", &lp[3], 1, 2 },
		{ "items[0].test", &lp[4], 1, 2 },
		{ "patient.id", &lp[5], 1, 2 },
	};
	const struct ex_tile_part parts[] = { { a, ev_a, 3 },
					      { not_object, NULL, 0 },
					      { b, ev_b, 3 } };
	struct ex_tile_merged m;
	CHECK_INT(ex_tile_merge(s, parts, 3, &m, &err), 0);
	json_t *want = parse(
		"{\"lab_name\": \"City Lab\", \"patient\": {\"name\": null, \"id\": \"P1\","
		" \"sex\": \"F\", \"birth_date\": null}, \"specimen_date\": \"2026-10-28\","
		" \"report_date\": null, \"items\": ["
		"{\"test\": \"Hb\", \"value\": \"13.9\", \"unit\": null, \"reference_range\": null,"
		" \"flag\": null},"
		"{\"test\": \"K\", \"value\": \"3.2\", \"unit\": null, \"reference_range\": null,"
		" \"flag\": \"L\"},"
		"{\"test\": \"Na\", \"value\": \"140\", \"unit\": null, \"reference_range\": null,"
		" \"flag\": null}]}");
	CHECK(json_equal(m.answer, want));
	/* Keys in schema order. */
	char *dump = json_dumps(m.answer, JSON_COMPACT);
	CHECK(strncmp(dump, "{\"lab_name\":\"City Lab\",\"patient\":{\"name\":null,", 46) == 0);
	free(dump);

	const struct ex_field_evidence *e = find(&m, "lab_name");
	CHECK(e && e->logprobs == &lp[0] && e->page == 1); /* the value kept is page 1's */
	e = find(&m, "items[0].test");
	CHECK(e && e->logprobs == &lp[2] && e->page == 1);
	e = find(&m, "items[1].test"); /* part b's first item moved to index 1 */
	CHECK(e && e->logprobs == &lp[4] && e->page == 2);
	e = find(&m, "patient.id");
	CHECK(e && e->logprobs == &lp[5] && e->page == 2);
	e = find(&m, "report_date"); /* null everywhere: the first part's evidence */
	CHECK(e && e->logprobs == &lp[1]);
	CHECK_INT(m.n_evidence, 5);

	ex_tile_merged_done(&m);
	json_decref(want);

	/* No part with an object: every key present and null. */
	const struct ex_tile_part none[] = { { not_object, NULL, 0 } };
	CHECK_INT(ex_tile_merge(s, none, 1, &m, &err), 0);
	CHECK_INT(json_object_size(m.answer), 5);
	CHECK(json_is_null(json_object_get(m.answer, "items")));
	ex_tile_merged_done(&m);

	json_decref(a);
	json_decref(b);
	json_decref(not_object);
	ex_schema_free(s);
}

int main(void)
{
	if (!getenv("INTAKE_SOURCE_DIR")) {
		fprintf(stderr, "INTAKE_SOURCE_DIR not set\n");
		return 1;
	}
	test_prompts();
	test_fit();
	test_downscale();
	test_merge();
	return CHECK_DONE();
}
