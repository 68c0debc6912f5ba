/* libFuzzer target: result validation of arbitrary JSON against each shipped schema (normalising
 * decimals and dates, patterns, enums, ranges, the cross-field rules and the review list). Every
 * answer gets a status; a usable one has data and a result per value. */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "validate.h"

static const char *const schema_names[] = { "invoice", "lab_report", "nameplate" };
#define N_SCHEMAS (sizeof schema_names / sizeof schema_names[0])
static struct ex_schema *schemas[N_SCHEMAS];

static void free_schemas(void)
{
	for (size_t i = 0; i < N_SCHEMAS; i++)
		ex_schema_free(schemas[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[FUZZ_PATH_SIZE];
	fuzz_source_path(dir, "schemas");
	for (size_t i = 0; i < N_SCHEMAS; i++) {
		vlm_err err = { 0 };
		if (ex_schema_find(schema_names[i], dir, &schemas[i], &err) != 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(2);
		}
	}
	atexit(free_schemas);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *output = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!output)
		return -1;
	for (size_t i = 0; i < N_SCHEMAS; i++) {
		struct ex_validation *v = NULL;
		vlm_err err = { 0 };
		FUZZ_CHECK(ex_validate(schemas[i], output, NULL, 0, &v, &err) == 0 && v);
		FUZZ_CHECK(v->status < EX_STATUS_COUNT);
		if (v->status == EX_STATUS_FAILED) {
			FUZZ_CHECK(v->error && v->error[0]);
		} else {
			FUZZ_CHECK(json_is_object(v->data) && json_is_array(v->review));
			/* Without evidence no value is confident, so a usable answer needs review. */
			FUZZ_CHECK(v->status == EX_STATUS_NEEDS_REVIEW || v->n_fields == 0);
			for (size_t f = 0; f < v->n_fields; f++)
				FUZZ_CHECK(v->fields[f].path && json_is_array(v->fields[f].errors));
			char *dump = json_dumps(v->data, JSON_COMPACT);
			FUZZ_CHECK(dump != NULL);
			free(dump);
		}
		ex_validation_free(v);
	}
	json_decref(output);
	return 0;
}
