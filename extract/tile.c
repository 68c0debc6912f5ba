/* The page policy (tile.h): prompts per document, page sizes under a pixel budget, the
 * area-averaging downscale, and the merge of several prompts' answers with their evidence.
 * Owns no model state; everything here is a pure function of its arguments. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "tile.h"

size_t ex_tile_n_prompts(size_t n_pages, int per_prompt)
{
	size_t per = per_prompt < 1 ? 1 : (size_t)per_prompt;
	return (n_pages + per - 1) / per;
}

static int64_t round_up(int64_t x, int64_t f)
{
	return (x + f - 1) / f * f;
}

int64_t ex_tile_tokens(int width, int height, int factor)
{
	return round_up(width, factor) / factor * (round_up(height, factor) / factor);
}

bool ex_tile_fit(int width, int height, uint64_t budget, int factor, int *out_w, int *out_h)
{
	*out_w = width;
	*out_h = height;
	if ((uint64_t)(round_up(width, factor) * round_up(height, factor)) <= budget)
		return false;
	double scale = sqrt((double)budget / ((double)width * height));
	int w = (int)(width * scale / factor) * factor, h = (int)(height * scale / factor) * factor;
	*out_w = w < factor ? factor : w > width ? width : w;
	*out_h = h < factor ? factor : h > height ? height : h;
	return *out_w != width || *out_h != height;
}

/* The source span [*first, *last) that output cell `o` of `n_out` covers on an axis of `n_in`,
 * and the weight of source cell i: the length of [o*s, (o+1)*s) ∩ [i, i+1). */
static void span(int o, int n_in, int n_out, double *a, double *b, int *first, int *last)
{
	double s = (double)n_in / n_out;
	*a = o * s;
	*b = o + 1 == n_out ? n_in : (o + 1) * s;
	*first = (int)*a;
	*last = (int)ceil(*b);
	if (*last > n_in)
		*last = n_in;
}

static double cover(int i, double a, double b)
{
	return fmin(b, i + 1.0) - fmax(a, (double)i);
}

int ex_tile_downscale(const uint8_t *src, int w, int h, uint8_t *dst, int dw, int dh, vlm_err *err)
{
	if (dw < 1 || dh < 1 || dw > w || dh > h)
		return vlm_err_set(err, -EINVAL, "tile: cannot downscale %dx%d to %dx%d", w, h, dw,
				   dh);
	/* One output row at a time: the covered source rows are summed with their weights into a
	 * row of w pixels, which is then averaged across. Memory: one source row of doubles. */
	double *acc = malloc((size_t)w * 3 * sizeof *acc);
	if (!acc)
		return vlm_err_set(err, -ENOMEM, "tile: out of memory for a %d-pixel row", w);
	for (int oy = 0; oy < dh; oy++) {
		double ya, yb;
		int y0, y1;
		span(oy, h, dh, &ya, &yb, &y0, &y1);
		memset(acc, 0, (size_t)w * 3 * sizeof *acc);
		for (int y = y0; y < y1; y++) {
			double wy = cover(y, ya, yb);
			const uint8_t *row = src + (size_t)y * w * 3;
			for (int i = 0; i < w * 3; i++)
				acc[i] += wy * row[i];
		}
		for (int ox = 0; ox < dw; ox++) {
			double xa, xb, sum[3] = { 0, 0, 0 };
			int x0, x1;
			span(ox, w, dw, &xa, &xb, &x0, &x1);
			for (int x = x0; x < x1; x++) {
				double wx = cover(x, xa, xb);
				for (int c = 0; c < 3; c++)
					sum[c] += wx * acc[x * 3 + c];
			}
			double area = (xb - xa) * (yb - ya);
			for (int c = 0; c < 3; c++) {
				double v = sum[c] / area + 0.5;
				dst[((size_t)oy * dw + ox) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
			}
		}
	}
	free(acc);
	return 0;
}

/* ---- Merging -------------------------------------------------------------------------------- */

struct merge {
	const struct ex_tile_part *parts;
	GArray *evidence; /* struct ex_field_evidence, paths owned */
};

/* One value of one part being merged: the part and the value's path in that part's answer. */
struct source {
	size_t part;
	const json_t *value;
	char *path;
};

/* Copies part's evidence for `src_path` (if any) under the merged path `dst_path`. */
static void keep_evidence(struct merge *m, size_t part, const char *src_path, const char *dst_path)
{
	const struct ex_tile_part *p = &m->parts[part];
	for (size_t i = 0; i < p->n_evidence; i++) {
		if (strcmp(p->evidence[i].path, src_path) != 0)
			continue;
		struct ex_field_evidence e = p->evidence[i];
		e.path = g_strdup(dst_path);
		g_array_append_val(m->evidence, e);
		return;
	}
}

static char *join(const char *prefix, const char *name)
{
	return prefix ? g_strdup_printf("%s.%s", prefix, name) : g_strdup(name);
}

static json_t *merge_object(struct merge *m, const struct ex_field *fields, size_t n_fields,
			    const struct source *objs, size_t n_objs, const char *dst_prefix);

/* The elements of every array in arrs, in order; object elements merged alone so that their
 * evidence moves to their new index. */
static json_t *concat(struct merge *m, const struct ex_field *f, const struct source *arrs,
		      size_t n_arrs, const char *dst_path)
{
	json_t *out = json_array();
	for (size_t k = 0; out && k < n_arrs; k++) {
		size_t j;
		const json_t *el;
		json_array_foreach(arrs[k].value, j, el)
		{
			char *dst = g_strdup_printf("%s[%zu]", dst_path, json_array_size(out));
			struct source one = { arrs[k].part, el,
					      g_strdup_printf("%s[%zu]", arrs[k].path, j) };
			json_t *v;
			if (json_is_object(el)) {
				v = merge_object(m, f->fields, f->n_fields, &one, 1, dst);
			} else {
				v = json_deep_copy(el);
				keep_evidence(m, one.part, one.path, dst);
			}
			g_free(one.path);
			g_free(dst);
			if (!v || json_array_append_new(out, v) < 0) {
				json_decref(out);
				return NULL;
			}
		}
	}
	return out;
}

/* Merges field f over the objects in objs (each an object in its part). */
static json_t *merge_field(struct merge *m, const struct ex_field *f, const struct source *objs,
			   size_t n_objs, const char *dst_path)
{
	struct source *vals = g_new0(struct source, n_objs + 1);
	size_t n_vals = 0, first_non_null = n_objs;
	for (size_t k = 0; k < n_objs; k++) {
		const json_t *v = json_object_get(objs[k].value, f->name);
		vals[n_vals++] = (struct source){ objs[k].part, v, join(objs[k].path, f->name) };
		if (v && !json_is_null(v) && first_non_null == n_objs)
			first_non_null = n_vals - 1;
	}
	json_t *out = NULL;
	if (f->type == EX_TYPE_OBJECT || f->type == EX_TYPE_ARRAY) {
		/* The parts that gave an object (an array), paths borrowed from vals. */
		struct source *subs = g_new0(struct source, n_vals + 1);
		size_t n_sub = 0;
		for (size_t k = 0; k < n_vals; k++)
			if (f->type == EX_TYPE_OBJECT ? json_is_object(vals[k].value)
						      : json_is_array(vals[k].value))
				subs[n_sub++] = vals[k];
		if (n_sub && f->type == EX_TYPE_OBJECT)
			out = merge_object(m, f->fields, f->n_fields, subs, n_sub, dst_path);
		else if (n_sub)
			out = concat(m, f, subs, n_sub, dst_path);
		g_free(subs);
	} else if (first_non_null < n_vals) {
		out = json_deep_copy(vals[first_non_null].value);
		keep_evidence(m, vals[first_non_null].part, vals[first_non_null].path, dst_path);
	}
	if (!out) {
		out = json_null();
		if (n_vals)
			keep_evidence(m, vals[0].part, vals[0].path, dst_path);
	}
	for (size_t k = 0; k < n_vals; k++)
		g_free(vals[k].path);
	g_free(vals);
	return out;
}

static json_t *merge_object(struct merge *m, const struct ex_field *fields, size_t n_fields,
			    const struct source *objs, size_t n_objs, const char *dst_prefix)
{
	json_t *out = json_object();
	for (size_t i = 0; out && i < n_fields; i++) {
		char *dst = join(dst_prefix, fields[i].name);
		json_t *v = merge_field(m, &fields[i], objs, n_objs, dst);
		g_free(dst);
		if (!v || json_object_set_new(out, fields[i].name, v) < 0) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

int ex_tile_merge(const struct ex_schema *schema, const struct ex_tile_part *parts, size_t n,
		  struct ex_tile_merged *out, vlm_err *err)
{
	*out = (struct ex_tile_merged){ 0 };
	struct merge m = { parts, g_array_new(FALSE, FALSE, sizeof(struct ex_field_evidence)) };
	struct source *objs = g_new0(struct source, n + 1);
	size_t n_objs = 0;
	for (size_t k = 0; k < n; k++)
		if (json_is_object(parts[k].answer))
			objs[n_objs++] = (struct source){ k, parts[k].answer, NULL };
	json_t *answer = merge_object(&m, schema->fields, schema->n_fields, objs, n_objs, NULL);
	g_free(objs);
	out->n_evidence = m.evidence->len;
	out->evidence = (struct ex_field_evidence *)(void *)g_array_free(m.evidence, FALSE);
	out->answer = answer;
	if (!answer) {
		ex_tile_merged_done(out);
		return vlm_err_set(err, -ENOMEM, "tile: out of memory merging answers");
	}
	return 0;
}

void ex_tile_merged_done(struct ex_tile_merged *m)
{
	for (size_t i = 0; i < m->n_evidence; i++)
		g_free((char *)m->evidence[i].path);
	g_free(m->evidence);
	json_decref(m->answer);
	*m = (struct ex_tile_merged){ 0 };
}
