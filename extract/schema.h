/* Extraction schemas: what to pull out of a document, loaded from YAML (docs/schemas.md).
 *
 * A schema is immutable once loaded and may be shared between threads. It owns every string, the
 * field tree, the compiled patterns and the parsed rules; pointers between them (a rule's fields,
 * an expression's field) point into the same schema and live as long as it does.
 *
 * Field paths: "seller.name" names a member of an object, "items[].amount" a member of every
 * element of the array of objects "items". Concrete paths in validation results and evidence use
 * the element index instead: "items[0].amount".
 *
 * Loading reports every problem it finds (up to EX_SCHEMA_MAX_ERRORS), each as one line
 * "FILE:LINE:COLUMN: reason" (1-based, columns in characters), so `intake schema check` can print
 * them all; it does not stop at the first. */
#ifndef EX_SCHEMA_H
#define EX_SCHEMA_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vlm.h"

enum ex_type {
	EX_TYPE_STRING,
	EX_TYPE_INTEGER, /* JSON integer (int64) */
	EX_TYPE_NUMBER,  /* JSON number (double): measurements, never money */
	EX_TYPE_DECIMAL, /* money and exact quantities: a canonical string "-1296.00", never a float */
	EX_TYPE_DATE,    /* a string normalised to ISO 8601 "YYYY-MM-DD" */
	EX_TYPE_BOOLEAN,
	EX_TYPE_ENUM,   /* one of `enum_values` (a string) */
	EX_TYPE_OBJECT, /* members in `fields` */
	EX_TYPE_ARRAY,  /* an array of objects (line items); each element's members in `fields` */
	EX_TYPE_COUNT
};
const char *ex_type_name(enum ex_type type); /* "string", "integer", ... */

/* How dates written with the year last (and decimal separators) are read. */
enum ex_locale {
	EX_LOCALE_ISO, /* default: year-last numeric dates only when unambiguous (a part > 12) */
	EX_LOCALE_ZH,  /* Chinese documents: year first (2024年3月15日); otherwise as ISO */
	EX_LOCALE_EU,  /* day before month (15.03.2024, 15/03/2024); "1.296,00" decimals */
	EX_LOCALE_US,  /* month before day (03/15/2024) */
	EX_LOCALE_COUNT
};
const char *ex_locale_name(enum ex_locale locale); /* "iso", "zh", "eu", "us" */

/* Normalisation steps applied to a string value before it is typed and checked, in this order. */
enum {
	EX_NORM_TRIM = 1u << 0,          /* strip leading and trailing white space (Unicode) */
	EX_NORM_REMOVE_SPACES = 1u << 1, /* remove every white space character (Unicode) */
	EX_NORM_UPPER_CASE = 1u << 2,    /* Unicode upper case */
};

struct ex_field {
	char *name;        /* the JSON key */
	char *path;        /* schema path from the root: "items[].amount" */
	char *description; /* UTF-8, shown to the model; "" when absent */
	enum ex_type type;
	bool required;          /* null or missing after validation makes the field invalid */
	bool nullable;          /* the model may answer null (default true) */
	char *pattern;          /* PCRE2 source as written, or NULL */
	pcre2_code *re;         /* compiled with PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF */
	bool constrain_pattern; /* opt-in: the decoder forces `pattern` while generating */
	char **enum_values;     /* EX_TYPE_ENUM: the allowed values, in schema order */
	size_t n_enum_values;
	bool has_min, has_max; /* numeric types: inclusive bounds on the value */
	double min, max;
	unsigned normalize;      /* EX_NORM_* bits */
	struct ex_field *fields; /* EX_TYPE_OBJECT / EX_TYPE_ARRAY: members, in schema order */
	size_t n_fields;
	int line, column; /* where the field is defined (1-based) */
};

/* A named check-digit algorithm. The registry is a fixed table in schema.c. */
struct ex_checksum {
	const char *name; /* "iban", "luhn", "cn_tax_id" */
	const char *description;
	bool (*valid)(const char *value); /* value after the field's normalisation */
};
const struct ex_checksum *ex_checksum_find(const char *name); /* NULL when unknown */

/* Arithmetic expressions over decimal values, parsed by a small recursive-descent parser. */
enum ex_expr_op {
	EX_EXPR_NUMBER, /* `number`: a canonical decimal literal */
	EX_EXPR_FIELD,  /* `field`: a numeric field; per element when its path has "[]" */
	EX_EXPR_SUM,    /* sum(`field`) over every element of the array in its path */
	EX_EXPR_NEG,    /* -a */
	EX_EXPR_ADD,    /* a + b */
	EX_EXPR_SUB,    /* a - b */
	EX_EXPR_MUL,    /* a * b */
	EX_EXPR_COUNT
};

struct ex_expr {
	enum ex_expr_op op;
	char *number;                 /* EX_EXPR_NUMBER */
	const struct ex_field *field; /* EX_EXPR_FIELD, EX_EXPR_SUM */
	struct ex_expr *a, *b;        /* operands */
};

enum ex_cmp { EX_CMP_EQ, EX_CMP_LE, EX_CMP_GE, EX_CMP_COUNT }; /* ==, <=, >= */

enum ex_rule_kind {
	EX_RULE_ARITHMETIC, /* `check: "subtotal + tax == total"` within `tolerance` */
	EX_RULE_CHECKSUM,   /* `checksum: iban` on `field` */
	EX_RULE_RANGE_FLAG, /* a value against its reference range agrees with its H/L flag */
	EX_RULE_COUNT
};

struct ex_rule {
	enum ex_rule_kind kind;
	char *text; /* as written, for messages: the expression, or "checksum iban(field)" */
	int line, column;
	/* The array whose elements the rule is checked on one by one (its fields are under it,
	 * outside sum()), or NULL for a rule checked once on the document. */
	const struct ex_field *each;

	/* EX_RULE_ARITHMETIC: lhs cmp rhs, |lhs - rhs| <= tolerance counting as equal. */
	struct ex_expr *lhs, *rhs;
	enum ex_cmp cmp;
	char *tolerance; /* canonical decimal, "0" when absent */

	/* EX_RULE_CHECKSUM */
	const struct ex_checksum *checksum;
	const struct ex_field *field; /* a string field */

	/* EX_RULE_RANGE_FLAG: `value` is compared with `range` (a string such as "3.5-5.5",
	 * "<5", "≥10") or with the `low` / `high` numeric fields; `flag` must then be H above the
	 * range, L below it and normal (or null) inside it. */
	const struct ex_field *value, *range, *low, *high, *flag;
};

struct ex_page_policy {
	uint64_t pixel_budget; /* pixels per page image given to the model (default 2000000) */
	int pages_per_prompt;  /* pages per generation (default 1) */
};

struct ex_schema {
	char *path; /* the file it was loaded from */
	char *name;
	char *version;
	char *description; /* "" when absent */
	char *instruction; /* the text given to the model */
	enum ex_locale locale;
	struct ex_page_policy pages;
	double confidence_threshold; /* fields below it need review (default 0.9) */
	struct ex_field *fields;     /* top-level fields, in schema order */
	size_t n_fields;
	struct ex_rule *rules;
	size_t n_rules;
};

#define EX_SCHEMA_MAX_ERRORS 50

/* Every problem one load found, in the order found: "FILE:LINE:COLUMN: reason". */
struct ex_schema_errors {
	char **lines;
	size_t n;
	size_t n_dropped; /* problems past EX_SCHEMA_MAX_ERRORS */
};
void ex_schema_errors_done(struct ex_schema_errors *errors); /* accepts a zeroed struct */

/* Loads and checks the schema at `path`. On success *out is a new schema (free it with
 * ex_schema_free). On failure *out is NULL and the call returns -EBADMSG for a bad schema
 * (err->msg: the first problem, and how many more), or -errno when the file cannot be read;
 * `errors` (may be NULL; zeroed by the caller, freed with ex_schema_errors_done) receives
 * every problem. */
int ex_schema_load_report(const char *path, struct ex_schema **out, struct ex_schema_errors *errors,
			  vlm_err *err);
int ex_schema_load(const char *path, struct ex_schema **out, vlm_err *err);
void ex_schema_free(struct ex_schema *schema); /* accepts NULL */

/* Loads a schema by name or path: `name_or_path` is a path when it contains '/' or ends in
 * ".yaml", otherwise SCHEMA_DIR/NAME.yaml. -ENOENT names both when the schema is not there. */
int ex_schema_find(const char *name_or_path, const char *schema_dir, struct ex_schema **out,
		   vlm_err *err);

/* The field at a schema path ("items[].amount"), or NULL. */
const struct ex_field *ex_schema_field(const struct ex_schema *schema, const char *path);

#endif
