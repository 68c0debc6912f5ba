/* The result of one extraction as JSON (docs/result-format.md): status, values with their checks
 * and confidences, what needs review, and provenance (source, schema, model, device, timings). */
#ifndef EX_RESULT_H
#define EX_RESULT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "schema.h"
#include "validate.h"

struct ex_stage_time {
	const char *stage; /* "ingest", "prefill", "decode", "validate", ... */
	double seconds;
};

/* Where a result came from; every pointer is borrowed and may be NULL (written as null). */
struct ex_provenance {
	const char *source_name;   /* the document's path as given */
	uint64_t source_size;      /* bytes */
	const char *source_sha256; /* 64 hex digits (ex_file_sha256) */
	const char *format;        /* ex_format_name(), NULL when ingest refused the file */
	int n_pages;
	const char *model_id;       /* the model's name or directory */
	const char *weights_sha256; /* SHA-256 of the model's weights index, hex */
	const char *device;         /* "cpu", "cuda:0" */
	const struct ex_stage_time *timings;
	size_t n_timings;
	time_t created; /* when the result was made; 0 means now */
};

/* SHA-256 (GLib GChecksum) and size of a file, read in chunks. hex gets 64 lower-case digits. */
int ex_file_sha256(const char *path, uint64_t *size, char hex[65], vlm_err *err);

/* Builds the result document. `schema` may be NULL when no schema could be loaded (then `v`
 * must be a failed validation). *out is a new reference. Returns 0 or -ENOMEM. */
int ex_result_build(const struct ex_schema *schema, const struct ex_validation *v,
		    const struct ex_provenance *prov, json_t **out, vlm_err *err);

/* Writes the result as indented JSON with a final newline: to a stream, or atomically to a file
 * (ex_write_atomic). Return 0 or a negative errno. */
int ex_result_dumpf(const json_t *result, FILE *fp);
int ex_result_write(const json_t *result, const char *path, vlm_err *err);

#endif
