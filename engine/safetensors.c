/* Safetensors reader: maps one file read-only and turns its JSON header into tensor views.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON (an object of name -> {dtype,
 * shape, data_offsets} plus an optional __metadata__ that is ignored), then the data area that
 * data_offsets index. Like the reference implementation we require the tensors to tile the data
 * area exactly (no gaps, no overlaps, no trailing bytes), so a file that was cut short or patched
 * by hand is refused at open instead of feeding garbage to the model. Each tensor's data must also
 * be aligned to its element size, which the reference writer guarantees and the ops rely on.
 * Does not convert dtypes or know anything about model tensor names. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

/* The reference implementation's limit; real headers are well under 1 MiB. */
#define ST_MAX_HEADER_BYTES (100u << 20)

struct vlm_st_file {
	char *path;
	void *map;
	size_t map_size;
	size_t n_tensors;
	struct vlm_tensor *tensors; /* sorted by name */
	char *names; /* every tensor name, NUL-separated; tensors[i].name points here */
};

/* One tensor's byte range within the data area, for the tiling check. */
struct st_span {
	uint64_t begin, end;
	struct vlm_tensor *tensor;
};

static int st_fail(vlm_err *err, int code, const char *path, const char *tensor, const char *fmt,
		   ...) __attribute__((format(printf, 5, 6)));

static int st_fail(vlm_err *err, int code, const char *path, const char *tensor, const char *fmt,
		   ...)
{
	char detail[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	if (tensor)
		return vlm_err_set(err, code, "safetensors: '%s': tensor '%s': %s", path, tensor,
				   detail);
	return vlm_err_set(err, code, "safetensors: '%s': %s", path, detail);
}

static int st_dtype_parse(const char *name, enum vlm_dtype *out)
{
	for (int d = 0; d < VLM_DTYPE_COUNT; d++) {
		if (strcmp(vlm_dtype_name((enum vlm_dtype)d), name) == 0) {
			*out = (enum vlm_dtype)d;
			return 0;
		}
	}
	return -ENOTSUP;
}

static int st_map(struct vlm_st_file *f, vlm_err *err)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return st_fail(err, -errno, f->path, NULL, "cannot open: %s", strerror(errno));
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = st_fail(err, -errno, f->path, NULL, "cannot stat: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		rc = st_fail(err, -EINVAL, f->path, NULL, "not a regular file");
	} else if (st.st_size < 8) {
		rc = st_fail(err, -EBADMSG, f->path, NULL,
			     "%lld bytes is too short for the 8-byte header length",
			     (long long)st.st_size);
	} else {
		void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			rc = st_fail(err, -errno, f->path, NULL, "cannot map: %s", strerror(errno));
		} else {
			f->map = map;
			f->map_size = (size_t)st.st_size;
		}
	}
	close(fd);
	return rc;
}

static int st_parse_shape(const struct vlm_st_file *f, const char *name, json_t *shape,
			  struct vlm_tensor *t, vlm_err *err)
{
	if (!json_is_array(shape))
		return st_fail(err, -EBADMSG, f->path, name, "'shape' is not an array");
	if (json_array_size(shape) > VLM_MAX_DIMS)
		return st_fail(err, -EBADMSG, f->path, name, "%zu dimensions, at most %d supported",
			       json_array_size(shape), VLM_MAX_DIMS);
	size_t i;
	json_t *dim;
	t->n_dims = (int)json_array_size(shape);
	json_array_foreach(shape, i, dim)
	{
		if (!json_is_integer(dim) || json_integer_value(dim) < 0)
			return st_fail(err, -EBADMSG, f->path, name,
				       "shape[%zu] is not a non-negative integer", i);
		t->shape[i] = json_integer_value(dim);
	}
	return 0;
}

static int st_parse_offsets(const struct vlm_st_file *f, const char *name, json_t *offsets,
			    struct st_span *span, vlm_err *err)
{
	json_t *b = json_array_get(offsets, 0), *e = json_array_get(offsets, 1);
	if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !json_is_integer(b) ||
	    !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
		return st_fail(err, -EBADMSG, f->path, name,
			       "'data_offsets' is not a pair of non-negative integers");
	span->begin = (uint64_t)json_integer_value(b);
	span->end = (uint64_t)json_integer_value(e);
	if (span->begin > span->end)
		return st_fail(err, -EBADMSG, f->path, name,
			       "data_offsets [%llu, %llu] begin after they end",
			       (unsigned long long)span->begin, (unsigned long long)span->end);
	return 0;
}

/* Validates one header entry (everything that does not depend on the other entries). */
static int st_parse_entry(const struct vlm_st_file *f, const char *name, json_t *entry,
			  struct vlm_tensor *t, struct st_span *span, vlm_err *err)
{
	if (!json_is_object(entry))
		return st_fail(err, -EBADMSG, f->path, name, "entry is not a JSON object");
	const char *dtype = json_string_value(json_object_get(entry, "dtype"));
	if (!dtype)
		return st_fail(err, -EBADMSG, f->path, name, "'dtype' is missing or not a string");
	if (st_dtype_parse(dtype, &t->dtype) != 0)
		return st_fail(err, -ENOTSUP, f->path, name, "unknown dtype '%s'", dtype);
	int rc = st_parse_shape(f, name, json_object_get(entry, "shape"), t, err);
	if (rc == 0)
		rc = st_parse_offsets(f, name, json_object_get(entry, "data_offsets"), span, err);
	if (rc != 0)
		return rc;

	uint64_t n_bytes = vlm_dtype_size(t->dtype);
	for (int i = 0; i < t->n_dims; i++) {
		if (__builtin_mul_overflow(n_bytes, (uint64_t)t->shape[i], &n_bytes) ||
		    n_bytes > (uint64_t)INT64_MAX)
			return st_fail(err, -EBADMSG, f->path, name,
				       "shape overflows the byte count");
	}
	if (span->end - span->begin != n_bytes)
		return st_fail(
			err, -EBADMSG, f->path, name,
			"data_offsets [%llu, %llu] hold %llu bytes but %s of this shape needs "
			"%llu",
			(unsigned long long)span->begin, (unsigned long long)span->end,
			(unsigned long long)(span->end - span->begin), dtype,
			(unsigned long long)n_bytes);
	t->n_bytes = (size_t)n_bytes;
	span->tensor = t;
	return 0;
}

static int st_span_cmp(const void *a, const void *b)
{
	const struct st_span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* The spans, sorted by begin, must tile [0, data_size) exactly. */
static int st_check_tiling(const struct vlm_st_file *f, struct st_span *spans, size_t n,
			   uint64_t data_size, vlm_err *err)
{
	qsort(spans, n, sizeof *spans, st_span_cmp);
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (spans[i].begin != at)
			return st_fail(
				err, -EBADMSG, f->path, spans[i].tensor->name,
				"data_offsets [%llu, %llu] %s the previous tensor, which ends "
				"at %llu",
				(unsigned long long)spans[i].begin,
				(unsigned long long)spans[i].end,
				spans[i].begin < at ? "overlap" : "leave a gap after",
				(unsigned long long)at);
		at = spans[i].end;
	}
	if (at > data_size)
		return st_fail(err, -EBADMSG, f->path, spans[n - 1].tensor->name,
			       "data ends at byte %llu of the data area but the file holds only "
			       "%llu bytes of data (truncated)",
			       (unsigned long long)at, (unsigned long long)data_size);
	if (at < data_size)
		return st_fail(err, -EBADMSG, f->path, NULL,
			       "%llu bytes after the last tensor's data",
			       (unsigned long long)(data_size - at));
	return 0;
}

static int st_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vlm_tensor *)a)->name, ((const struct vlm_tensor *)b)->name);
}

static int st_parse(struct vlm_st_file *f, json_t *header, size_t data_start, vlm_err *err)
{
	const char *key;
	json_t *value;
	size_t names_size = 0;
	json_object_foreach(header, key, value)
	{
		if (strcmp(key, "__metadata__") != 0) {
			f->n_tensors++;
			names_size += strlen(key) + 1;
		}
	}
	f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
	f->names = malloc(names_size ? names_size : 1);
	struct st_span *spans = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *spans);
	if (!f->tensors || !f->names || !spans) {
		free(spans);
		return vlm_err_set(err, -ENOMEM, "safetensors: '%s': out of memory", f->path);
	}

	int rc = 0;
	size_t i = 0;
	char *name = f->names;
	json_object_foreach(header, key, value)
	{
		if (strcmp(key, "__metadata__") == 0)
			continue;
		size_t len = strlen(key) + 1;
		memcpy(name, key, len);
		struct vlm_tensor *t = &f->tensors[i];
		t->name = name;
		name += len;
		rc = st_parse_entry(f, t->name, value, t, &spans[i], err);
		if (rc != 0)
			break;
		/* An empty tensor has no data to misread, so it may sit anywhere. */
		size_t align = vlm_dtype_size(t->dtype);
		if (t->n_bytes && (data_start + spans[i].begin) % align != 0) {
			rc = st_fail(err, -EBADMSG, f->path, t->name,
				     "data at file offset %llu is not aligned to %zu bytes",
				     (unsigned long long)(data_start + spans[i].begin), align);
			break;
		}
		i++;
	}
	if (rc == 0)
		rc = st_check_tiling(f, spans, f->n_tensors, f->map_size - data_start, err);
	/* Only once the tiling check has put every range inside the map may we point into it. */
	for (i = 0; rc == 0 && i < f->n_tensors; i++)
		spans[i].tensor->data = (const uint8_t *)f->map + data_start + spans[i].begin;
	free(spans);
	if (rc != 0)
		return rc;
	qsort(f->tensors, f->n_tensors, sizeof *f->tensors, st_name_cmp);
	return 0;
}

static int st_read_header(struct vlm_st_file *f, vlm_err *err)
{
	const uint8_t *p = f->map;
	uint64_t header_len = 0;
	for (int i = 7; i >= 0; i--)
		header_len = header_len << 8 | p[i];
	if (header_len < 2 || header_len > ST_MAX_HEADER_BYTES)
		return st_fail(err, -EBADMSG, f->path, NULL,
			       "header length %llu is not sane (2 to %u bytes)",
			       (unsigned long long)header_len, ST_MAX_HEADER_BYTES);
	if (header_len > f->map_size - 8)
		return st_fail(err, -EBADMSG, f->path, NULL,
			       "header length %llu runs past the end of the file (%zu bytes)",
			       (unsigned long long)header_len, f->map_size);

	json_error_t jerr;
	json_t *header =
		json_loadb((const char *)p + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!header)
		return st_fail(err, -EBADMSG, f->path, NULL,
			       "header is not valid JSON (line %d, column %d): %s", jerr.line,
			       jerr.column, jerr.text);
	int rc;
	if (!json_is_object(header))
		rc = st_fail(err, -EBADMSG, f->path, NULL, "header is not a JSON object");
	else
		rc = st_parse(f, header, 8 + (size_t)header_len, err);
	json_decref(header);
	return rc;
}

int vlm_st_open(const char *path, struct vlm_st_file **out, vlm_err *err)
{
	*out = NULL;
	struct vlm_st_file *f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return vlm_err_set(err, -ENOMEM, "safetensors: '%s': out of memory", path);
	}
	int rc = st_map(f, err);
	if (rc == 0)
		rc = st_read_header(f, err);
	if (rc != 0) {
		vlm_st_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void vlm_st_close(struct vlm_st_file *f)
{
	if (!f)
		return;
	if (f->map)
		munmap(f->map, f->map_size);
	free(f->tensors);
	free(f->names);
	free(f->path);
	free(f);
}

const char *vlm_st_path(const struct vlm_st_file *f)
{
	return f->path;
}

size_t vlm_st_count(const struct vlm_st_file *f)
{
	return f->n_tensors;
}

const struct vlm_tensor *vlm_st_tensor(const struct vlm_st_file *f, size_t i)
{
	return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct vlm_tensor *vlm_st_find(const struct vlm_st_file *f, const char *name)
{
	struct vlm_tensor key = { .name = name };
	return bsearch(&key, f->tensors, f->n_tensors, sizeof *f->tensors, st_name_cmp);
}
