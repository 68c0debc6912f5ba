/* Validation: decimal and date normalisation per locale (expected values written by hand), every
 * type and rule passing and failing, normalisation steps, rules skipped over absent values,
 * confidence from token log-probabilities, and the status. */
#include <errno.h>

#include "check.h"
#include "testfiles.h"
#include "validate.h"

static void test_decimals(void)
{
	static const struct {
		const char *in;
		enum ex_locale locale;
		const char *out; /* NULL: refused, with `why` containing `reason` */
		const char *reason;
	} cases[] = {
		{ "1,296.00", EX_LOCALE_ISO, "1296.00", NULL },
		{ "1,296.00", EX_LOCALE_EU, "1296.00", NULL }, /* both marks: the last is decimal */
		{ "1.296,00", EX_LOCALE_EU, "1296.00", NULL },
		{ "1.296,00", EX_LOCALE_US, "1296.00", NULL },
		{ "1 296,00", EX_LOCALE_EU, "1296.00", NULL },
		{ "1'296.50", EX_LOCALE_ISO, "1296.50", NULL },
		{ "1,296", EX_LOCALE_US, "1296", NULL },  /* grouping in us */
		{ "1,296", EX_LOCALE_EU, "1.296", NULL }, /* decimal comma in eu */
		{ "1.296", EX_LOCALE_EU, "1296", NULL },  /* grouping in eu */
		{ "1.296", EX_LOCALE_US, "1.296", NULL },
		{ "0,5", EX_LOCALE_US, "0.5", NULL }, /* not three digits: cannot be grouping */
		{ "1,296,000", EX_LOCALE_ZH, "1296000", NULL },
		{ "1.296.000", EX_LOCALE_US, "1296000", NULL },
		{ "¥1,296.00", EX_LOCALE_ZH, "1296.00", NULL },
		{ "￥１，２９６．００", EX_LOCALE_ZH, "1296.00", NULL }, /* full-width */
		{ "1296.00元", EX_LOCALE_ZH, "1296.00", NULL },
		{ "€ 1.000.000", EX_LOCALE_EU, "1000000", NULL },
		{ "-1,296.5", EX_LOCALE_ISO, "-1296.5", NULL },
		{ "- $12", EX_LOCALE_US, "-12", NULL },
		{ "-0.00", EX_LOCALE_ISO, "0.00", NULL },
		{ "007.50", EX_LOCALE_ISO, "7.50", NULL },
		{ ".5", EX_LOCALE_ISO, "0.5", NULL },
		{ "12,34,567", EX_LOCALE_ISO, NULL, "misplaced digit grouping" },
		{ "1.2.3,4", EX_LOCALE_EU, NULL, "misplaced digit grouping" },
		{ "1,296.00.5", EX_LOCALE_US, NULL, "more than one decimal separator" },
		{ "1.296,0 0", EX_LOCALE_EU, NULL, "after the decimal separator" },
		{ "12a", EX_LOCALE_ISO, NULL, "not a number" },
		{ "(12)", EX_LOCALE_ISO, NULL, "not a number" },
		{ " ¥ ", EX_LOCALE_ZH, NULL, "no digits" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		char out[64] = "";
		const char *why = NULL;
		int rc = ex_decimal_normalize(cases[k].in, cases[k].locale, out, sizeof out, &why);
		if (cases[k].out) {
			if (rc != 0)
				fprintf(stderr, "case '%s': %s\n", cases[k].in, why);
			CHECK_INT(rc, 0);
			CHECK_STR(out, cases[k].out);
		} else {
			if (rc == 0)
				fprintf(stderr, "case '%s' gave '%s'\n", cases[k].in, out);
			CHECK_INT(rc, -EINVAL);
			CHECK_CONTAINS(why, cases[k].reason);
		}
	}
}

static void test_dates(void)
{
	static const struct {
		const char *in;
		enum ex_locale locale;
		const char *out;
		const char *reason;
	} cases[] = {
		{ "2024年3月15日", EX_LOCALE_ZH, "2024-03-15", NULL },
		{ "２０２４年３月１５日", EX_LOCALE_ZH, "2024-03-15", NULL },
		{ "2024 年 03 月 15 号", EX_LOCALE_ISO, "2024-03-15", NULL },
		{ "2024-03-15", EX_LOCALE_US, "2024-03-15", NULL },
		{ "2024/3/15", EX_LOCALE_EU, "2024-03-15", NULL },
		{ "2024.03.15", EX_LOCALE_ISO, "2024-03-15", NULL },
		{ "20240315", EX_LOCALE_ISO, "2024-03-15", NULL },
		{ "15.03.2024", EX_LOCALE_EU, "2024-03-15", NULL },
		{ "15.03.2024", EX_LOCALE_ISO, "2024-03-15", NULL }, /* 15 cannot be a month */
		{ "03/15/2024", EX_LOCALE_US, "2024-03-15", NULL },
		{ "03/15/2024", EX_LOCALE_ISO, "2024-03-15", NULL },
		{ "03/15/2024", EX_LOCALE_EU, NULL, "no such day" }, /* month 15 */
		{ "03/04/2024", EX_LOCALE_EU, "2024-04-03", NULL },
		{ "03/04/2024", EX_LOCALE_US, "2024-03-04", NULL },
		{ "03/04/2024", EX_LOCALE_ISO, NULL, "ambiguous" },
		{ "03/04/2024", EX_LOCALE_ZH, NULL, "ambiguous" },
		{ "04/04/2024", EX_LOCALE_ISO, "2024-04-04", NULL },
		{ "15 March 2024", EX_LOCALE_ISO, "2024-03-15", NULL },
		{ "15th Mar 2024", EX_LOCALE_US, "2024-03-15", NULL },
		{ "March 15, 2024", EX_LOCALE_EU, "2024-03-15", NULL },
		{ "sept 1 2024", EX_LOCALE_ISO, "2024-09-01", NULL },
		{ "2024-02-29", EX_LOCALE_ISO, "2024-02-29", NULL },
		{ "2000-02-29", EX_LOCALE_ISO, "2000-02-29", NULL },
		{ "2023-02-29", EX_LOCALE_ISO, NULL, "no such day" },
		{ "1900-02-29", EX_LOCALE_ISO, NULL, "no such day" },
		{ "2024-04-31", EX_LOCALE_ISO, NULL, "no such day" },
		{ "13/14/2024", EX_LOCALE_ISO, NULL, "no such day" },
		{ "24-03-15", EX_LOCALE_ISO, NULL, "not a date" },
		{ "2024-03-15T10:00", EX_LOCALE_ISO, NULL, "not a date" },
		{ "15 Foo 2024", EX_LOCALE_ISO, NULL, "not a date" },
		{ "2024-03", EX_LOCALE_ISO, NULL, "not a date" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		char out[11] = "";
		const char *why = NULL;
		int rc = ex_date_normalize(cases[k].in, cases[k].locale, out, &why);
		if (cases[k].out) {
			if (rc != 0)
				fprintf(stderr, "case '%s': %s\n", cases[k].in, why);
			CHECK_INT(rc, 0);
			CHECK_STR(out, cases[k].out);
		} else {
			if (rc == 0)
				fprintf(stderr, "case '%s' gave '%s'\n", cases[k].in, out);
			CHECK_INT(rc, -EINVAL);
			CHECK_CONTAINS(why, cases[k].reason);
		}
	}
}

static const char schema_yaml[] =
	"name: v\nversion: 1\ninstruction: x\nlocale: eu\nconfidence_threshold: 0.8\n"
	"fields:\n"
	"  code: {type: string, pattern: '[A-Z]{2}[0-9]{3}', normalize: [remove_spaces, "
	"upper_case], required: true}\n"
	"  count: {type: integer, min: 1, max: 10}\n"
	"  ratio: {type: number, min: 0, max: 1}\n"
	"  amount: {type: decimal, min: 0}\n"
	"  day: {type: date}\n"
	"  paid: {type: boolean}\n"
	"  level: {type: enum, values: [H, L, normal]}\n"
	"  party:\n"
	"    type: object\n"
	"    fields:\n"
	"      name: {type: string, normalize: trim, required: true}\n"
	"      iban: {type: string, normalize: [remove_spaces, upper_case]}\n"
	"  items:\n"
	"    type: array\n"
	"    fields:\n"
	"      qty: {type: decimal}\n"
	"      price: {type: decimal}\n"
	"      total: {type: decimal}\n"
	"      value: {type: string}\n"
	"      range: {type: string}\n"
	"      flag: {type: enum, values: [H, L, normal]}\n"
	"  subtotal: {type: decimal}\n"
	"  tax: {type: decimal}\n"
	"  grand: {type: decimal}\n"
	"rules:\n"
	"  - check: items[].qty * items[].price == items[].total\n"
	"    tolerance: 0.01\n"
	"  - check: sum(items[].total) == subtotal\n"
	"  - check: subtotal + tax == grand\n"
	"    tolerance: 0.01\n"
	"  - checksum: iban\n"
	"    field: party.iban\n"
	"  - range_flag:\n"
	"      value: items[].value\n"
	"      range: items[].range\n"
	"      flag: items[].flag\n";

static struct ex_schema *load_schema(void)
{
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, "v.yaml", schema_yaml, sizeof schema_yaml - 1);
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	if (ex_schema_load(path, &s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	return s;
}

static struct ex_validation *run(const struct ex_schema *s, const char *json,
				 const struct ex_field_evidence *ev, size_t n_ev)
{
	json_error_t jerr;
	json_t *out = json_loads(json, 0, &jerr);
	if (!out) {
		fprintf(stderr, "test JSON: %s at %d\n", jerr.text, jerr.position);
		exit(1);
	}
	struct ex_validation *v = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_validate(s, out, ev, n_ev, &v, &err), 0);
	json_decref(out);
	if (!v)
		exit(1);
	return v;
}

static const struct ex_field_result *field(const struct ex_validation *v, const char *path)
{
	for (size_t k = 0; k < v->n_fields; k++)
		if (strcmp(v->fields[k].path, path) == 0)
			return &v->fields[k];
	fprintf(stderr, "no result for '%s'\n", path);
	check_failures++;
	return NULL;
}

/* The field's value as compact JSON text (strings quoted), for comparison. */
static char *value_text(const struct ex_validation *v, const char *path)
{
	const struct ex_field_result *r = field(v, path);
	return r ? json_dumps(r->value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
}

#define CHECK_VALUE(v, path, want)              \
	do {                                    \
		char *t_ = value_text(v, path); \
		CHECK_STR(t_, want);            \
		free(t_);                       \
	} while (0)

/* The field is valid, or (error != NULL) invalid with an error containing `error`. */
static void expect_valid(const struct ex_validation *v, const char *path, const char *error)
{
	const struct ex_field_result *r = field(v, path);
	if (!r)
		return;
	if (!error) {
		if (!r->valid)
			fprintf(stderr, "'%s' invalid: %s\n", path,
				json_string_value(json_array_get(r->errors, 0)));
		CHECK(r->valid);
		CHECK_INT(json_array_size(r->errors), 0);
		return;
	}
	CHECK(!r->valid);
	bool found = false;
	for (size_t k = 0; k < json_array_size(r->errors) && !found; k++)
		found = strstr(json_string_value(json_array_get(r->errors, k)), error) != NULL;
	if (!found)
		fprintf(stderr, "'%s': no error containing \"%s\" (first: %s)\n", path, error,
			json_string_value(json_array_get(r->errors, 0)));
	CHECK(found);
}

/* Whether `review` has an entry for `path` with `reason`. */
static bool in_review(const struct ex_validation *v, const char *path, const char *reason)
{
	size_t k;
	json_t *e;
	json_array_foreach(v->review, k,
			   e) if (strcmp(json_string_value(json_object_get(e, "field")), path) ==
					  0 &&
				  strcmp(json_string_value(json_object_get(e, "reason")), reason) ==
					  0) return true;
	return false;
}

static const char *const good_paths[] = {
	"code",
	"count",
	"ratio",
	"amount",
	"day",
	"paid",
	"level",
	"party.name",
	"party.iban",
	"items[0].qty",
	"items[0].price",
	"items[0].total",
	"items[0].value",
	"items[0].range",
	"items[0].flag",
	"items[1].qty",
	"items[1].price",
	"items[1].total",
	"items[1].value",
	"items[1].range",
	"items[1].flag",
	"subtotal",
	"tax",
	"grand",
};
#define N_GOOD (sizeof good_paths / sizeof good_paths[0])

/* Every value valid, every rule holding, every token likely: ok. Amounts in the eu locale. */
static void test_all_valid(const struct ex_schema *s)
{
	static const float sure[] = { -0.01f, -0.02f };
	struct ex_field_evidence ev[N_GOOD];
	for (size_t k = 0; k < N_GOOD; k++)
		ev[k] = (struct ex_field_evidence){ good_paths[k], sure, 2, 1 };
	ev[3].page = 2;
	struct ex_validation *v = run(
		s,
		"{\"code\": \"ab 123\", \"count\": 3, \"ratio\": \"0,25\", \"amount\": "
		"\"1.296,00\","
		" \"day\": \"15.03.2024\", \"paid\": \"yes\", \"level\": \"h\","
		" \"party\": {\"name\": \"  Fabrikam GmbH \", \"iban\": \"de89 3704 0044 0532 0130 "
		"00\"},"
		" \"items\": ["
		"  {\"qty\": \"3\", \"price\": \"1,50\", \"total\": \"4,50\", \"value\": \"11,8\","
		"   \"range\": \"4.0-10.0\", \"flag\": \"H\"},"
		"  {\"qty\": 2, \"price\": 0.25, \"total\": \"0,50\", \"value\": \"5.1\","
		"   \"range\": \"3.9 ~ 5.5 mmol/L\", \"flag\": null}],"
		" \"subtotal\": \"5,00\", \"tax\": \"0,95\", \"grand\": \"5,95\"}",
		ev, N_GOOD);
	for (size_t k = 0; k < v->n_fields; k++)
		expect_valid(v, v->fields[k].path, NULL);
	CHECK_INT(v->n_fields, N_GOOD);
	CHECK_INT(v->status, EX_STATUS_OK);
	CHECK_INT(json_array_size(v->review), 0);
	CHECK_VALUE(v, "code", "\"AB123\"");
	CHECK_VALUE(v, "count", "3");
	CHECK_VALUE(v, "ratio", "0.25");
	CHECK_VALUE(v, "amount", "\"1296.00\"");
	CHECK_VALUE(v, "day", "\"2024-03-15\"");
	CHECK_VALUE(v, "paid", "true");
	CHECK_VALUE(v, "level", "\"H\"");
	CHECK_VALUE(v, "party.name", "\"Fabrikam GmbH\"");
	CHECK_VALUE(v, "party.iban", "\"DE89370400440532013000\"");
	CHECK_VALUE(v, "items[0].price", "\"1.50\"");
	CHECK_VALUE(v, "items[1].qty", "\"2\"");
	CHECK_VALUE(v, "items[1].price", "\"0.25\""); /* a JSON real, shortest exact text */
	CHECK_VALUE(v, "items[1].flag", "null");
	const struct ex_field_result *r = field(v, "amount");
	if (r) {
		CHECK_NEAR(r->confidence, exp(-0.02), 1e-6);
		CHECK_INT(r->page, 2);
	}
	/* data mirrors the schema's shape with the normalised values. */
	char *data = json_dumps(v->data, JSON_COMPACT);
	CHECK_CONTAINS(data, "\"party\":{\"name\":\"Fabrikam GmbH\",\"iban\":");
	CHECK_CONTAINS(data, "\"items\":[{\"qty\":\"3\",\"price\":\"1.50\"");
	free(data);
	ex_validation_free(v);
}

/* Every kind of value check failing once. */
static void test_value_failures(const struct ex_schema *s)
{
	struct ex_validation *v =
		run(s,
		    "{\"code\": \"ABC12\", \"count\": 11, \"ratio\": 1.5, \"amount\": \"-3\","
		    " \"day\": \"31.02.2024\", \"paid\": \"maybe\", \"level\": \"X\","
		    " \"party\": {\"name\": \"   \", \"iban\": 42}, \"items\": [\"row\"],"
		    " \"subtotal\": \"12a\", \"tax\": true, \"grand\": {}, \"surprise\": 1}",
		    NULL, 0);
	CHECK_INT(v->status, EX_STATUS_NEEDS_REVIEW);
	expect_valid(v, "code", "does not match the pattern [A-Z]{2}[0-9]{3}");
	expect_valid(v, "count", "11 is above the maximum 10");
	expect_valid(v, "ratio", "1.5 is above the maximum 1");
	expect_valid(v, "amount", "-3 is below the minimum 0");
	expect_valid(v, "day", "'31.02.2024': no such day");
	expect_valid(v, "paid", "expected true or false");
	expect_valid(v, "level", "'X' is not one of: H, L, normal");
	expect_valid(v, "party.name", "required, but missing"); /* blank after trim */
	expect_valid(v, "party.iban", "expected a string, not an integer");
	expect_valid(v, "items[0]", "expected an object, not a string");
	expect_valid(v, "subtotal", "'12a': not a number");
	expect_valid(v, "tax", "a boolean: not a number");
	expect_valid(v, "grand", "an object: not a number");
	expect_valid(v, "surprise", "not in the schema");
	CHECK(in_review(v, "code", "invalid"));
	CHECK(in_review(v, "surprise", "invalid"));
	CHECK(in_review(v, "count", "low_confidence")); /* no evidence: confidence 0 */
	/* What the model wrote is kept when it could not be read. */
	CHECK_VALUE(v, "subtotal", "\"12a\"");
	CHECK_VALUE(v, "day", "\"31.02.2024\"");
	CHECK_VALUE(v, "count", "11");
	/* Values outside the schema are not in data. */
	CHECK(json_object_get(v->data, "surprise") == NULL);
	ex_validation_free(v);

	/* Integer from text and a non-whole one; a missing required field. */
	v = run(s, "{\"count\": \"1,5\", \"code\": null}", NULL, 0);
	expect_valid(v, "count", "1.5 is not a whole number");
	expect_valid(v, "code", "required, but missing");
	ex_validation_free(v);
	v = run(s, "{\"count\": \"7\", \"code\": \"\", \"items\": null}", NULL, 0);
	CHECK_VALUE(v, "count", "7");
	CHECK_VALUE(v, "code", "null");
	expect_valid(v, "code", "required, but missing");
	expect_valid(v, "items", NULL);
	ex_validation_free(v);
}

/* Values as long as the grammar lets a value be (512 bytes) in 3-byte characters, as a
 * random-weight model writes them. Messages quote the first 80 bytes cut back to a character
 * boundary (26 characters) and "…", so the reason survives; before, a message cut inside a
 * character was refused by jansson and validation failed as "out of memory". */
static void test_long_values(const struct ex_schema *s)
{
	char long_text[171 * 3], json[4 * sizeof long_text + 128], expected[200];
	size_t n = 0;
	for (int k = 0; k < 170; k++)
		n += (size_t)snprintf(long_text + n, sizeof long_text - n, "中");
	char quoted[26 * 3 + 1];
	memcpy(quoted, long_text, 26 * 3);
	quoted[26 * 3] = '\0';
	snprintf(json, sizeof json,
		 "{\"code\": \"%s\", \"day\": \"%s\", \"level\": \"%s\","
		 " \"party\": {\"name\": \"n\", \"iban\": \"%s\"}}",
		 long_text, long_text, long_text, long_text);
	struct ex_validation *v = run(s, json, NULL, 0);
	CHECK_INT(v->status, EX_STATUS_NEEDS_REVIEW);
	snprintf(expected, sizeof expected, "'%s…' does not match the pattern [A-Z]{2}[0-9]{3}",
		 quoted);
	expect_valid(v, "code", expected);
	snprintf(expected, sizeof expected, "'%s…': not a date", quoted);
	expect_valid(v, "day", expected);
	snprintf(expected, sizeof expected, "'%s…' is not one of: H, L, normal", quoted);
	expect_valid(v, "level", expected);
	snprintf(expected, sizeof expected, "'%s…' fails the ", quoted);
	expect_valid(v, "party.iban", expected);
	/* The value itself is kept whole. */
	char *value = value_text(v, "code");
	CHECK(value && strlen(value) == 170 * 3 + 2);
	free(value);
	ex_validation_free(v);
}

/* A long unreadable value is quoted in its error message, cut to fit: the cut never splits a
 * character (found by fuzz_grammar: the split made the message invalid UTF-8, which jansson
 * refused, and validation failed as if out of memory). Two lengths of prefix, so that with
 * two-byte characters one of them puts the buffer's end inside a character. */
static void test_long_value(const struct ex_schema *s)
{
	for (int odd = 0; odd < 2; odd++) {
		char json[1200];
		size_t n = (size_t)snprintf(json, sizeof json, "{\"day\": \"%s", odd ? "x" : "xy");
		for (int k = 0; k < 300; k++)
			n += (size_t)snprintf(json + n, sizeof json - n, "\u00e9");
		snprintf(json + n, sizeof json - n, "\"}");
		struct ex_validation *v = run(s, json, NULL, 0);
		expect_valid(v, "day", odd ? "'x\u00e9\u00e9" : "'xy\u00e9\u00e9");
		ex_validation_free(v);
	}
}

static void test_rule_failures(const struct ex_schema *s)
{
	struct ex_validation *v = run(
		s,
		"{\"code\": \"AB123\", \"party\": {\"name\": \"x\", \"iban\": "
		"\"DE89370400440532013001\"},"
		" \"items\": ["
		"  {\"qty\": \"3\", \"price\": \"1,50\", \"total\": \"4,50\", \"value\": \"3,2\","
		"   \"range\": \"3,5-5,1\", \"flag\": null},"
		"  {\"qty\": \"2\", \"price\": \"1,00\", \"total\": \"2,50\", \"value\": \"7\","
		"   \"range\": \"<5\", \"flag\": \"normal\"},"
		"  {\"qty\": \"1\", \"price\": \"1\", \"total\": \"1\", \"value\": \"negative\","
		"   \"range\": \"3.5-5.5\", \"flag\": \"H\"},"
		"  {\"qty\": \"1\", \"price\": \"1\", \"total\": \"1\", \"value\": \"4\","
		"   \"range\": \"≥ 5\", \"flag\": \"L\"}],"
		" \"subtotal\": \"9,00\", \"tax\": \"1,00\", \"grand\": \"10,02\"}",
		NULL, 0);
	/* Per line: 2 x 1.00 is not 2.50; the others hold. */
	expect_valid(v, "items[0].qty", NULL);
	expect_valid(v, "items[1].total",
		     "rule 'items[].qty * items[].price == items[].total' fails for items[1]: "
		     "left side 2, right side 2.5 (tolerance 0.01)");
	expect_valid(v, "items[1].qty", "fails for items[1]");
	/* 4.50 + 2.50 + 1 + 1 = 9 = subtotal; 9 + 1 = 10 is 0.02 from 10.02. */
	expect_valid(v, "subtotal",
		     "rule 'subtotal + tax == grand' fails: left side 10, right "
		     "side 10.02 (tolerance 0.01)");
	expect_valid(v, "grand", "subtotal + tax == grand");
	CHECK(in_review(v, "grand", "rule"));
	expect_valid(v, "party.iban", "'DE89370400440532013001' fails the IBAN mod-97");
	/* Range against flag: 3.2 below 3.5-5.1 needs L; 7 above <5 needs H; a qualitative result
	 * is not checked; 4 below >=5 is L as flagged. */
	expect_valid(v, "items[0].flag",
		     "3.2 is below the reference range, so the flag should be "
		     "L, not normal");
	expect_valid(v, "items[0].value", "range_flag");
	expect_valid(v, "items[1].flag", "7 is above the reference range, so the flag should be H");
	expect_valid(v, "items[2].flag", NULL);
	expect_valid(v, "items[3].flag", NULL);
	expect_valid(v, "items[3].value", NULL);
	ex_validation_free(v);

	/* The sum rule failing, and <= / >= comparisons through a second schema. */
	v = run(s,
		"{\"code\": \"AB123\", \"items\": [{\"total\": \"1\"}, {\"total\": \"2\"}],"
		" \"subtotal\": \"4\"}",
		NULL, 0);
	expect_valid(v, "subtotal",
		     "rule 'sum(items[].total) == subtotal' fails: left side 3, "
		     "right side 4 (tolerance 0)");
	expect_valid(v, "items[1].total", "sum(items[].total)");
	ex_validation_free(v);

	/* Absent values skip the rules that read them: nothing fails. */
	v = run(s,
		"{\"code\": \"AB123\", \"items\": [{\"qty\": \"2\", \"total\": \"5\"}],"
		" \"tax\": \"1\", \"grand\": \"100\"}",
		NULL, 0);
	for (size_t k = 0; k < v->n_fields; k++)
		expect_valid(v, v->fields[k].path, NULL);
	ex_validation_free(v);
}

static void test_compare_rules(void)
{
	static const char yaml[] =
		"name: c\nversion: 1\ninstruction: x\nfields:\n"
		"  a: {type: integer}\n  b: {type: number}\n  c: {type: decimal}\n"
		"rules:\n"
		"  - check: a <= b\n"
		"  - check: c * 2 - -1 >= a\n"
		"    tolerance: 0.5\n";
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, "c.yaml", yaml, sizeof yaml - 1);
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_schema_load(path, &s, &err), 0);
	if (!s)
		return;
	/* 3 <= 3.5 holds; 1.2 * 2 + 1 = 3.4 >= 3 holds. */
	struct ex_validation *v = run(s, "{\"a\": 3, \"b\": 3.5, \"c\": \"1.2\"}", NULL, 0);
	expect_valid(v, "a", NULL);
	ex_validation_free(v);
	/* 4 <= 3.5 fails; 0.7 * 2 + 1 = 2.4, within 0.5 of 4? no: fails. */
	v = run(s, "{\"a\": 4, \"b\": 3.5, \"c\": \"0.7\"}", NULL, 0);
	expect_valid(v, "b", "rule 'a <= b' fails: left side 4, right side 3.5");
	expect_valid(v, "c", "left side 2.4, right side 4 (tolerance 0.5)");
	ex_validation_free(v);
	/* 1.6 * 2 + 1 = 4.2 >= 4.5 - 0.5 holds with the tolerance. */
	v = run(s, "{\"a\": 4, \"b\": 4.5, \"c\": \"1.6\"}", NULL, 0);
	expect_valid(v, "c", NULL);
	ex_validation_free(v);
	ex_schema_free(s);
}

static void test_confidence(const struct ex_schema *s)
{
	CHECK_NEAR(ex_confidence(NULL, 0), 0, 0);
	const float lp[] = { logf(0.9f), logf(0.5f), logf(0.99f) };
	CHECK_NEAR(ex_confidence(lp, 3), 0.5, 1e-6); /* the least likely token */
	/* One unsure token in "AB123" puts it under the 0.8 threshold; the field with two
	 * evidence entries (two pages) takes the lower; the field without evidence scores 0. */
	const float unsure[] = { -0.01f, logf(0.6f), -0.01f }, sure[] = { -0.01f },
		    sure2[] = { logf(0.95f) };
	struct ex_field_evidence ev[] = {
		{ "code", unsure, 3, 1 },
		{ "count", sure, 1, 2 },
		{ "count", sure2, 1, 3 },
	};
	struct ex_validation *v = run(s, "{\"code\": \"AB123\", \"count\": 2}", ev, 3);
	const struct ex_field_result *code = field(v, "code"), *count = field(v, "count"),
				     *day = field(v, "day");
	if (code && count && day) {
		CHECK_NEAR(code->confidence, 0.6, 1e-6);
		CHECK(code->valid);
		CHECK_NEAR(count->confidence, 0.95, 1e-6);
		CHECK_INT(count->page, 2);
		CHECK_NEAR(day->confidence, 0, 0);
		CHECK_INT(day->page, 0);
	}
	CHECK(in_review(v, "code", "low_confidence"));
	CHECK(!in_review(v, "count", "low_confidence"));
	CHECK(in_review(v, "day", "low_confidence"));
	CHECK_INT(v->status, EX_STATUS_NEEDS_REVIEW);
	ex_validation_free(v);
}

static void test_failed(const struct ex_schema *s)
{
	struct ex_validation *v = NULL;
	vlm_err err = { 0 };
	json_t *arr = json_array();
	CHECK_INT(ex_validate(s, arr, NULL, 0, &v, &err), 0);
	json_decref(arr);
	if (v) {
		CHECK_INT(v->status, EX_STATUS_FAILED);
		CHECK_STR(v->error, "validate: schema 'v': the model's answer is an array, not an "
				    "object");
		CHECK(v->data == NULL && v->n_fields == 0);
	}
	ex_validation_free(v);
	CHECK_INT(ex_validate(s, NULL, NULL, 0, &v, &err), 0);
	if (v)
		CHECK_CONTAINS(v->error, "is missing, not an object");
	ex_validation_free(v);
	CHECK_INT(ex_validation_failed("engine: out of context", &v, &err), 0);
	if (v) {
		CHECK_INT(v->status, EX_STATUS_FAILED);
		CHECK_STR(v->error, "engine: out of context");
	}
	ex_validation_free(v);
	CHECK_STR(ex_status_name(EX_STATUS_NEEDS_REVIEW), "needs_review");
}

/* The shipped schemas on the values printed on the samples (tools/make_samples.py): every rule
 * holds; the same invoice with a misread total, and a Chinese VAT invoice with a bad tax id,
 * fail the rules meant to catch them. */
static struct ex_schema *shipped(const char *name)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/schemas", getenv("INTAKE_SOURCE_DIR"));
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	if (ex_schema_find(name, dir, &s, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return s;
}

static void expect_all_valid(const struct ex_validation *v)
{
	for (size_t k = 0; k < v->n_fields; k++)
		expect_valid(v, v->fields[k].path, NULL);
}

static void test_shipped(void)
{
	if (!getenv("INTAKE_SOURCE_DIR")) {
		fprintf(stderr, "INTAKE_SOURCE_DIR not set\n");
		check_failures++;
		return;
	}
	struct ex_schema *inv = shipped("invoice"), *lab = shipped("lab_report");
	CHECK(inv && lab);
	if (!inv || !lab) {
		ex_schema_free(inv);
		ex_schema_free(lab);
		return;
	}
	static const char screenshot[] =
		"{\"kind\": \"international\", \"cn_vat\": null, \"international\": {"
		"\"number\": \"INV-88231\", \"issue_date\": \"2026-09-14\", \"due_date\": null,"
		"\"seller\": {\"name\": \"Fabrikam Inc.\", \"address\": null, \"tax_id\": null,"
		"\"iban\": null}, \"buyer\": {\"name\": \"Northwind Traders\", \"address\": null},"
		"\"currency\": \"usd\", \"items\": [], \"subtotal\": \"1,200.00\","
		"\"tax\": \"96.00\", \"total\": \"%s\"}}";
	char json[1024];
	snprintf(json, sizeof json, screenshot, "1,296.00");
	struct ex_validation *v = run(inv, json, NULL, 0);
	expect_all_valid(v);
	CHECK_VALUE(v, "international.currency", "\"USD\"");
	CHECK_VALUE(v, "international.total", "\"1296.00\"");
	ex_validation_free(v);
	snprintf(json, sizeof json, screenshot, "1,269.00");
	v = run(inv, json, NULL, 0);
	expect_valid(v, "international.total", "subtotal + international.tax == ");
	ex_validation_free(v);

	v = run(inv,
		"{\"kind\": \"cn_vat\", \"international\": null, \"cn_vat\": {"
		"\"invoice_code\": \"044031900111\", \"invoice_number\": \"12345678\","
		"\"issue_date\": \"2024年3月15日\","
		"\"buyer\": {\"name\": \"小米科技有限责任公司\", \"tax_id\": "
		"\"91110108551385082Q\"},"
		"\"seller\": {\"name\": \"深圳市腾讯计算机系统有限公司\","
		"\"tax_id\": \"91440300708461136U\"},"
		"\"items\": [{\"name\": \"*信息技术服务*软件服务费\", \"specification\": null,"
		"\"unit\": \"项\", \"quantity\": \"1\", \"unit_price\": \"1000.00\","
		"\"amount\": \"1000.00\", \"tax_rate\": \"6%\", \"tax\": \"60.00\"}],"
		"\"amount\": \"￥1000.00\", \"tax\": \"￥60.00\", \"total\": \"￥1060.00\"}}",
		NULL, 0);
	CHECK_VALUE(v, "cn_vat.issue_date", "\"2024-03-15\"");
	CHECK_VALUE(v, "cn_vat.total", "\"1060.00\"");
	expect_valid(v, "cn_vat.buyer.tax_id", NULL);
	expect_valid(v, "cn_vat.seller.tax_id", "unified social credit code check digit");
	expect_valid(v, "cn_vat.total", NULL);
	expect_valid(v, "cn_vat.items[0].amount", NULL);
	ex_validation_free(v);

	/* The lab report sample's five rows: WBC and potassium flagged, the rest unmarked. */
	v = run(lab,
		"{\"lab_name\": \"CITY HOSPITAL CLINICAL LABORATORY\", \"patient\": null,"
		"\"specimen_date\": \"2026-10-28\", \"report_date\": \"2026-10-28\", \"items\": ["
		"{\"test\": \"Hemoglobin\", \"value\": \"13.9\", \"unit\": \"g/dL\","
		"\"reference_range\": \"13.0-17.0\", \"flag\": \"\"},"
		"{\"test\": \"WBC\", \"value\": \"11.8\", \"unit\": \"10^9/L\","
		"\"reference_range\": \"4.0-10.0\", \"flag\": \"H\"},"
		"{\"test\": \"Platelets\", \"value\": \"245\", \"unit\": \"10^9/L\","
		"\"reference_range\": \"150-400\", \"flag\": null},"
		"{\"test\": \"Glucose (fasting)\", \"value\": \"5.1\", \"unit\": \"mmol/L\","
		"\"reference_range\": \"3.9-5.5\", \"flag\": \"normal\"},"
		"{\"test\": \"Potassium\", \"value\": \"3.2\", \"unit\": \"mmol/L\","
		"\"reference_range\": \"3.5-5.1\", \"flag\": \"L\"}]}",
		NULL, 0);
	expect_all_valid(v);
	ex_validation_free(v);
	ex_schema_free(inv);
	ex_schema_free(lab);
}

int main(void)
{
	scratch_init();
	test_decimals();
	test_dates();
	struct ex_schema *s = load_schema();
	test_all_valid(s);
	test_value_failures(s);
	test_long_values(s);
	test_long_value(s);
	test_rule_failures(s);
	test_compare_rules();
	test_confidence(s);
	test_failed(s);
	ex_schema_free(s);
	test_shipped();
	scratch_done();
	return CHECK_DONE();
}
