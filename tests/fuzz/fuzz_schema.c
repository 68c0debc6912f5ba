/* libFuzzer target: the YAML schema loader (libyaml events, field tree, patterns, rules and their
 * expression parser). Every refusal must come with at least one located problem line. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "schema.h"

/* Every scalar field is found again by its own path (objects and arrays are not values). */
static void check_fields(const struct ex_schema *schema, const struct ex_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct ex_field *f = &fields[i];
		FUZZ_CHECK(f->name && f->path && f->type < EX_TYPE_COUNT);
		if (f->type == EX_TYPE_OBJECT || f->type == EX_TYPE_ARRAY)
			check_fields(schema, f->fields, f->n_fields);
		else
			FUZZ_CHECK(ex_schema_field(schema, f->path) == f);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_memfile(data, size);
	struct ex_schema *schema = NULL;
	struct ex_schema_errors errors = { 0 };
	vlm_err err = { 0 };
	int rc = ex_schema_load_report(path, &schema, &errors, &err);
	if (rc == 0) {
		FUZZ_CHECK(schema != NULL && errors.n == 0);
		FUZZ_CHECK(schema->name && schema->instruction);
		check_fields(schema, schema->fields, schema->n_fields);
	} else {
		FUZZ_CHECK(schema == NULL && rc == -EBADMSG);
		FUZZ_CHECK(errors.n >= 1 && errors.n <= EX_SCHEMA_MAX_ERRORS);
		for (size_t i = 0; i < errors.n; i++)
			FUZZ_CHECK(strncmp(errors.lines[i], path, strlen(path)) == 0 &&
				   !strchr(errors.lines[i], '\n'));
	}
	ex_schema_errors_done(&errors);
	ex_schema_free(schema);
	return 0;
}
