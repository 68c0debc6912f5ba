/* The result JSON: its shape and provenance for a needs-review and a failed extraction, the
 * source hash (NIST's SHA-256 example), and the atomic write (old file replaced whole, no
 * temporary file left behind, failures leave nothing). */
#include <errno.h>
#include <sys/stat.h>

#include "check.h"
#include "result.h"
#include "testfiles.h"

static const char yaml[] = "name: mini\nversion: \"3\"\ninstruction: x\n"
			   "confidence_threshold: 0.8\nfields:\n"
			   "  number: {type: string, required: true}\n"
			   "  total: {type: decimal}\n";

static const struct ex_stage_time timings[] = { { "ingest", 0.25 }, { "decode", 1.5 } };

static struct ex_provenance provenance(void)
{
	return (struct ex_provenance){
		.source_name = "inbox/a.pdf",
		.source_size = 3,
		.source_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		.format = "pdf",
		.n_pages = 2,
		.model_id = "GLM-4.6V-Flash",
		.weights_sha256 = "00ff",
		.device = "cpu",
		.timings = timings,
		.n_timings = 2,
		.created = 1700000000, /* 2023-11-14T22:13:20Z */
	};
}

static void test_sha256(void)
{
	char path[SCRATCH_PATH_SIZE], hex[65];
	uint64_t size = 0;
	vlm_err err = { 0 };
	scratch_write(path, "abc.txt", "abc", 3);
	CHECK_INT(ex_file_sha256(path, &size, hex, &err), 0);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK_INT(size, 3);
	CHECK_INT(ex_file_sha256(scratch_path(path, "nope"), &size, hex, &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "nope");
}

static json_t *get(json_t *o, const char *path)
{
	json_t *j = json_object_get(o, path);
	if (!j)
		fprintf(stderr, "missing key '%s'\n", path);
	return j;
}

static void test_shape(const struct ex_schema *s)
{
	const float lp[] = { -0.105360516f /* ln 0.9 */, -0.0001f };
	struct ex_field_evidence ev[] = { { "number", lp, 2, 1 } };
	json_t *answer = json_pack("{s:s, s:s}", "number", "INV-1", "total", "1,296.00");
	struct ex_validation *v = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_validate(s, answer, ev, 1, &v, &err), 0);
	json_decref(answer);
	if (!v)
		return;
	struct ex_provenance prov = provenance();
	json_t *doc = NULL;
	CHECK_INT(ex_result_build(s, v, &prov, &doc, &err), 0);
	ex_validation_free(v);
	if (!doc)
		return;
	/* Top-level keys in the documented order. */
	static const char *const keys[] = { "intake_version", "created", "status", "error",
					    "schema",         "source",  "model",  "device",
					    "timings_s",      "data",    "fields", "review" };
	size_t k = 0;
	const char *key;
	json_t *val;
	json_object_foreach(doc, key, val)
	{
		if (k < sizeof keys / sizeof keys[0])
			CHECK_STR(key, keys[k]);
		k++;
	}
	CHECK_INT(k, sizeof keys / sizeof keys[0]);
	CHECK_STR(json_string_value(get(doc, "intake_version")), vlm_version());
	CHECK_STR(json_string_value(get(doc, "created")), "2023-11-14T22:13:20Z");
	CHECK_STR(json_string_value(get(doc, "status")), "needs_review");
	CHECK(json_is_null(get(doc, "error")));
	json_t *schema = get(doc, "schema"), *source = get(doc, "source"),
	       *model = get(doc, "model");
	CHECK_STR(json_string_value(get(schema, "name")), "mini");
	CHECK_STR(json_string_value(get(schema, "version")), "3");
	CHECK_STR(json_string_value(get(source, "name")), "inbox/a.pdf");
	CHECK_INT(json_integer_value(get(source, "size")), 3);
	CHECK_STR(json_string_value(get(source, "sha256")), prov.source_sha256);
	CHECK_STR(json_string_value(get(source, "format")), "pdf");
	CHECK_INT(json_integer_value(get(source, "pages")), 2);
	CHECK_STR(json_string_value(get(model, "id")), "GLM-4.6V-Flash");
	CHECK_STR(json_string_value(get(model, "weights_sha256")), "00ff");
	CHECK_STR(json_string_value(get(doc, "device")), "cpu");
	CHECK_NEAR(json_real_value(get(get(doc, "timings_s"), "decode")), 1.5, 0);
	CHECK_STR(json_string_value(get(get(doc, "data"), "total")), "1296.00");

	json_t *number = get(get(doc, "fields"), "number"),
	       *total = get(get(doc, "fields"), "total");
	CHECK_STR(json_string_value(get(number, "value")), "INV-1");
	CHECK(json_is_true(get(number, "valid")));
	CHECK_INT(json_array_size(get(number, "errors")), 0);
	CHECK_NEAR(json_real_value(get(number, "confidence")), 0.9, 0); /* rounded to 4 digits */
	CHECK_INT(json_integer_value(get(number, "page")), 1);
	CHECK_NEAR(json_real_value(get(total, "confidence")), 0, 0);
	CHECK(json_is_null(get(total, "page")));
	/* "total" had no evidence: the one review entry. */
	json_t *review = get(doc, "review");
	CHECK_INT(json_array_size(review), 1);
	CHECK_STR(json_string_value(get(json_array_get(review, 0), "field")), "total");
	CHECK_STR(json_string_value(get(json_array_get(review, 0), "reason")), "low_confidence");

	/* Written atomically over an older file, and read back the same. */
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, "result.json", "old", 3);
	CHECK_INT(ex_result_write(doc, path, &err), 0);
	CHECK_INT(scratch_count_suffix(".tmp"), 0);
	json_error_t jerr;
	json_t *back = json_load_file(path, 0, &jerr);
	CHECK(back && json_equal(back, doc));
	json_decref(back);
	FILE *fp = fopen(path, "rb");
	int last = EOF;
	for (int c; fp && (c = fgetc(fp)) != EOF;)
		last = c;
	if (fp)
		fclose(fp);
	CHECK_INT(last, '\n');
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);

	/* A directory in the way, and a missing directory: errors, nothing left behind. */
	char dir[SCRATCH_PATH_SIZE];
	mkdir(scratch_path(dir, "taken"), 0700);
	CHECK(ex_result_write(doc, dir, &err) < 0);
	CHECK_CONTAINS(err.msg, "taken");
	CHECK_INT(scratch_count_suffix(".tmp"), 0);
	CHECK_INT(ex_result_write(doc, scratch_path(path, "missing/r.json"), &err), -ENOENT);
	rmdir(dir);
	json_decref(doc);
}

static void test_failed(void)
{
	struct ex_validation *v = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_validation_failed("schema: 'x.yaml': no such schema", &v, &err), 0);
	struct ex_provenance prov = provenance();
	prov.format = NULL;
	prov.model_id = NULL;
	json_t *doc = NULL;
	CHECK_INT(ex_result_build(NULL, v, &prov, &doc, &err), 0);
	ex_validation_free(v);
	if (!doc)
		return;
	CHECK_STR(json_string_value(get(doc, "status")), "failed");
	CHECK_STR(json_string_value(get(doc, "error")), "schema: 'x.yaml': no such schema");
	CHECK(json_is_null(get(get(doc, "schema"), "name")));
	CHECK(json_is_null(get(get(doc, "source"), "format")));
	CHECK(json_is_null(get(get(doc, "model"), "id")));
	CHECK(json_is_null(get(doc, "data")));
	CHECK_INT(json_object_size(get(doc, "fields")), 0);
	CHECK_INT(json_array_size(get(doc, "review")), 0);
	json_decref(doc);
}

/* A file name that is not UTF-8 (Latin-1 "é" is the byte 0xe9) still gives a result; the byte
 * shows as U+FFFD. */
static void test_latin1_name(const struct ex_schema *s)
{
	struct ex_validation *v = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_validation_failed("x", &v, &err), 0);
	struct ex_provenance prov = provenance();
	prov.source_name = "inbox/factur\xe9.pdf";
	json_t *doc = NULL;
	CHECK_INT(ex_result_build(s, v, &prov, &doc, &err), 0);
	ex_validation_free(v);
	if (!doc)
		return;
	CHECK_STR(json_string_value(get(get(doc, "source"), "name")),
		  "inbox/factur\xef\xbf\xbd.pdf");
	json_decref(doc);
}

int main(void)
{
	scratch_init();
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, "mini.yaml", yaml, sizeof yaml - 1);
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	if (ex_schema_load(path, &s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_sha256();
	test_shape(s);
	test_failed();
	test_latin1_name(s);
	ex_schema_free(s);
	scratch_done();
	return CHECK_DONE();
}
