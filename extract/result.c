/* The result JSON: one document per extraction, laid out in docs/result-format.md, built from a
 * validation and the caller's provenance. Owns the layout and its serialisation, and the source
 * hash; it does not decide anything about the values (validate.c did). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "fsutil.h"
#include "result.h"

int ex_file_sha256(const char *path, uint64_t *size, char hex[65], vlm_err *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vlm_err_set(err, -errno, "result: '%s': cannot open: %s", path,
				   strerror(errno));
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	uint64_t total = 0;
	int rc = 0;
	for (;;) {
		unsigned char buf[65536];
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = vlm_err_set(err, -errno, "result: '%s': cannot read: %s", path,
					 strerror(errno));
			break;
		}
		if (n == 0)
			break;
		g_checksum_update(sum, buf, (gssize)n);
		total += (uint64_t)n;
	}
	close(fd);
	if (rc == 0) {
		snprintf(hex, 65, "%s", g_checksum_get_string(sum));
		*size = total;
	}
	g_checksum_free(sum);
	return rc;
}

/* A borrowed C string as JSON: a string, or null for NULL. */
static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* A path as JSON: a file name is bytes and a JSON string is UTF-8, so a byte that is not UTF-8
 * shows as U+FFFD instead of making jansson refuse the string (which failed the whole result). */
static json_t *path_json(const char *path)
{
	char *valid = g_utf8_make_valid(path, -1);
	json_t *j = json_string(valid);
	g_free(valid);
	return j;
}

/* RFC 3339 in UTC, whole seconds: "2026-03-15T09:30:00Z". */
static json_t *rfc3339(time_t t)
{
	struct tm tm;
	char buf[32];
	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

static json_t *field_json(const struct ex_field_result *r)
{
	/* Four digits are all a reader can use, and they keep the file stable across runs. */
	double conf = round(r->confidence * 10000) / 10000;
	return json_pack("{s:O, s:b, s:O, s:f, s:o}", "value", r->value, "valid", r->valid,
			 "errors", r->errors, "confidence", conf, "page",
			 r->page > 0 ? json_integer(r->page) : json_null());
}

int ex_result_build(const struct ex_schema *schema, const struct ex_validation *v,
		    const struct ex_provenance *prov, json_t **out, vlm_err *err)
{
	*out = NULL;
	json_t *fields = json_object(), *timings = json_object();
	bool ok = fields && timings;
	for (size_t k = 0; ok && k < v->n_fields; k++)
		ok = json_object_set_new(fields, v->fields[k].path, field_json(&v->fields[k])) == 0;
	for (size_t k = 0; ok && k < prov->n_timings; k++)
		ok = json_object_set_new(timings, prov->timings[k].stage,
					 json_real(prov->timings[k].seconds)) == 0;
	json_t *doc = NULL;
	if (ok) {
		doc = json_pack(
			"{s:s, s:o, s:s, s:o, s:{s:o, s:o}, s:{s:o, s:I, s:o, s:o, s:i},"
			" s:{s:o, s:o}, s:o, s:O, s:O, s:O, s:O}",
			"intake_version", vlm_version(), "created",
			rfc3339(prov->created ? prov->created : time(NULL)), "status",
			ex_status_name(v->status), "error", str_or_null(v->error), "schema", "name",
			str_or_null(schema ? schema->name : NULL), "version",
			str_or_null(schema ? schema->version : NULL), "source", "name",
			prov->source_name ? path_json(prov->source_name) : json_null(), "size",
			(json_int_t)prov->source_size, "sha256", str_or_null(prov->source_sha256),
			"format", str_or_null(prov->format), "pages", prov->n_pages, "model", "id",
			str_or_null(prov->model_id), "weights_sha256",
			str_or_null(prov->weights_sha256), "device", str_or_null(prov->device),
			"timings_s", timings, "data", v->data ? v->data : json_null(), "fields",
			fields, "review", v->review ? v->review : json_null());
	}
	json_decref(fields);
	json_decref(timings);
	if (!doc)
		return vlm_err_set(err, -ENOMEM, "result: out of memory");
	*out = doc;
	return 0;
}

int ex_result_dumpf(const json_t *result, FILE *fp)
{
	if (json_dumpf(result, fp, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0 ||
	    fputc('\n', fp) == EOF)
		return -EIO;
	return 0;
}

/* ex_fill_fn over ex_result_dumpf. */
static int fill_result(FILE *fp, void *user, vlm_err *err)
{
	if (ex_result_dumpf(user, fp) < 0)
		return vlm_err_set(err, -EIO, "result: cannot write: %s", strerror(errno));
	return 0;
}

int ex_result_write(const json_t *result, const char *path, vlm_err *err)
{
	return ex_write_atomic(path, fill_result, (void *)result, err);
}
