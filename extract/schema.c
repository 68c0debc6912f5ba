/* The schema loader: YAML (libyaml's document API) into struct ex_schema, with every problem
 * reported as "FILE:LINE:COLUMN: reason" and loading carried on after a problem so that one
 * `intake schema check` shows them all. Also owns the field-path resolver, the arithmetic-rule
 * parser (a recursive-descent parser over a fixed grammar; nothing is ever evaluated as code)
 * and the registry of check-digit algorithms.
 *
 * Invariant: a schema that ex_schema_load returns is fully resolved (every rule points at fields
 * of the right types), so validate.c and the decoder never meet an unchecked reference.
 * Does not validate documents (validate.c) or know about the model. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "schema.h"

static const char *const type_names[] = {
	[EX_TYPE_STRING] = "string",   [EX_TYPE_INTEGER] = "integer", [EX_TYPE_NUMBER] = "number",
	[EX_TYPE_DECIMAL] = "decimal", [EX_TYPE_DATE] = "date",       [EX_TYPE_BOOLEAN] = "boolean",
	[EX_TYPE_ENUM] = "enum",       [EX_TYPE_OBJECT] = "object",   [EX_TYPE_ARRAY] = "array",
};
static_assert(sizeof type_names / sizeof type_names[0] == EX_TYPE_COUNT, "type names");

static const char *const locale_names[] = {
	[EX_LOCALE_ISO] = "iso",
	[EX_LOCALE_ZH] = "zh",
	[EX_LOCALE_EU] = "eu",
	[EX_LOCALE_US] = "us",
};
static_assert(sizeof locale_names / sizeof locale_names[0] == EX_LOCALE_COUNT, "locale names");

const char *ex_type_name(enum ex_type type)
{
	return type < EX_TYPE_COUNT ? type_names[type] : "?";
}

const char *ex_locale_name(enum ex_locale locale)
{
	return locale < EX_LOCALE_COUNT ? locale_names[locale] : "?";
}

/* ---- Check digits ----------------------------------------------------------------------- */

/* ISO 13616 IBAN: country letters, two check digits, up to 30 alphanumerics; the number with its
 * first four characters moved to the end and letters read as 10..35 is 1 modulo 97. */
static bool iban_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 15 || n > 34 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1]) ||
	    !isdigit((unsigned char)s[2]) || !isdigit((unsigned char)s[3]))
		return false;
	unsigned rem = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)s[(k + 4) % n];
		if (isdigit(c))
			rem = (rem * 10 + (c - '0')) % 97;
		else if (isupper(c))
			rem = (rem * 100 + (c - 'A' + 10)) % 97;
		else
			return false;
	}
	return rem == 1;
}

/* Luhn (ISO/IEC 7812): card numbers, IMEIs. */
static bool luhn_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 2)
		return false;
	unsigned sum = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)s[n - 1 - k];
		if (!isdigit(c))
			return false;
		unsigned d = c - '0';
		if (k % 2 == 1)
			d = d * 2 > 9 ? d * 2 - 9 : d * 2;
		sum += d;
	}
	return sum % 10 == 0;
}

/* Chinese taxpayer identification number. Since 2015 it is the 18-character unified social
 * credit code (GB 32100-2015), whose last character is a check digit over the alphabet below with
 * weights 3^i mod 31; older 15-, 17- and 20-character numbers carry no public check digit, so only
 * their form is checked. */
static bool cn_tax_id_valid(const char *s)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
	static const unsigned weights[17] = { 1,  3,  9,  27, 19, 26, 16, 17, 20,
					      29, 25, 13, 8,  24, 10, 30, 28 };
	size_t n = strlen(s);
	for (size_t k = 0; k < n; k++)
		if (!isdigit((unsigned char)s[k]) && !isupper((unsigned char)s[k]))
			return false;
	if (n != 18)
		return n >= 15 && n <= 20;
	unsigned sum = 0;
	for (size_t k = 0; k < 17; k++) {
		const char *p = strchr(alphabet, s[k]);
		if (!p)
			return false;
		sum += (unsigned)(p - alphabet) * weights[k];
	}
	unsigned check = (31 - sum % 31) % 31;
	return s[17] == alphabet[check];
}

static const struct ex_checksum checksums[] = {
	{ "iban", "IBAN mod-97 (ISO 13616)", iban_valid },
	{ "luhn", "Luhn mod-10", luhn_valid },
	{ "cn_tax_id",
	  "Chinese taxpayer number: unified social credit code check digit when 18 "
	  "characters",
	  cn_tax_id_valid },
};

const struct ex_checksum *ex_checksum_find(const char *name)
{
	for (size_t k = 0; k < sizeof checksums / sizeof checksums[0]; k++)
		if (strcmp(checksums[k].name, name) == 0)
			return &checksums[k];
	return NULL;
}

/* ---- Loader state and diagnostics --------------------------------------------------------- */

struct loader {
	const char *path;
	yaml_document_t doc;
	struct ex_schema *schema;
	struct ex_schema_errors errors;
	bool oom;
	/* Fields whose type did not load: rules naming them are not type-checked, so one typo
	 * gives one error. */
	const struct ex_field *untyped[EX_SCHEMA_MAX_ERRORS];
	size_t n_untyped;
};

static bool untyped(const struct loader *ld, const struct ex_field *f)
{
	for (size_t k = 0; k < ld->n_untyped; k++)
		if (ld->untyped[k] == f)
			return true;
	return false;
}

static void diag_at(struct loader *ld, int line, int column, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void diag_at(struct loader *ld, int line, int column, const char *fmt, ...)
{
	if (ld->errors.n >= EX_SCHEMA_MAX_ERRORS) {
		ld->errors.n_dropped++;
		return;
	}
	char reason[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	vlm_err_flatten(reason); /* a value quoted from the file may span lines */
	if (!ld->errors.lines) {
		ld->errors.lines = calloc(EX_SCHEMA_MAX_ERRORS, sizeof *ld->errors.lines);
		if (!ld->errors.lines) {
			ld->oom = true;
			return;
		}
	}
	char *line_text;
	if (asprintf(&line_text, "%s:%d:%d: %s", ld->path, line, column, reason) < 0) {
		ld->oom = true;
		return;
	}
	ld->errors.lines[ld->errors.n++] = line_text;
}

#define diag(ld, node, ...)                                                               \
	diag_at(ld, (int)(node)->start_mark.line + 1, (int)(node)->start_mark.column + 1, \
		__VA_ARGS__)

void ex_schema_errors_done(struct ex_schema_errors *errors)
{
	if (!errors)
		return;
	for (size_t k = 0; k < errors->n; k++)
		free(errors->lines[k]);
	free(errors->lines);
	*errors = (struct ex_schema_errors){ 0 };
}

static char *dup_n(struct loader *ld, const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (!d)
		ld->oom = true;
	return d;
}

static char *dup(struct loader *ld, const char *s)
{
	return dup_n(ld, s, strlen(s));
}

static void *alloc(struct loader *ld, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		ld->oom = true;
	return p;
}

/* ---- YAML node helpers ------------------------------------------------------------------ */

static yaml_node_t *node_at(struct loader *ld, int index)
{
	return yaml_document_get_node(&ld->doc, index);
}

static const char *kind_name(const yaml_node_t *node)
{
	switch (node->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "empty";
	}
}

/* The scalar's text, or NULL after reporting that `what` must be a scalar. */
static const char *scalar(struct loader *ld, yaml_node_t *node, const char *what)
{
	if (node->type == YAML_SCALAR_NODE)
		return (const char *)node->data.scalar.value;
	diag(ld, node, "'%s' must be a scalar, not %s", what, kind_name(node));
	return NULL;
}

static bool is_mapping(struct loader *ld, yaml_node_t *node, const char *what)
{
	if (node->type == YAML_MAPPING_NODE)
		return true;
	diag(ld, node, "'%s' must be a mapping, not %s", what, kind_name(node));
	return false;
}

/* Reports keys of `map` that are not scalars, not in `allowed` (NULL-terminated) or repeated. */
static void check_keys(struct loader *ld, yaml_node_t *map, const char *const *allowed,
		       const char *where)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *key = node_at(ld, p->key);
		const char *name = scalar(ld, key, "key");
		if (!name)
			continue;
		bool known = false;
		for (const char *const *a = allowed; *a && !known; a++)
			known = strcmp(*a, name) == 0;
		if (!known) {
			char list[300] = "";
			size_t used = 0;
			for (const char *const *a = allowed; *a; a++) {
				int w = snprintf(list + used, sizeof list - used, "%s%s",
						 a == allowed ? "" : ", ", *a);
				if (w < 0 || (size_t)w >= sizeof list - used)
					break;
				used += (size_t)w;
			}
			diag(ld, key, "unknown key '%s' in %s (expected: %s)", name, where, list);
		}
		for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *other = node_at(ld, q->key);
			if (other->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)other->data.scalar.value, name) == 0) {
				diag(ld, key, "duplicate key '%s' in %s", name, where);
				break;
			}
		}
	}
}

/* The value of `key` in `map` (the first one), or NULL. */
static yaml_node_t *lookup(struct loader *ld, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node_at(ld, p->key);
		if (k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return node_at(ld, p->value);
	}
	return NULL;
}

static yaml_node_t *lookup_required(struct loader *ld, yaml_node_t *map, const char *key,
				    const char *where)
{
	yaml_node_t *v = lookup(ld, map, key);
	if (!v)
		diag(ld, map, "missing required key '%s' in %s", key, where);
	return v;
}

static bool get_bool(struct loader *ld, yaml_node_t *node, const char *what, bool *out)
{
	const char *s = scalar(ld, node, what);
	if (!s)
		return false;
	if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
		*out = s[0] == 't';
		return true;
	}
	diag(ld, node, "'%s' must be true or false, not '%s'", what, s);
	return false;
}

static bool get_number(struct loader *ld, yaml_node_t *node, const char *what, double *out)
{
	const char *s = scalar(ld, node, what);
	if (!s)
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v)) {
		diag(ld, node, "'%s' must be a number, not '%s'", what, s);
		return false;
	}
	*out = v;
	return true;
}

/* A whole number in [lo, hi]. */
static bool get_count(struct loader *ld, yaml_node_t *node, const char *what, uint64_t lo,
		      uint64_t hi, uint64_t *out)
{
	const char *s = scalar(ld, node, what);
	if (!s)
		return false;
	char *end;
	errno = 0;
	unsigned long long v = isdigit((unsigned char)s[0]) ? strtoull(s, &end, 10) : 0;
	if (!isdigit((unsigned char)s[0]) || *end || errno || v < lo || v > hi) {
		diag(ld, node, "'%s' must be a whole number from %llu to %llu, not '%s'", what,
		     (unsigned long long)lo, (unsigned long long)hi, s);
		return false;
	}
	*out = v;
	return true;
}

/* ---- Fields -------------------------------------------------------------------------------- */

/* Field names become JSON keys and path segments, so they exclude the characters paths and
 * expressions use. Bytes >= 0x80 (UTF-8) are allowed, so names may be Chinese. */
static bool name_valid(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!(isalnum(c) || c == '_' || c >= 0x80))
			return false;
	}
	return true;
}

static void load_fields(struct loader *ld, yaml_node_t *map, const char *prefix,
			struct ex_field **out, size_t *n_out);

static void load_normalize_step(struct loader *ld, yaml_node_t *item, struct ex_field *f)
{
	static const struct {
		const char *name;
		unsigned bit;
	} steps[] = {
		{ "trim", EX_NORM_TRIM },
		{ "remove_spaces", EX_NORM_REMOVE_SPACES },
		{ "upper_case", EX_NORM_UPPER_CASE },
	};
	const char *s = scalar(ld, item, "normalize");
	if (!s)
		return;
	for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
		if (strcmp(steps[k].name, s) == 0) {
			f->normalize |= steps[k].bit;
			return;
		}
	diag(ld, item, "unknown normalisation '%s' (expected: trim, remove_spaces, upper_case)", s);
}

/* `normalize: trim` or `normalize: [trim, upper_case]` */
static void load_normalize(struct loader *ld, yaml_node_t *node, struct ex_field *f)
{
	if (node->type != YAML_SEQUENCE_NODE) {
		load_normalize_step(ld, node, f);
		return;
	}
	for (yaml_node_item_t *it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++)
		load_normalize_step(ld, node_at(ld, *it), f);
}

static void load_enum_values(struct loader *ld, yaml_node_t *node, struct ex_field *f)
{
	if (node->type != YAML_SEQUENCE_NODE) {
		diag(ld, node, "'values' must be a list, not %s", kind_name(node));
		return;
	}
	size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (n == 0) {
		diag(ld, node, "'values' of enum field '%s' is empty", f->name);
		return;
	}
	f->enum_values = alloc(ld, n, sizeof *f->enum_values);
	if (!f->enum_values)
		return;
	for (size_t k = 0; k < n; k++) {
		yaml_node_t *item = node_at(ld, node->data.sequence.items.start[k]);
		const char *s = scalar(ld, item, "values");
		if (!s)
			continue;
		for (size_t j = 0; j < f->n_enum_values; j++)
			if (strcmp(f->enum_values[j], s) == 0)
				diag(ld, item, "duplicate enum value '%s'", s);
		f->enum_values[f->n_enum_values++] = dup(ld, s);
	}
}

static void compile_pattern(struct loader *ld, yaml_node_t *node, struct ex_field *f)
{
	const char *s = scalar(ld, node, "pattern");
	if (!s)
		return;
	f->pattern = dup(ld, s);
	int code;
	PCRE2_SIZE offset;
	f->re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED,
			      PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &code, &offset, NULL);
	if (!f->re) {
		PCRE2_UCHAR msg[200];
		pcre2_get_error_message(code, msg, sizeof msg);
		diag(ld, node, "bad pattern for field '%s': %s at offset %zu", f->name,
		     (const char *)msg, (size_t)offset);
	}
}

static bool is_numeric(enum ex_type t)
{
	return t == EX_TYPE_INTEGER || t == EX_TYPE_NUMBER || t == EX_TYPE_DECIMAL;
}

static void load_field(struct loader *ld, yaml_node_t *key, yaml_node_t *node, const char *prefix,
		       struct ex_field *f)
{
	static const char *const keys[] = { "type",    "description",       "required", "nullable",
					    "pattern", "constrain_pattern", "values",   "min",
					    "max",     "normalize",         "fields",   NULL };
	const char *name = (const char *)key->data.scalar.value;
	f->name = dup(ld, name);
	f->line = (int)key->start_mark.line + 1;
	f->column = (int)key->start_mark.column + 1;
	f->nullable = true;
	if (asprintf(&f->path, "%s%s", prefix, name) < 0) {
		f->path = NULL;
		ld->oom = true;
		return;
	}
	if (!name_valid(name))
		diag(ld, key,
		     "field name '%s': use letters, digits and '_', not starting with a digit",
		     name);
	char where[300];
	snprintf(where, sizeof where, "field '%s'", f->path);
	if (!is_mapping(ld, node, where))
		return;
	check_keys(ld, node, keys, where);

	yaml_node_t *v = lookup_required(ld, node, "type", where);
	bool typed = false;
	const char *t = v ? scalar(ld, v, "type") : NULL;
	if (t) {
		for (int k = 0; k < EX_TYPE_COUNT && !typed; k++)
			if (strcmp(type_names[k], t) == 0) {
				f->type = (enum ex_type)k;
				typed = true;
			}
		if (!typed)
			diag(ld, v,
			     "unknown type '%s' for field '%s' (expected: string, integer, "
			     "number, decimal, date, boolean, enum, object, array)",
			     t, f->path);
	}
	const char *desc =
		(v = lookup(ld, node, "description")) ? scalar(ld, v, "description") : NULL;
	f->description = dup(ld, desc ? desc : "");
	if ((v = lookup(ld, node, "required")))
		get_bool(ld, v, "required", &f->required);
	if ((v = lookup(ld, node, "nullable")))
		get_bool(ld, v, "nullable", &f->nullable);
	if ((v = lookup(ld, node, "normalize")))
		load_normalize(ld, v, f);
	if (!typed) {
		if (ld->n_untyped < EX_SCHEMA_MAX_ERRORS)
			ld->untyped[ld->n_untyped++] = f;
		return; /* the remaining keys depend on the type */
	}

	if ((v = lookup(ld, node, "pattern"))) {
		if (f->type != EX_TYPE_STRING)
			diag(ld, v, "'pattern' applies to string fields, and '%s' is %s", f->path,
			     type_names[f->type]);
		else
			compile_pattern(ld, v, f);
	}
	if ((v = lookup(ld, node, "constrain_pattern")) &&
	    get_bool(ld, v, "constrain_pattern", &f->constrain_pattern) && f->constrain_pattern &&
	    !lookup(ld, node, "pattern"))
		diag(ld, v, "'constrain_pattern' needs a 'pattern' on field '%s'", f->path);

	v = f->type == EX_TYPE_ENUM ? lookup_required(ld, node, "values", where)
				    : lookup(ld, node, "values");
	if (v && f->type != EX_TYPE_ENUM)
		diag(ld, v, "'values' applies to enum fields, and '%s' is %s", f->path,
		     type_names[f->type]);
	else if (v)
		load_enum_values(ld, v, f);

	const char *bound_keys[2] = { "min", "max" };
	for (int b = 0; b < 2; b++) {
		if (!(v = lookup(ld, node, bound_keys[b])))
			continue;
		if (!is_numeric(f->type)) {
			diag(ld, v,
			     "'%s' applies to integer, number and decimal fields, and '%s' is "
			     "%s",
			     bound_keys[b], f->path, type_names[f->type]);
			continue;
		}
		if (b == 0)
			f->has_min = get_number(ld, v, "min", &f->min);
		else
			f->has_max = get_number(ld, v, "max", &f->max);
	}
	if (f->has_min && f->has_max && f->min > f->max)
		diag(ld, node, "field '%s': min %g is above max %g", f->path, f->min, f->max);

	bool container = f->type == EX_TYPE_OBJECT || f->type == EX_TYPE_ARRAY;
	v = container ? lookup_required(ld, node, "fields", where) : lookup(ld, node, "fields");
	if (v && !container) {
		diag(ld, v, "'fields' applies to object and array fields, and '%s' is %s", f->path,
		     type_names[f->type]);
	} else if (v) {
		char sub[300];
		snprintf(sub, sizeof sub, "%s%s", f->path, f->type == EX_TYPE_ARRAY ? "[]." : ".");
		load_fields(ld, v, sub, &f->fields, &f->n_fields);
	}
}

static void load_fields(struct loader *ld, yaml_node_t *map, const char *prefix,
			struct ex_field **out, size_t *n_out)
{
	if (!is_mapping(ld, map, "fields"))
		return;
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	if (n == 0) {
		diag(ld, map, "'fields' is empty");
		return;
	}
	struct ex_field *fields = alloc(ld, n, sizeof *fields);
	if (!fields)
		return;
	*out = fields;
	for (size_t k = 0; k < n; k++) {
		yaml_node_pair_t *p = &map->data.mapping.pairs.start[k];
		yaml_node_t *key = node_at(ld, p->key);
		const char *name = scalar(ld, key, "field name");
		if (!name)
			continue;
		bool repeated = false;
		for (size_t j = 0; j < *n_out && !repeated; j++)
			repeated = strcmp(fields[j].name, name) == 0;
		if (repeated) {
			diag(ld, key, "duplicate field '%s%s'", prefix, name);
			continue;
		}
		load_field(ld, key, node_at(ld, p->value), prefix, &fields[(*n_out)++]);
		if (ld->oom)
			return;
	}
}

/* ---- Paths --------------------------------------------------------------------------------- */

/* Resolves the schema path s[0..len) ("seller.name", "items[].amount") among `fields`. On success
 * *each is the array crossed with "[]" (or NULL); on failure `why` says what is wrong. Rules reach
 * into one level of arrays. */
static const struct ex_field *resolve(const struct ex_field *fields, size_t n_fields, const char *s,
				      size_t len, const struct ex_field **each, char *why,
				      size_t why_size)
{
	const struct ex_field *f = NULL;
	*each = NULL;
	size_t i = 0;
	for (;;) {
		size_t start = i;
		while (i < len && s[i] != '.' && s[i] != '[')
			i++;
		int seg = (int)(i - start);
		f = NULL;
		for (size_t k = 0; k < n_fields && !f; k++)
			if (strlen(fields[k].name) == (size_t)seg &&
			    memcmp(fields[k].name, s + start, (size_t)seg) == 0)
				f = &fields[k];
		if (!f) {
			snprintf(why, why_size, "unknown field '%.*s'", (int)i, s);
			return NULL;
		}
		bool brackets = i + 1 < len && s[i] == '[' && s[i + 1] == ']';
		if (i < len && s[i] == '[' && !brackets) {
			snprintf(why, why_size, "'%.*s': write '[]' for every element", (int)i, s);
			return NULL;
		}
		if (brackets) {
			if (f->type != EX_TYPE_ARRAY) {
				snprintf(why, why_size, "'%.*s' is not an array", (int)i, s);
				return NULL;
			}
			if (*each) {
				snprintf(why, why_size,
					 "'%.*s': rules reach into one level of arrays", (int)i, s);
				return NULL;
			}
			*each = f;
			i += 2;
		}
		if (i == len)
			break;
		if (s[i] != '.' || i + 1 == len) {
			snprintf(why, why_size, "malformed path '%.*s'", (int)len, s);
			return NULL;
		}
		if (f->type == EX_TYPE_ARRAY && !brackets) {
			snprintf(why, why_size, "'%.*s' is an array: write '%.*s[]'", (int)i, s,
				 (int)i, s);
			return NULL;
		}
		if (f->type != EX_TYPE_OBJECT && f->type != EX_TYPE_ARRAY) {
			snprintf(why, why_size, "'%.*s' is %s, not an object", (int)i, s,
				 type_names[f->type]);
			return NULL;
		}
		fields = f->fields;
		n_fields = f->n_fields;
		i++;
	}
	if (f->type == EX_TYPE_ARRAY && !*each) {
		snprintf(why, why_size, "'%.*s' is an array: name one of its fields", (int)len, s);
		return NULL;
	}
	if (f->type == EX_TYPE_OBJECT || (f->type == EX_TYPE_ARRAY && *each == f)) {
		snprintf(why, why_size, "'%.*s' is %s: name one of its fields", (int)len, s,
			 type_names[f->type]);
		return NULL;
	}
	return f;
}

const struct ex_field *ex_schema_field(const struct ex_schema *schema, const char *path)
{
	const struct ex_field *each;
	char why[200];
	return resolve(schema->fields, schema->n_fields, path, strlen(path), &each, why,
		       sizeof why);
}

/* ---- Rules --------------------------------------------------------------------------------- */

/* Where a rule's text sits in the file, so a problem at offset k of it gets its own column. */
struct rule_src {
	yaml_node_t *node;
	const char *text;
	const struct ex_field *each; /* the array the rule is checked per element of, once known */
	bool failed;                 /* one problem per rule: the first */
};

static void rule_diag(struct loader *ld, struct rule_src *rs, size_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void rule_diag(struct loader *ld, struct rule_src *rs, size_t offset, const char *fmt, ...)
{
	if (rs->failed)
		return;
	rs->failed = true;
	const yaml_node_t *n = rs->node;
	int line = (int)n->start_mark.line + 1, column = (int)n->start_mark.column + 1;
	/* Columns inside the text are exact for a scalar on one line, quoted or plain. */
	if (n->start_mark.line == n->end_mark.line && !strchr(rs->text, '\n')) {
		bool quoted = n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
			      n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		size_t chars = 0;
		for (size_t k = 0; k < offset; k++)
			chars += ((unsigned char)rs->text[k] & 0xc0) != 0x80;
		column += (int)chars + quoted;
	}
	char reason[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	diag_at(ld, line, column, "%s", reason);
}

/* Resolves a path in a rule and checks it against the rule's array: every "[]" path outside
 * sum() must cross the same array. `aggregate`: the path is summed, so it must cross an array. */
static const struct ex_field *rule_field(struct loader *ld, struct rule_src *rs, size_t off,
					 size_t len, bool aggregate)
{
	const struct ex_field *each;
	char why[200];
	const struct ex_field *f = resolve(ld->schema->fields, ld->schema->n_fields, rs->text + off,
					   len, &each, why, sizeof why);
	if (!f) {
		rule_diag(ld, rs, off, "rule references %s", why);
		return NULL;
	}
	if (aggregate && !each) {
		rule_diag(ld, rs, off,
			  "sum() needs an array path such as 'items[].amount', not '%.*s'",
			  (int)len, rs->text + off);
		return NULL;
	}
	if (!aggregate && each) {
		if (rs->each && rs->each != each) {
			rule_diag(ld, rs, off, "rule mixes elements of '%s' and '%s'",
				  rs->each->path, each->path);
			return NULL;
		}
		rs->each = each;
	}
	return f;
}

/* Parentheses and minus signs nest factors; deeper than this is refused rather than recursed
 * into (a rule's text is bounded only by the file). */
#define EXPR_MAX_DEPTH 64

struct expr_parser {
	struct loader *ld;
	struct rule_src *rs;
	size_t pos;
	int depth; /* factors open around the one being parsed */
};

static void skip_space(struct expr_parser *p)
{
	while (p->rs->text[p->pos] == ' ' || p->rs->text[p->pos] == '\t')
		p->pos++;
}

static bool path_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '[' || c == ']' || c >= 0x80;
}

static void expr_free(struct ex_expr *e)
{
	if (!e)
		return;
	expr_free(e->a);
	expr_free(e->b);
	free(e->number);
	free(e);
}

static struct ex_expr *expr_new(struct expr_parser *p, enum ex_expr_op op, struct ex_expr *a,
				struct ex_expr *b)
{
	struct ex_expr *e = alloc(p->ld, 1, sizeof *e);
	if (!e) {
		expr_free(a);
		expr_free(b);
		return NULL;
	}
	e->op = op;
	e->a = a;
	e->b = b;
	return e;
}

static const char *numeric_types = "integer, number or decimal";

static struct ex_expr *parse_sum(struct expr_parser *p);
static struct ex_expr *parse_factor(struct expr_parser *p);

/* '-' factor and '(' sum ')', one level deeper. */
static struct ex_expr *parse_nested(struct expr_parser *p)
{
	const char *s = p->rs->text;
	size_t start = p->pos;
	if (p->depth >= EXPR_MAX_DEPTH) {
		rule_diag(p->ld, p->rs, start, "expression nested more than %d deep",
			  EXPR_MAX_DEPTH);
		return NULL;
	}
	p->depth++;
	p->pos++;
	struct ex_expr *e;
	if (s[start] == '-') {
		struct ex_expr *a = parse_factor(p);
		e = a ? expr_new(p, EX_EXPR_NEG, a, NULL) : NULL;
	} else {
		e = parse_sum(p);
		skip_space(p);
		/* After a failed operand pos may sit on the terminating NUL: never step past it. */
		if (e && s[p->pos] != ')') {
			rule_diag(p->ld, p->rs, p->pos, "expected ')'");
			expr_free(e);
			e = NULL;
		} else if (e) {
			p->pos++;
		}
	}
	p->depth--;
	return e;
}

/* factor := NUMBER | PATH | 'sum' '(' PATH ')' | '(' sum ')' | '-' factor */
static struct ex_expr *parse_factor(struct expr_parser *p)
{
	const char *s = p->rs->text;
	skip_space(p);
	size_t start = p->pos;
	if (s[start] == '-' || s[start] == '(')
		return parse_nested(p);
	if (isdigit((unsigned char)s[start])) {
		while (isdigit((unsigned char)s[p->pos]))
			p->pos++;
		if (s[p->pos] == '.' && isdigit((unsigned char)s[p->pos + 1]))
			for (p->pos++; isdigit((unsigned char)s[p->pos]);)
				p->pos++;
		struct ex_expr *e = expr_new(p, EX_EXPR_NUMBER, NULL, NULL);
		if (e && !(e->number = dup_n(p->ld, s + start, p->pos - start))) {
			expr_free(e);
			return NULL;
		}
		return e;
	}
	if (!path_char((unsigned char)s[start]) || s[start] == '.' || s[start] == '[' ||
	    s[start] == ']') {
		if (s[start])
			rule_diag(p->ld, p->rs, start,
				  "expected a number, a field or sum(...) at '%c'", s[start]);
		else
			rule_diag(p->ld, p->rs, start, "expression ends early");
		return NULL;
	}
	while (path_char((unsigned char)s[p->pos]))
		p->pos++;
	size_t len = p->pos - start;
	bool is_sum = len == 3 && memcmp(s + start, "sum", 3) == 0;
	skip_space(p);
	if (is_sum && s[p->pos] == '(') {
		p->pos++;
		skip_space(p);
		size_t arg = p->pos;
		while (path_char((unsigned char)s[p->pos]))
			p->pos++;
		size_t arg_len = p->pos - arg;
		skip_space(p);
		if (arg_len == 0 || s[p->pos] != ')') {
			rule_diag(p->ld, p->rs, p->pos, "sum() takes one field path");
			return NULL;
		}
		p->pos++;
		const struct ex_field *f = rule_field(p->ld, p->rs, arg, arg_len, true);
		if (f && !is_numeric(f->type) && !untyped(p->ld, f)) {
			rule_diag(p->ld, p->rs, arg, "type mismatch: '%s' is %s, sum() needs %s",
				  f->path, type_names[f->type], numeric_types);
			return NULL;
		}
		struct ex_expr *e = f ? expr_new(p, EX_EXPR_SUM, NULL, NULL) : NULL;
		if (e)
			e->field = f;
		return e;
	}
	const struct ex_field *f = rule_field(p->ld, p->rs, start, len, false);
	if (f && !is_numeric(f->type) && !untyped(p->ld, f)) {
		rule_diag(p->ld, p->rs, start, "type mismatch: '%s' is %s, arithmetic needs %s",
			  f->path, type_names[f->type], numeric_types);
		return NULL;
	}
	struct ex_expr *e = f ? expr_new(p, EX_EXPR_FIELD, NULL, NULL) : NULL;
	if (e)
		e->field = f;
	return e;
}

/* product := factor ('*' factor)* */
static struct ex_expr *parse_product(struct expr_parser *p)
{
	struct ex_expr *e = parse_factor(p);
	for (;;) {
		skip_space(p);
		if (!e || p->rs->text[p->pos] != '*')
			return e;
		p->pos++;
		struct ex_expr *b = parse_factor(p);
		e = b ? expr_new(p, EX_EXPR_MUL, e, b) : (expr_free(e), NULL);
	}
}

/* sum := product (('+' | '-') product)* */
static struct ex_expr *parse_sum(struct expr_parser *p)
{
	struct ex_expr *e = parse_product(p);
	for (;;) {
		skip_space(p);
		char c = p->rs->text[p->pos];
		if (!e || (c != '+' && c != '-'))
			return e;
		p->pos++;
		struct ex_expr *b = parse_product(p);
		e = b ? expr_new(p, c == '+' ? EX_EXPR_ADD : EX_EXPR_SUB, e, b)
		      : (expr_free(e), NULL);
	}
}

/* check := sum ('==' | '<=' | '>=') sum */
static void parse_check(struct loader *ld, struct rule_src *rs, struct ex_rule *r)
{
	static const char *const ops[EX_CMP_COUNT] = { "==", "<=", ">=" };
	struct expr_parser p = { .ld = ld, .rs = rs };
	r->lhs = parse_sum(&p);
	if (!r->lhs)
		return;
	skip_space(&p);
	int cmp = 0;
	while (cmp < EX_CMP_COUNT && strncmp(rs->text + p.pos, ops[cmp], 2) != 0)
		cmp++;
	if (cmp == EX_CMP_COUNT) {
		rule_diag(ld, rs, p.pos, "expected '==', '<=' or '>='%s",
			  rs->text[p.pos] == '=' ? " (comparison is '==')" : "");
		return;
	}
	r->cmp = (enum ex_cmp)cmp;
	p.pos += 2;
	r->rhs = parse_sum(&p);
	skip_space(&p);
	if (r->rhs && rs->text[p.pos])
		rule_diag(ld, rs, p.pos, "unexpected '%s' after the expression", rs->text + p.pos);
}

/* A literal written as digits with an optional fraction: "0.01". */
static bool plain_decimal(const char *s)
{
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

static void load_arithmetic(struct loader *ld, yaml_node_t *map, yaml_node_t *v, struct ex_rule *r)
{
	r->kind = EX_RULE_ARITHMETIC;
	const char *text = scalar(ld, v, "check");
	if (!text)
		return;
	r->text = dup(ld, text);
	struct rule_src rs = { .node = v, .text = text };
	parse_check(ld, &rs, r);
	r->each = rs.each;
	yaml_node_t *tol = lookup(ld, map, "tolerance");
	const char *t = tol ? scalar(ld, tol, "tolerance") : "0";
	if (t && !plain_decimal(t))
		diag(ld, tol, "'tolerance' must be a non-negative decimal such as 0.01, not '%s'",
		     t);
	else if (t)
		r->tolerance = dup(ld, t);
}

/* A path-valued key of a rule: resolved, typed, and on the rule's array if any. */
static const struct ex_field *rule_path(struct loader *ld, yaml_node_t *map, const char *key,
					bool required, const char *where, struct rule_src *rs,
					const enum ex_type *types, size_t n_types)
{
	yaml_node_t *v = required ? lookup_required(ld, map, key, where) : lookup(ld, map, key);
	const char *s = v ? scalar(ld, v, key) : NULL;
	if (!s)
		return NULL;
	struct rule_src one = { .node = v, .text = s, .each = rs->each };
	const struct ex_field *f = rule_field(ld, &one, 0, strlen(s), false);
	if (!f)
		return NULL;
	rs->each = one.each;
	bool ok = untyped(ld, f);
	for (size_t k = 0; k < n_types; k++)
		ok |= f->type == types[k];
	if (!ok) {
		char list[100] = "";
		size_t used = 0;
		for (size_t k = 0; k < n_types; k++) {
			int w = snprintf(list + used, sizeof list - used, "%s%s",
					 k ? (k + 1 == n_types ? " or " : ", ") : "",
					 type_names[types[k]]);
			if (w > 0 && (size_t)w < sizeof list - used)
				used += (size_t)w;
		}
		diag(ld, v, "type mismatch: '%s' is %s, '%s' needs %s", f->path,
		     type_names[f->type], key, list);
		return NULL;
	}
	return f;
}

static void load_checksum(struct loader *ld, yaml_node_t *map, yaml_node_t *v, struct ex_rule *r)
{
	static const enum ex_type string_type[] = { EX_TYPE_STRING };
	r->kind = EX_RULE_CHECKSUM;
	const char *name = scalar(ld, v, "checksum");
	if (name && !(r->checksum = ex_checksum_find(name)))
		diag(ld, v, "unknown checksum '%s' (expected: iban, luhn, cn_tax_id)", name);
	struct rule_src rs = { .node = map };
	r->field = rule_path(ld, map, "field", true, "checksum rule", &rs, string_type, 1);
	r->each = rs.each;
	if (r->checksum && r->field &&
	    asprintf(&r->text, "checksum %s(%s)", r->checksum->name, r->field->path) < 0) {
		r->text = NULL;
		ld->oom = true;
	}
}

static void load_range_flag(struct loader *ld, yaml_node_t *v, struct ex_rule *r)
{
	static const char *const keys[] = { "value", "range", "low", "high", "flag", NULL };
	static const enum ex_type value_types[] = { EX_TYPE_DECIMAL, EX_TYPE_NUMBER,
						    EX_TYPE_INTEGER, EX_TYPE_STRING };
	static const enum ex_type range_types[] = { EX_TYPE_STRING };
	static const enum ex_type flag_types[] = { EX_TYPE_ENUM, EX_TYPE_STRING };
	r->kind = EX_RULE_RANGE_FLAG;
	if (!is_mapping(ld, v, "range_flag"))
		return;
	check_keys(ld, v, keys, "range_flag");
	struct rule_src rs = { .node = v };
	r->value = rule_path(ld, v, "value", true, "range_flag", &rs, value_types, 4);
	r->flag = rule_path(ld, v, "flag", true, "range_flag", &rs, flag_types, 2);
	r->range = rule_path(ld, v, "range", false, "range_flag", &rs, range_types, 1);
	r->low = rule_path(ld, v, "low", false, "range_flag", &rs, value_types, 4);
	r->high = rule_path(ld, v, "high", false, "range_flag", &rs, value_types, 4);
	bool has_range = lookup(ld, v, "range"),
	     has_bounds = lookup(ld, v, "low") || lookup(ld, v, "high");
	if (has_range == has_bounds)
		diag(ld, v, "range_flag needs either 'range' or 'low'/'high'");
	r->each = rs.each;
	if (r->value && r->flag &&
	    asprintf(&r->text, "range_flag %s vs %s", r->value->path, r->flag->path) < 0) {
		r->text = NULL;
		ld->oom = true;
	}
}

static void load_rules(struct loader *ld, yaml_node_t *seq)
{
	static const char *const keys[] = { "check", "tolerance",  "checksum",
					    "field", "range_flag", NULL };
	if (seq->type != YAML_SEQUENCE_NODE) {
		diag(ld, seq, "'rules' must be a list, not %s", kind_name(seq));
		return;
	}
	size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
	struct ex_schema *s = ld->schema;
	if (n == 0 || !(s->rules = alloc(ld, n, sizeof *s->rules)))
		return;
	for (size_t k = 0; k < n; k++) {
		yaml_node_t *map = node_at(ld, seq->data.sequence.items.start[k]);
		if (!is_mapping(ld, map, "rule"))
			continue;
		check_keys(ld, map, keys, "rule");
		struct ex_rule *r = &s->rules[s->n_rules++];
		r->line = (int)map->start_mark.line + 1;
		r->column = (int)map->start_mark.column + 1;
		yaml_node_t *check = lookup(ld, map, "check"), *sum = lookup(ld, map, "checksum"),
			    *range = lookup(ld, map, "range_flag");
		if ((check != NULL) + (sum != NULL) + (range != NULL) != 1)
			diag(ld, map,
			     "a rule has exactly one of 'check', 'checksum', 'range_flag'");
		else if (check)
			load_arithmetic(ld, map, check, r);
		else if (sum)
			load_checksum(ld, map, sum, r);
		else
			load_range_flag(ld, range, r);
		if (!check && lookup(ld, map, "tolerance"))
			diag(ld, lookup(ld, map, "tolerance"),
			     "'tolerance' applies to 'check' rules");
		if (!sum && lookup(ld, map, "field"))
			diag(ld, lookup(ld, map, "field"), "'field' applies to 'checksum' rules");
	}
}

/* ---- Top level ----------------------------------------------------------------------------- */

static void load_pages(struct loader *ld, yaml_node_t *map)
{
	static const char *const keys[] = { "pixel_budget", "per_prompt", NULL };
	if (!is_mapping(ld, map, "pages"))
		return;
	check_keys(ld, map, keys, "pages");
	yaml_node_t *v;
	uint64_t n;
	if ((v = lookup(ld, map, "pixel_budget")) &&
	    get_count(ld, v, "pixel_budget", 65536, 100000000, &n))
		ld->schema->pages.pixel_budget = n;
	if ((v = lookup(ld, map, "per_prompt")) && get_count(ld, v, "per_prompt", 1, 64, &n))
		ld->schema->pages.pages_per_prompt = (int)n;
}

static void load_root(struct loader *ld, yaml_node_t *root)
{
	static const char *const keys[] = {
		"name",   "version", "description",          "instruction",
		"locale", "pages",   "confidence_threshold", "fields",
		"rules",  NULL
	};
	struct ex_schema *s = ld->schema;
	if (!is_mapping(ld, root, "schema"))
		return;
	check_keys(ld, root, keys, "schema");
	const char *text;
	yaml_node_t *v;
	static const char *const strings[] = { "name", "version", "instruction" };
	char **slots[] = { &s->name, &s->version, &s->instruction };
	for (int k = 0; k < 3; k++)
		if ((v = lookup_required(ld, root, strings[k], "schema")) &&
		    (text = scalar(ld, v, strings[k])))
			*slots[k] = dup(ld, text);
	if (s->name && !name_valid(s->name))
		diag(ld, lookup(ld, root, "name"), "schema name '%s': use letters, digits and '_'",
		     s->name);
	text = (v = lookup(ld, root, "description")) ? scalar(ld, v, "description") : NULL;
	s->description = dup(ld, text ? text : "");
	if ((v = lookup(ld, root, "locale")) && (text = scalar(ld, v, "locale"))) {
		int k = 0;
		while (k < EX_LOCALE_COUNT && strcmp(locale_names[k], text) != 0)
			k++;
		if (k == EX_LOCALE_COUNT)
			diag(ld, v, "unknown locale '%s' (expected: iso, zh, eu, us)", text);
		else
			s->locale = (enum ex_locale)k;
	}
	if ((v = lookup(ld, root, "pages")))
		load_pages(ld, v);
	double t;
	if ((v = lookup(ld, root, "confidence_threshold")) &&
	    get_number(ld, v, "confidence_threshold", &t)) {
		if (t < 0 || t > 1)
			diag(ld, v, "'confidence_threshold' must be from 0 to 1, not %g", t);
		else
			s->confidence_threshold = t;
	}
	if ((v = lookup_required(ld, root, "fields", "schema")))
		load_fields(ld, v, "", &s->fields, &s->n_fields);
	if ((v = lookup(ld, root, "rules")) && !ld->oom)
		load_rules(ld, v);
}

static void field_done(struct ex_field *f)
{
	free(f->name);
	free(f->path);
	free(f->description);
	free(f->pattern);
	pcre2_code_free(f->re);
	for (size_t k = 0; k < f->n_enum_values; k++)
		free(f->enum_values[k]);
	free(f->enum_values);
	for (size_t k = 0; k < f->n_fields; k++)
		field_done(&f->fields[k]);
	free(f->fields);
}

void ex_schema_free(struct ex_schema *s)
{
	if (!s)
		return;
	for (size_t k = 0; k < s->n_fields; k++)
		field_done(&s->fields[k]);
	free(s->fields);
	for (size_t k = 0; k < s->n_rules; k++) {
		struct ex_rule *r = &s->rules[k];
		free(r->text);
		expr_free(r->lhs);
		expr_free(r->rhs);
		free(r->tolerance);
	}
	free(s->rules);
	free(s->path);
	free(s->name);
	free(s->version);
	free(s->description);
	free(s->instruction);
	free(s);
}

int ex_schema_load_report(const char *path, struct ex_schema **out, struct ex_schema_errors *errors,
			  vlm_err *err)
{
	*out = NULL;
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return vlm_err_set(err, -errno, "schema: '%s': cannot open: %s", path,
				   strerror(errno));
	struct loader ld = { .path = path };
	yaml_parser_t parser;
	int rc = 0;
	bool have_doc = false;
	if (!yaml_parser_initialize(&parser)) {
		fclose(fp);
		return vlm_err_set(err, -ENOMEM, "schema: '%s': out of memory", path);
	}
	yaml_parser_set_input_file(&parser, fp);
	ld.schema = alloc(&ld, 1, sizeof *ld.schema);
	if (!ld.schema)
		goto done;
	*ld.schema = (struct ex_schema){ .pages = { 2000000, 1 }, .confidence_threshold = 0.9 };
	ld.schema->path = dup(&ld, path);
	if (!yaml_parser_load(&parser, &ld.doc)) {
		diag_at(&ld, (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
			"YAML syntax: %s%s%s", parser.problem ? parser.problem : "error",
			parser.context ? " " : "", parser.context ? parser.context : "");
		goto done;
	}
	have_doc = true;
	yaml_node_t *root = yaml_document_get_root_node(&ld.doc);
	if (!root)
		diag_at(&ld, 1, 1, "empty schema");
	else
		load_root(&ld, root);
done:
	if (have_doc)
		yaml_document_delete(&ld.doc);
	yaml_parser_delete(&parser);
	if (ferror(fp))
		rc = vlm_err_set(err, -EIO, "schema: '%s': read error", path);
	fclose(fp);
	if (rc == 0 && ld.oom)
		rc = vlm_err_set(err, -ENOMEM, "schema: '%s': out of memory", path);
	else if (rc == 0 && (ld.errors.n || ld.errors.n_dropped)) {
		size_t more = ld.errors.n - 1 + ld.errors.n_dropped;
		if (more)
			rc = vlm_err_set(err, -EBADMSG, "%s (and %zu more)", ld.errors.lines[0],
					 more);
		else
			rc = vlm_err_set(err, -EBADMSG, "%s", ld.errors.lines[0]);
	}
	if (rc < 0) {
		ex_schema_free(ld.schema);
		ld.schema = NULL;
	}
	if (errors)
		*errors = ld.errors;
	else
		ex_schema_errors_done(&ld.errors);
	*out = ld.schema;
	return rc;
}

int ex_schema_load(const char *path, struct ex_schema **out, vlm_err *err)
{
	return ex_schema_load_report(path, out, NULL, err);
}

int ex_schema_find(const char *name_or_path, const char *schema_dir, struct ex_schema **out,
		   vlm_err *err)
{
	size_t n = strlen(name_or_path);
	if (strchr(name_or_path, '/') || (n >= 5 && strcmp(name_or_path + n - 5, ".yaml") == 0))
		return ex_schema_load(name_or_path, out, err);
	*out = NULL;
	if (!name_valid(name_or_path))
		return vlm_err_set(err, -EINVAL, "schema: '%s': not a schema name", name_or_path);
	char *path;
	if (asprintf(&path, "%s/%s.yaml", schema_dir, name_or_path) < 0)
		return vlm_err_set(err, -ENOMEM, "schema: '%s': out of memory", name_or_path);
	int rc = ex_schema_load(path, out, err);
	if (rc == -ENOENT)
		vlm_err_set(err, rc, "schema: '%s': no such schema (looked for '%s')", name_or_path,
			    path);
	free(path);
	return rc;
}
