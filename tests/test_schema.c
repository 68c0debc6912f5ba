/* Schema loading: every kind of problem with its exact file:line:column and reason (positions
 * counted by hand in the YAML below), several problems reported by one load, the cap, a schema
 * that loads with its structure checked, the shipped schemas, lookup by name, and the check-digit
 * algorithms against published numbers. */
#include <errno.h>

#include "check.h"
#include "schema.h"
#include "testfiles.h"

/* Loads `yaml` from a scratch file and checks the problems against `expected` (NULL-terminated;
 * each without the "PATH:" prefix). */
static void expect_errors(const char *name, const char *yaml, const char *const *expected)
{
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, name, yaml, strlen(yaml));
	struct ex_schema *s = (struct ex_schema *)1;
	struct ex_schema_errors errors = { 0 };
	vlm_err err = { 0 };
	CHECK_INT(ex_schema_load_report(path, &s, &errors, &err), -EBADMSG);
	CHECK(s == NULL);
	size_t n = 0;
	while (expected[n])
		n++;
	CHECK_INT(errors.n, n);
	for (size_t k = 0; k < n && k < errors.n; k++) {
		char want[600];
		snprintf(want, sizeof want, "%s:%s", path, expected[k]);
		CHECK_STR(errors.lines[k], want);
	}
	if (n && errors.n) {
		CHECK_CONTAINS(err.msg, expected[0]);
		if (n > 1)
			CHECK_CONTAINS(err.msg, "more)");
	}
	ex_schema_errors_done(&errors);
}

#define HEAD "name: t\nversion: 1\ninstruction: read it\n"

static void test_yaml_errors(void)
{
	expect_errors("syntax.yaml", HEAD "fields: [a, b\n",
		      (const char *const[]){ "5:1: YAML syntax: did not find expected ',' or ']' "
					     "while parsing a flow sequence",
					     NULL });
	expect_errors("empty.yaml", "", (const char *const[]){ "1:1: empty schema", NULL });
	expect_errors("list.yaml", "- a\n",
		      (const char *const[]){ "1:1: 'schema' must be a mapping, not a list", NULL });
	expect_errors("missing.yaml", "name: t\nfields:\n  a:\n    description: x\n",
		      (const char *const[]){ "1:1: missing required key 'version' in schema",
					     "1:1: missing required key 'instruction' in schema",
					     "4:5: missing required key 'type' in field 'a'",
					     NULL });
	expect_errors(
		"unknown_key.yaml", HEAD "colour: red\nfields:\n  a: {type: string, lenght: 3}\n",
		(const char *const[]){
			"4:1: unknown key 'colour' in schema (expected: name, version, "
			"description, instruction, locale, pages, confidence_threshold, fields, "
			"rules)",
			"6:21: unknown key 'lenght' in field 'a' (expected: type, description, "
			"required, nullable, pattern, constrain_pattern, values, min, max, "
			"normalize, fields)",
			NULL });
	expect_errors(
		"type.yaml", HEAD "fields:\n  a:\n    type: strnig\n",
		(const char *const[]){ "6:11: unknown type 'strnig' for field 'a' (expected: "
				       "string, integer, number, decimal, date, boolean, enum, "
				       "object, array)",
				       NULL });
	/* A value with control characters is quoted back on one line: by YAML's folding the
	 * scalar below is "str\tin\ng" (the empty line is the line feed), shown with spaces. */
	expect_errors(
		"multiline.yaml", HEAD "fields:\n  a:\n    type: \"str\\tin\n\n  g\"\n",
		(const char *const[]){ "6:11: unknown type 'str in g' for field 'a' (expected: "
				       "string, integer, number, decimal, date, boolean, enum, "
				       "object, array)",
				       NULL });
	/* PCRE2's own message and the offset in the pattern. */
	expect_errors(
		"regex.yaml", HEAD "fields:\n  code:\n    type: string\n    pattern: '[0-9'\n",
		(const char *const[]){ "7:14: bad pattern for field 'code': missing terminating "
				       "] for character class at offset 4",
				       NULL });
	expect_errors("duplicate.yaml",
		      HEAD
		      "version: 2\nfields:\n  a: {type: string}\n  b: {type: date}\n  a: {type: "
		      "integer}\n",
		      (const char *const[]){ "4:1: duplicate key 'version' in schema",
					     "8:3: duplicate field 'a'", NULL });
	expect_errors("nested_duplicate.yaml",
		      HEAD "fields:\n  o:\n    type: object\n    fields:\n      x: {type: string}\n"
			   "      x: {type: string}\n",
		      (const char *const[]){ "9:7: duplicate field 'o.x'", NULL });
	expect_errors(
		"keys_for_type.yaml",
		HEAD "fields:\n"
		     "  e: {type: enum}\n"                            /* line 5 */
		     "  s: {type: string, values: [a], min: 1}\n"     /* line 6 */
		     "  d: {type: decimal, pattern: x, fields: {}}\n" /* line 7 */
		     "  o: {type: object}\n"                          /* line 8 */
		     "  n: {type: integer, min: 5, max: 1, normalize: [trim, squash]}\n"
		     "  b: {type: boolean, required: yes}\n"
		     "  9x: {type: string}\n"
		     "  c: {type: string, constrain_pattern: true}\n",
		(const char *const[]){
			"5:6: missing required key 'values' in field 'e'",
			"6:29: 'values' applies to enum fields, and 's' is string",
			"6:39: 'min' applies to integer, number and decimal fields, and 's' is "
			"string",
			"7:31: 'pattern' applies to string fields, and 'd' is decimal",
			"7:42: 'fields' applies to object and array fields, and 'd' is decimal",
			"8:6: missing required key 'fields' in field 'o'",
			"9:56: unknown normalisation 'squash' (expected: trim, remove_spaces, "
			"upper_case)",
			"9:6: field 'n': min 5 is above max 1",
			"10:32: 'required' must be true or false, not 'yes'",
			"11:3: field name '9x': use letters, digits and '_', not starting with a "
			"digit",
			"12:40: 'constrain_pattern' needs a 'pattern' on field 'c'", NULL });
	expect_errors(
		"top_values.yaml",
		HEAD "locale: fr\nconfidence_threshold: 1.5\npages: {pixel_budget: 10, "
		     "per_prompt: x}\nfields:\n  a: {type: string}\n",
		(const char *const[]){
			"4:9: unknown locale 'fr' (expected: iso, zh, eu, us)",
			"6:23: 'pixel_budget' must be a whole number from 65536 to 100000000, "
			"not '10'",
			"6:39: 'per_prompt' must be a whole number from 1 to 64, not 'x'",
			"5:23: 'confidence_threshold' must be from 0 to 1, not 1.5", NULL });
}

/* The fields the rule tests below refer to. */
#define RULE_FIELDS                                               \
	HEAD "fields:\n"                                          \
	     "  subtotal: {type: decimal}\n"                      \
	     "  total: {type: decimal}\n"                         \
	     "  note: {type: string}\n"                           \
	     "  items:\n"                                         \
	     "    type: array\n"                                  \
	     "    fields:\n"                                      \
	     "      amount: {type: decimal}\n"                    \
	     "      flag: {type: enum, values: [H, L, normal]}\n" \
	     "  other:\n"                                         \
	     "    type: array\n"                                  \
	     "    fields:\n"                                      \
	     "      qty: {type: integer}\n"                       \
	     "rules:\n" /* line 17 */

#define MINUS16 "----------------"

static void test_rule_errors(void)
{
	expect_errors(
		"rules.yaml",
		RULE_FIELDS
		"  - check: sum(items[].amount) == totl\n"          /* 18 */
		"  - check: \"subtotal + note == total\"\n"         /* 19 */
		"  - check: subtotal = total\n"                     /* 20 */
		"  - check: sum(subtotal) == total\n"               /* 21 */
		"  - check: items[].amount == other[].qty\n"        /* 22 */
		"  - check: items.amount == total\n"                /* 23 */
		"  - check: subtotal + == total\n"                  /* 24 */
		"  - check: subtotal == total\n    tolerance: -1\n" /* 25, 26 */
		"  - checksum: crc32\n    field: note\n"            /* 27, 28 */
		"  - checksum: iban\n    field: total\n"            /* 29, 30 */
		"  - checksum: iban\n"                              /* 31 */
		"  - range_flag:\n      value: items[].amount\n      flag: items[].flag\n"
		"  - check: total == 1\n    checksum: luhn\n    field: note\n" /* 35 */
		"  - check: (subtotal == total\n"                              /* 38 */
		/* a failed operand at the end of nested parentheses (fuzz_schema: read past
		       * the text), and minus signs nested past the limit */
		"  - check: \"((((((((((((((((((((subtotal + [\"\n"            /* 39 */
		"  - check: " MINUS16 MINUS16 MINUS16 MINUS16 "-total == 1\n", /* 40 */
		(const char *const[]){
			"18:35: rule references unknown field 'totl'",
			"19:24: type mismatch: 'note' is string, arithmetic needs integer, "
			"number or decimal",
			"20:21: expected '==', '<=' or '>=' (comparison is '==')",
			"21:16: sum() needs an array path such as 'items[].amount', not "
			"'subtotal'",
			"22:30: rule mixes elements of 'items' and 'other'",
			"23:12: rule references 'items' is an array: write 'items[]'",
			"24:23: expected a number, a field or sum(...) at '='",
			"26:16: 'tolerance' must be a non-negative decimal such as 0.01, not '-1'",
			"27:15: unknown checksum 'crc32' (expected: iban, luhn, cn_tax_id)",
			"30:12: type mismatch: 'total' is decimal, 'field' needs string",
			"31:5: missing required key 'field' in checksum rule",
			"33:7: range_flag needs either 'range' or 'low'/'high'",
			"35:5: a rule has exactly one of 'check', 'checksum', 'range_flag'",
			"38:22: expected ')'",
			"39:44: expected a number, a field or sum(...) at '['",
			"40:76: expression nested more than 64 deep", NULL });
	/* A field whose type did not load is not reported again by the rules naming it. */
	expect_errors(
		"untyped.yaml",
		HEAD "fields:\n  a: {type: decimel}\n  b: {type: decimal}\nrules:\n"
		     "  - check: a == b\n  - check: a == c\n",
		(const char *const[]){ "5:13: unknown type 'decimel' for field 'a' (expected: "
				       "string, integer, number, decimal, date, boolean, enum, "
				       "object, array)",
				       "9:17: rule references unknown field 'c'", NULL });
}

static void test_error_cap(void)
{
	char yaml[8192];
	size_t n = (size_t)snprintf(yaml, sizeof yaml, HEAD "fields:\n  a: {type: string}\n");
	for (int k = 0; k < EX_SCHEMA_MAX_ERRORS + 10; k++)
		n += (size_t)snprintf(yaml + n, sizeof yaml - n, "bad%d: 1\n", k);
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, "cap.yaml", yaml, n);
	struct ex_schema *s = NULL;
	struct ex_schema_errors errors = { 0 };
	vlm_err err = { 0 };
	CHECK_INT(ex_schema_load_report(path, &s, &errors, &err), -EBADMSG);
	CHECK_INT(errors.n, EX_SCHEMA_MAX_ERRORS);
	CHECK_INT(errors.n_dropped, 10);
	CHECK_CONTAINS(err.msg, "(and 59 more)");
	ex_schema_errors_done(&errors);
}

static void test_load_ok(void)
{
	static const char yaml[] =
		"name: demo\nversion: \"2.1\"\ndescription: 演示\ninstruction: |\n  Read it.\n"
		"locale: eu\npages: {pixel_budget: 1000000, per_prompt: 3}\n"
		"confidence_threshold: 0.75\n"
		"fields:\n"
		"  code:\n"
		"    type: string\n"
		"    description: 发票代码\n"
		"    pattern: '\\d{10}|\\d{12}'\n"
		"    normalize: [trim, remove_spaces, upper_case]\n"
		"    required: true\n"
		"    nullable: false\n"
		"    constrain_pattern: true\n"
		"  level: {type: enum, values: [H, L, normal]}\n"
		"  n: {type: integer, min: 1, max: 9}\n"
		"  items:\n"
		"    type: array\n"
		"    fields:\n"
		"      qty: {type: decimal}\n"
		"      price: {type: decimal}\n"
		"      amount: {type: decimal}\n"
		"  total: {type: decimal}\n"
		"rules:\n"
		"  - check: items[].qty * items[].price == items[].amount\n"
		"    tolerance: 0.005\n"
		"  - check: sum(items[].amount) - -1 >= total\n";
	char path[SCRATCH_PATH_SIZE];
	scratch_write(path, "ok.yaml", yaml, sizeof yaml - 1);
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_schema_load(path, &s, &err), 0);
	if (!s)
		return;
	CHECK_STR(s->name, "demo");
	CHECK_STR(s->version, "2.1");
	CHECK_STR(s->description, "演示");
	CHECK_STR(s->instruction, "Read it.\n");
	CHECK_INT(s->locale, EX_LOCALE_EU);
	CHECK_INT(s->pages.pixel_budget, 1000000);
	CHECK_INT(s->pages.pages_per_prompt, 3);
	CHECK_NEAR(s->confidence_threshold, 0.75, 0);
	CHECK_INT(s->n_fields, 5);
	const struct ex_field *code = &s->fields[0];
	CHECK_STR(code->name, "code");
	CHECK_STR(code->description, "发票代码");
	CHECK_INT(code->type, EX_TYPE_STRING);
	CHECK(code->required && !code->nullable && code->constrain_pattern);
	CHECK_INT(code->normalize, EX_NORM_TRIM | EX_NORM_REMOVE_SPACES | EX_NORM_UPPER_CASE);
	CHECK_INT(code->line, 10);
	CHECK_INT(code->column, 3);
	/* Anchored at both ends: a longer string that contains a match does not match. */
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(code->re, NULL);
	CHECK(pcre2_match(code->re, (PCRE2_SPTR) "1234567890", 10, 0, 0, md, NULL) > 0);
	CHECK(pcre2_match(code->re, (PCRE2_SPTR) "123456789012", 12, 0, 0, md, NULL) > 0);
	CHECK(pcre2_match(code->re, (PCRE2_SPTR) "12345678901", 11, 0, 0, md, NULL) < 0);
	CHECK(pcre2_match(code->re, (PCRE2_SPTR) "x1234567890", 11, 0, 0, md, NULL) < 0);
	pcre2_match_data_free(md);
	const struct ex_field *level = &s->fields[1];
	CHECK(level->type == EX_TYPE_ENUM && level->n_enum_values == 3 && level->nullable &&
	      !level->required);
	CHECK_STR(level->enum_values[2], "normal");
	CHECK(s->fields[2].has_min && s->fields[2].has_max && s->fields[2].max == 9);
	const struct ex_field *items = &s->fields[3];
	CHECK_INT(items->n_fields, 3);
	CHECK_STR(items->fields[2].path, "items[].amount");
	CHECK(ex_schema_field(s, "items[].price") == &items->fields[1]);
	CHECK(ex_schema_field(s, "items.price") == NULL);
	CHECK(ex_schema_field(s, "total") == &s->fields[4]);

	CHECK_INT(s->n_rules, 2);
	const struct ex_rule *r = &s->rules[0];
	CHECK_INT(r->kind, EX_RULE_ARITHMETIC);
	CHECK(r->each == items);
	CHECK_STR(r->tolerance, "0.005");
	CHECK_INT(r->cmp, EX_CMP_EQ);
	CHECK(r->lhs && r->lhs->op == EX_EXPR_MUL && r->lhs->a->field == &items->fields[0] &&
	      r->lhs->b->field == &items->fields[1]);
	CHECK(r->rhs && r->rhs->op == EX_EXPR_FIELD && r->rhs->field == &items->fields[2]);
	r = &s->rules[1];
	CHECK(r->each == NULL); /* only summed: checked once */
	CHECK_INT(r->cmp, EX_CMP_GE);
	CHECK_STR(r->tolerance, "0");
	CHECK(r->lhs && r->lhs->op == EX_EXPR_SUB && r->lhs->a->op == EX_EXPR_SUM &&
	      r->lhs->b->op == EX_EXPR_NEG && r->lhs->b->a->op == EX_EXPR_NUMBER);
	if (r->lhs && r->lhs->b && r->lhs->b->a)
		CHECK_STR(r->lhs->b->a->number, "1");
	ex_schema_free(s);
}

static void test_shipped(void)
{
	const char *src = getenv("INTAKE_SOURCE_DIR");
	CHECK(src != NULL);
	if (!src)
		return;
	char dir[512];
	snprintf(dir, sizeof dir, "%s/schemas", src);
	static const char *const names[] = { "invoice", "lab_report", "nameplate" };
	for (int k = 0; k < 3; k++) {
		struct ex_schema *s = NULL;
		vlm_err err = { 0 };
		CHECK_INT(ex_schema_find(names[k], dir, &s, &err), 0);
		if (err.code)
			fprintf(stderr, "%s\n", err.msg);
		if (s)
			CHECK_STR(s->name, names[k]);
		ex_schema_free(s);
	}
	struct ex_schema *s = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_schema_find("receipt", dir, &s, &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "no such schema");
	CHECK_CONTAINS(err.msg, "schemas/receipt.yaml");
	char path[600];
	snprintf(path, sizeof path, "%s/invoice.yaml", dir);
	CHECK_INT(ex_schema_find(path, "/nonexistent", &s, &err), 0);
	if (s) {
		CHECK(ex_schema_field(s, "cn_vat.seller.tax_id") != NULL);
		CHECK_INT(s->n_rules, 9);
	}
	ex_schema_free(s);
	CHECK_INT(ex_schema_find("../etc", dir, &s, &err), -ENOENT); /* a path: contains '/' */
	CHECK_INT(ex_schema_find("bad name", dir, &s, &err), -EINVAL);
}

static void test_checksums(void)
{
	const struct ex_checksum *iban = ex_checksum_find("iban"), *luhn = ex_checksum_find("luhn"),
				 *cn = ex_checksum_find("cn_tax_id");
	CHECK(iban && luhn && cn && !ex_checksum_find("crc32"));
	if (!iban || !luhn || !cn)
		return;
	/* The examples of ISO 13616 / the ECBS register. */
	CHECK(iban->valid("GB82WEST12345698765432"));
	CHECK(iban->valid("DE89370400440532013000"));
	CHECK(!iban->valid("GB82WEST12345698765433"));
	CHECK(!iban->valid("GB28WEST12345698765432"));
	CHECK(!iban->valid("GB82 WEST 1234 5698 7654 32")); /* normalise spaces away first */
	/* Wikipedia's Luhn example and a test card number. */
	CHECK(luhn->valid("79927398713"));
	CHECK(luhn->valid("4111111111111111"));
	CHECK(!luhn->valid("79927398710"));
	CHECK(!luhn->valid("7992739871a"));
	/* Published unified social credit codes of registered companies. */
	CHECK(cn->valid("91350100M000100Y43"));
	CHECK(cn->valid("91440300708461136T"));
	CHECK(cn->valid("91110108551385082Q"));
	CHECK(!cn->valid("91440300708461136U"));
	CHECK(!cn->valid("91440300708461136I")); /* I is not in the alphabet */
	CHECK(cn->valid("110108551385082"));     /* 15 digits: the old form, no check digit */
	CHECK(!cn->valid("1101085513"));
	CHECK(!cn->valid("91440300708461136t"));
}

int main(void)
{
	scratch_init();
	test_yaml_errors();
	test_rule_errors();
	test_error_cap();
	test_load_ok();
	test_shipped();
	test_checksums();
	scratch_done();
	return CHECK_DONE();
}
