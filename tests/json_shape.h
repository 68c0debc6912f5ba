/* Whether a JSON answer has a schema's shape: exactly the schema's keys in schema order, each
 * value of its field's type, null only where the field is nullable, forced patterns matched.
 * Shared by the grammar tests; written from docs/schemas.md, independently of grammar.c. */
#ifndef INTAKE_JSON_SHAPE_H
#define INTAKE_JSON_SHAPE_H

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "schema.h"

static bool object_shape(const json_t *o, const struct ex_field *fields, size_t n);

/* Whether v is what field f allows: its type, null only when nullable, patterns when forced. */
static bool shape(const json_t *v, const struct ex_field *f)
{
	if (json_is_null(v))
		return f->nullable;
	switch (f->type) {
	case EX_TYPE_STRING:
		if (json_is_string(v) && f->constrain_pattern) {
			pcre2_match_data *md = pcre2_match_data_create(1, NULL);
			int rc = pcre2_match(f->re, (PCRE2_SPTR)json_string_value(v),
					     json_string_length(v), 0, 0, md, NULL);
			pcre2_match_data_free(md);
			if (rc < 0)
				return false;
		}
		return json_is_string(v);
	case EX_TYPE_DATE:
	case EX_TYPE_DECIMAL:
		return json_is_string(v);
	case EX_TYPE_INTEGER:
		return json_is_integer(v);
	case EX_TYPE_NUMBER:
		return json_is_number(v);
	case EX_TYPE_BOOLEAN:
		return json_is_boolean(v);
	case EX_TYPE_ENUM:
		for (size_t i = 0; json_is_string(v) && i < f->n_enum_values; i++)
			if (strcmp(json_string_value(v), f->enum_values[i]) == 0)
				return true;
		return false;
	case EX_TYPE_OBJECT:
		return object_shape(v, f->fields, f->n_fields);
	case EX_TYPE_ARRAY:
		if (!json_is_array(v))
			return false;
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!object_shape(json_array_get(v, i), f->fields, f->n_fields))
				return false;
		return true;
	case EX_TYPE_COUNT:
		break;
	}
	return false;
}

/* Exactly the fields' keys, in order (jansson keeps insertion order), each of its shape. */
static bool object_shape(const json_t *o, const struct ex_field *fields, size_t n)
{
	if (!json_is_object(o) || json_object_size(o) != n)
		return false;
	size_t k = 0;
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)o, key, val)
	{
		if (strcmp(key, fields[k].name) != 0 || !shape(val, &fields[k]))
			return false;
		k++;
	}
	return true;
}

#endif
