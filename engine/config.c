/* Model directory configuration: reads config.json, generation_config.json and
 * preprocessor_config.json into struct vlm_config and checks that the numbers agree with each
 * other, so the loader and the model code can trust them without re-checking.
 *
 * config.json comes in two dialects (spec §1.1): transformers v5 nests RoPE settings in
 * text_config.rope_parameters, v4 keeps rope_theta and partial_rotary_factor in text_config and
 * mrope_section in text_config.rope_scaling. Each RoPE key is looked up in that order. Token ids
 * may sit at the top level or in text_config; the top level wins. Every failure names the file
 * and the key. Does not read weights or the tokenizer. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"

/* Upper bound for any size or id: keeps every product of two of them inside int64. */
#define CFG_MAX_INT (1 << 24)
#define CFG_REQUIRED LLONG_MIN

/* One file being read; the first error sticks and later lookups become no-ops. */
struct cfg_reader {
	char path[4096];
	vlm_err *err;
	int rc;
};

static void cfg_fail(struct cfg_reader *r, int code, const char *prefix, const char *key,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void cfg_fail(struct cfg_reader *r, int code, const char *prefix, const char *key,
		     const char *fmt, ...)
{
	if (r->rc != 0)
		return;
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	r->rc = vlm_err_set(r->err, code, "config: '%s': key '%s%s%s': %s", r->path, prefix,
			    *prefix ? "." : "", key, detail);
}

/* Opens DIR/NAME. Returns NULL with r->rc == 0 when the file is absent and `optional`. */
static json_t *cfg_open(struct cfg_reader *r, const char *dir, const char *name, bool optional,
			vlm_err *err)
{
	r->err = err;
	r->rc = 0;
	if ((size_t)snprintf(r->path, sizeof r->path, "%s/%s", dir, name) >= sizeof r->path) {
		r->rc = vlm_err_set(err, -ENAMETOOLONG, "config: '%s': path too long", dir);
		return NULL;
	}
	struct stat st;
	if (stat(r->path, &st) != 0) {
		if (errno != ENOENT || !optional)
			r->rc = vlm_err_set(err, -errno, "config: '%s': %s", r->path,
					    strerror(errno));
		return NULL;
	}
	json_error_t jerr;
	json_t *root = json_load_file(r->path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		r->rc = vlm_err_set(err, -EBADMSG, "config: '%s': invalid JSON (line %d): %s",
				    r->path, jerr.line, jerr.text);
	} else if (!json_is_object(root)) {
		r->rc = vlm_err_set(err, -EBADMSG, "config: '%s': not a JSON object", r->path);
		json_decref(root);
		root = NULL;
	}
	return root;
}

/* The object at obj[key]; a missing one is an error. */
static json_t *cfg_object(struct cfg_reader *r, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_object(v)) {
		cfg_fail(r, -EBADMSG, "", key, v ? "not an object" : "missing");
		return NULL;
	}
	return v;
}

static long long cfg_int_value(struct cfg_reader *r, json_t *v, const char *prefix, const char *key,
			       long long min, long long max)
{
	if (!json_is_integer(v)) {
		cfg_fail(r, -EBADMSG, prefix, key, "not an integer");
		return min;
	}
	long long x = json_integer_value(v);
	if (x < min || x > max) {
		cfg_fail(r, -EBADMSG, prefix, key, "%lld is outside [%lld, %lld]", x, min, max);
		return min;
	}
	return x;
}

/* obj[key] as an integer in [min, max]; `def` when absent, or an error when def is CFG_REQUIRED. */
static long long cfg_int(struct cfg_reader *r, json_t *obj, const char *prefix, const char *key,
			 long long def, long long min, long long max)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (def == CFG_REQUIRED)
			cfg_fail(r, -EBADMSG, prefix, key, "missing");
		return def == CFG_REQUIRED ? min : def;
	}
	return cfg_int_value(r, v, prefix, key, min, max);
}

/* A positive size, required. */
static int cfg_size(struct cfg_reader *r, json_t *obj, const char *prefix, const char *key)
{
	return (int)cfg_int(r, obj, prefix, key, CFG_REQUIRED, 1, CFG_MAX_INT);
}

static int cfg_id(struct cfg_reader *r, json_t *v, const char *prefix, const char *key)
{
	return (int)cfg_int_value(r, v, prefix, key, 0, CFG_MAX_INT);
}

/* obj[key] as a number (integer or real) in [min, max], `def` when absent. */
static double cfg_number(struct cfg_reader *r, json_t *obj, const char *prefix, const char *key,
			 double def, double min, double max)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return def;
	if (!json_is_number(v)) {
		cfg_fail(r, -EBADMSG, prefix, key, "not a number");
		return def;
	}
	double x = json_number_value(v);
	if (!(x >= min && x <= max)) {
		cfg_fail(r, -EBADMSG, prefix, key, "%g is outside [%g, %g]", x, min, max);
		return def;
	}
	return x;
}

static bool cfg_bool(struct cfg_reader *r, json_t *obj, const char *prefix, const char *key,
		     bool def)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return def;
	if (!json_is_boolean(v))
		cfg_fail(r, -EBADMSG, prefix, key, "not a boolean");
	return json_is_true(v);
}

/* v must be absent or the string `want` (the only value this engine implements). */
static void cfg_expect_string(struct cfg_reader *r, json_t *v, const char *prefix, const char *key,
			      const char *want)
{
	if (!v || json_is_null(v))
		return;
	if (!json_is_string(v))
		cfg_fail(r, -EBADMSG, prefix, key, "not a string");
	else if (strcmp(json_string_value(v), want) != 0)
		cfg_fail(r, -ENOTSUP, prefix, key, "'%s' is not supported (only '%s')",
			 json_string_value(v), want);
}

/* Fills ids from an integer or a list of integers; returns the count. */
static int cfg_id_list(struct cfg_reader *r, json_t *v, const char *prefix, const char *key,
		       int *ids, int max_ids)
{
	if (json_is_integer(v)) {
		ids[0] = cfg_id(r, v, prefix, key);
		return 1;
	}
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > (size_t)max_ids) {
		cfg_fail(r, -EBADMSG, prefix, key, "not an integer or a list of 1 to %d integers",
			 max_ids);
		return 0;
	}
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) ids[i] = cfg_id(r, item, prefix, key);
	return (int)json_array_size(v);
}

/* Where a RoPE key is found, in the priority order of spec §1.1. */
static json_t *cfg_rope_key(json_t *text, const char *key, const char **prefix)
{
	static const char *const where[] = { "rope_parameters", "", "rope_scaling" };
	static const char *const names[] = { "text_config.rope_parameters", "text_config",
					     "text_config.rope_scaling" };
	for (int i = 0; i < 3; i++) {
		json_t *obj = *where[i] ? json_object_get(text, where[i]) : text;
		json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
		if (v && !json_is_null(v)) {
			*prefix = names[i];
			return v;
		}
	}
	*prefix = "text_config.rope_parameters";
	return NULL;
}

/* Needs head_dim: the rotary dims are a fraction of it. */
static void cfg_read_rope(struct cfg_reader *r, json_t *text, struct vlm_text_config *t)
{
	const char *prefix;
	json_t *v = cfg_rope_key(text, "rope_type", &prefix);
	cfg_expect_string(r, v, prefix, "rope_type", "default");

	/* Defaults are transformers' generic ones; GLM files always set both explicitly. */
	v = cfg_rope_key(text, "rope_theta", &prefix);
	t->rope_theta = 10000.0;
	if (v && (!json_is_number(v) || !(json_number_value(v) > 0)))
		cfg_fail(r, -EBADMSG, prefix, "rope_theta", "not a positive number");
	else if (v)
		t->rope_theta = json_number_value(v);
	v = cfg_rope_key(text, "partial_rotary_factor", &prefix);
	t->partial_rotary_factor = 1.0;
	if (v && (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1)))
		cfg_fail(r, -EBADMSG, prefix, "partial_rotary_factor", "not a number in (0, 1]");
	else if (v)
		t->partial_rotary_factor = json_number_value(v);
	const char *factor_at = prefix;

	v = cfg_rope_key(text, "mrope_section", &prefix);
	if (!v) {
		cfg_fail(r, -EBADMSG, prefix, "mrope_section",
			 "missing (also looked in text_config and text_config.rope_scaling)");
	} else if (!json_is_array(v) || json_array_size(v) != 3) {
		cfg_fail(r, -EBADMSG, prefix, "mrope_section", "not a list of 3 integers");
	} else {
		for (int i = 0; i < 3; i++)
			t->mrope_section[i] =
				(int)cfg_int_value(r, json_array_get(v, (size_t)i), prefix,
						   "mrope_section", 0, CFG_MAX_INT);
	}
	if (r->rc != 0)
		return;

	double rotary = t->head_dim * t->partial_rotary_factor;
	t->rotary_dim = (int)lround(rotary);
	if (fabs(rotary - t->rotary_dim) > 1e-6 || t->rotary_dim % 2 != 0 || t->rotary_dim == 0) {
		cfg_fail(r, -EBADMSG, factor_at, "partial_rotary_factor",
			 "%g of head_dim %d is not a positive even number of dims",
			 t->partial_rotary_factor, t->head_dim);
		return;
	}
	int sum = t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2];
	if (2 * sum != t->rotary_dim)
		cfg_fail(r, -EBADMSG, prefix, "mrope_section",
			 "[%d, %d, %d] sums to %d, not rotary_dim / 2 = %d", t->mrope_section[0],
			 t->mrope_section[1], t->mrope_section[2], sum, t->rotary_dim / 2);
}

static void cfg_read_text(struct cfg_reader *r, json_t *text, struct vlm_text_config *t)
{
	const char *p = "text_config";
	t->vocab_size = cfg_size(r, text, p, "vocab_size");
	t->hidden_size = cfg_size(r, text, p, "hidden_size");
	t->n_layers = cfg_size(r, text, p, "num_hidden_layers");
	t->n_heads = cfg_size(r, text, p, "num_attention_heads");
	t->n_kv_heads = cfg_size(r, text, p, "num_key_value_heads");
	t->head_dim = (int)cfg_int(r, text, p, "head_dim", 0, 1, CFG_MAX_INT);
	t->intermediate_size = cfg_size(r, text, p, "intermediate_size");
	t->max_position_embeddings =
		(int)cfg_int(r, text, p, "max_position_embeddings", 32768, 1, CFG_MAX_INT);
	t->rms_norm_eps = (float)cfg_number(r, text, p, "rms_norm_eps", 1e-5, 1e-12, 1.0);
	t->attention_bias = cfg_bool(r, text, p, "attention_bias", true);
	cfg_expect_string(r, json_object_get(text, "hidden_act"), p, "hidden_act", "silu");
	if (r->rc != 0)
		return;

	if (t->head_dim == 0) {
		if (t->hidden_size % t->n_heads != 0) {
			cfg_fail(r, -EBADMSG, p, "num_attention_heads",
				 "%d does not divide hidden_size %d and head_dim is absent",
				 t->n_heads, t->hidden_size);
			return;
		}
		t->head_dim = t->hidden_size / t->n_heads;
	}
	if (t->n_heads % t->n_kv_heads != 0) {
		cfg_fail(r, -EBADMSG, p, "num_key_value_heads",
			 "%d does not divide num_attention_heads %d", t->n_kv_heads, t->n_heads);
		return;
	}
	cfg_read_rope(r, text, t);
}

static void cfg_read_vision(struct cfg_reader *r, json_t *vis, const struct vlm_text_config *t,
			    struct vlm_vision_config *v)
{
	const char *p = "vision_config";
	v->depth = cfg_size(r, vis, p, "depth");
	v->hidden_size = cfg_size(r, vis, p, "hidden_size");
	v->n_heads = cfg_size(r, vis, p, "num_heads");
	v->patch_size = cfg_size(r, vis, p, "patch_size");
	v->temporal_patch_size = cfg_size(r, vis, p, "temporal_patch_size");
	v->spatial_merge_size = cfg_size(r, vis, p, "spatial_merge_size");
	v->in_channels = (int)cfg_int(r, vis, p, "in_channels", 3, 3, 3);
	v->image_size = cfg_size(r, vis, p, "image_size");
	v->out_hidden_size = cfg_size(r, vis, p, "out_hidden_size");
	v->intermediate_size = cfg_size(r, vis, p, "intermediate_size");
	v->rms_norm_eps = (float)cfg_number(r, vis, p, "rms_norm_eps", 1e-5, 1e-12, 1.0);
	v->attention_bias = cfg_bool(r, vis, p, "attention_bias", false);
	cfg_expect_string(r, json_object_get(vis, "hidden_act"), p, "hidden_act", "silu");
	if (r->rc != 0)
		return;

	if (v->hidden_size % v->n_heads != 0) {
		cfg_fail(r, -EBADMSG, p, "num_heads", "%d does not divide hidden_size %d",
			 v->n_heads, v->hidden_size);
		return;
	}
	v->head_dim = v->hidden_size / v->n_heads;
	/* The 2-D rotary embedding gives each of the two axes half of the rotated dims. */
	if (v->head_dim % 4 != 0) {
		cfg_fail(r, -EBADMSG, p, "num_heads",
			 "head_dim %d is not a multiple of 4 (2-D rotary embedding)", v->head_dim);
		return;
	}
	if (v->image_size % v->patch_size != 0) {
		cfg_fail(r, -EBADMSG, p, "image_size", "%d is not a multiple of patch_size %d",
			 v->image_size, v->patch_size);
		return;
	}
	int side = v->image_size / v->patch_size;
	v->n_positions = side * side;
	/* The merger's output is written into the text embedding stream. */
	if (v->out_hidden_size != t->hidden_size)
		cfg_fail(r, -EBADMSG, p, "out_hidden_size", "%d differs from text hidden_size %d",
			 v->out_hidden_size, t->hidden_size);
}

/* Top level first, then text_config. Returns the value and sets *prefix for error messages. */
static json_t *cfg_top_or_text(json_t *root, json_t *text, const char *key, const char **prefix)
{
	json_t *v = json_object_get(root, key);
	*prefix = "";
	if (!v || json_is_null(v)) {
		v = json_object_get(text, key);
		*prefix = "text_config";
	}
	return json_is_null(v) ? NULL : v;
}

static int cfg_token(struct cfg_reader *r, json_t *root, json_t *text, const char *key,
		     bool required, int vocab)
{
	const char *prefix;
	json_t *v = cfg_top_or_text(root, text, key, &prefix);
	if (!v) {
		if (required)
			cfg_fail(r, -EBADMSG, "", key, "missing (also looked in text_config)");
		return -1;
	}
	int id = (int)cfg_int_value(r, v, prefix, key, 0, vocab - 1);
	return id;
}

static int cfg_read_model(struct cfg_reader *r, const char *dir, struct vlm_config *cfg,
			  vlm_err *err)
{
	json_t *root = cfg_open(r, dir, "config.json", false, err);
	if (!root)
		return r->rc;

	json_t *type = json_object_get(root, "model_type");
	if (!json_is_string(type))
		cfg_fail(r, -EBADMSG, "", "model_type", type ? "not a string" : "missing");
	else if (strcmp(json_string_value(type), "glm4v") != 0 &&
		 strcmp(json_string_value(type), "glm46v") != 0)
		cfg_fail(r, -ENOTSUP, "", "model_type", "'%s' is not supported (glm4v or glm46v)",
			 json_string_value(type));
	json_t *text = cfg_object(r, root, "text_config");
	json_t *vis = cfg_object(r, root, "vision_config");
	if (r->rc == 0)
		cfg_read_text(r, text, &cfg->text);
	if (r->rc == 0)
		cfg_read_vision(r, vis, &cfg->text, &cfg->vision);

	const char *prefix;
	json_t *v = cfg_top_or_text(root, text, "tie_word_embeddings", &prefix);
	if (v && !json_is_boolean(v))
		cfg_fail(r, -EBADMSG, prefix, "tie_word_embeddings", "not a boolean");
	cfg->tie_word_embeddings = json_is_true(v);

	int vocab = cfg->text.vocab_size;
	struct vlm_token_ids *ids = &cfg->tokens;
	if (r->rc == 0) {
		ids->image = cfg_token(r, root, text, "image_token_id", true, vocab);
		ids->image_start = cfg_token(r, root, text, "image_start_token_id", true, vocab);
		ids->image_end = cfg_token(r, root, text, "image_end_token_id", true, vocab);
		ids->video = cfg_token(r, root, text, "video_token_id", false, vocab);
		ids->video_start = cfg_token(r, root, text, "video_start_token_id", false, vocab);
		ids->video_end = cfg_token(r, root, text, "video_end_token_id", false, vocab);
		cfg->gen.pad_id = cfg_token(r, root, text, "pad_token_id", false, vocab);
		v = cfg_top_or_text(root, text, "eos_token_id", &prefix);
		if (v)
			cfg->gen.n_eos_ids = cfg_id_list(r, v, prefix, "eos_token_id",
							 cfg->gen.eos_ids, VLM_MAX_EOS_IDS);
	}
	json_decref(root);
	return r->rc;
}

static int cfg_read_generation(struct cfg_reader *r, const char *dir, struct vlm_config *cfg,
			       vlm_err *err)
{
	struct vlm_generation_config *g = &cfg->gen;
	json_t *root = cfg_open(r, dir, "generation_config.json", true, err);
	if (r->rc != 0)
		return r->rc;
	json_t *v = json_object_get(root, "eos_token_id");
	if (v && !json_is_null(v))
		g->n_eos_ids = cfg_id_list(r, v, "", "eos_token_id", g->eos_ids, VLM_MAX_EOS_IDS);
	v = json_object_get(root, "pad_token_id");
	if (v && !json_is_null(v))
		g->pad_id = cfg_id(r, v, "", "pad_token_id");
	g->do_sample = cfg_bool(r, root, "", "do_sample", false);
	g->temperature = (float)cfg_number(r, root, "", "temperature", 1.0, 1e-6, 100.0);
	g->top_p = (float)cfg_number(r, root, "", "top_p", 1.0, 1e-6, 1.0);
	g->top_k = (int)cfg_int(r, root, "", "top_k", 50, 0, CFG_MAX_INT);
	g->repetition_penalty =
		(float)cfg_number(r, root, "", "repetition_penalty", 1.0, 1e-6, 100.0);
	for (int i = 0; r->rc == 0 && i < g->n_eos_ids; i++) {
		if (g->eos_ids[i] >= cfg->text.vocab_size)
			cfg_fail(r, -EBADMSG, "", "eos_token_id", "%d is not below vocab_size %d",
				 g->eos_ids[i], cfg->text.vocab_size);
	}
	if (r->rc == 0 && g->pad_id >= cfg->text.vocab_size)
		cfg_fail(r, -EBADMSG, "", "pad_token_id", "%d is not below vocab_size %d",
			 g->pad_id, cfg->text.vocab_size);
	if (r->rc == 0 && g->n_eos_ids == 0)
		cfg_fail(r, -EBADMSG, "", "eos_token_id",
			 "in neither config.json nor generation_config.json: generation could "
			 "never stop");
	json_decref(root);
	return r->rc;
}

static void cfg_float3(struct cfg_reader *r, json_t *obj, const char *key, float out[3])
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return;
	if (!json_is_array(v) || json_array_size(v) != 3) {
		cfg_fail(r, -EBADMSG, "", key, "not a list of 3 numbers");
		return;
	}
	for (size_t i = 0; i < 3; i++) {
		json_t *x = json_array_get(v, i);
		if (!json_is_number(x)) {
			cfg_fail(r, -EBADMSG, "", key, "item %zu is not a number", i);
			return;
		}
		out[i] = (float)json_number_value(x);
	}
}

static int cfg_read_preproc(struct cfg_reader *r, const char *dir, struct vlm_config *cfg,
			    vlm_err *err)
{
	struct vlm_preproc_config *p = &cfg->preproc;
	*p = (struct vlm_preproc_config){
		.min_pixels = 12544,
		.max_pixels = 9633792,
		.patch_size = 14,
		.temporal_patch_size = 2,
		.merge_size = 2,
		.mean = { 0.48145466f, 0.4578275f, 0.40821073f },
		.std = { 0.26862954f, 0.26130258f, 0.27577711f },
	};
	json_t *root = cfg_open(r, dir, "preprocessor_config.json", true, err);
	if (r->rc != 0)
		return r->rc;
	if (root) {
		json_t *size = json_object_get(root, "size");
		if (size && !json_is_object(size))
			cfg_fail(r, -EBADMSG, "", "size", "not an object");
		p->min_pixels =
			cfg_int(r, size, "size", "shortest_edge", p->min_pixels, 1, LLONG_MAX);
		p->max_pixels =
			cfg_int(r, size, "size", "longest_edge", p->max_pixels, 1, LLONG_MAX);
		p->patch_size =
			(int)cfg_int(r, root, "", "patch_size", p->patch_size, 1, CFG_MAX_INT);
		p->temporal_patch_size = (int)cfg_int(r, root, "", "temporal_patch_size",
						      p->temporal_patch_size, 1, CFG_MAX_INT);
		p->merge_size =
			(int)cfg_int(r, root, "", "merge_size", p->merge_size, 1, CFG_MAX_INT);
		cfg_float3(r, root, "image_mean", p->mean);
		cfg_float3(r, root, "image_std", p->std);
		json_decref(root);
	}
	/* Checked against the defaults too: a model with other sizes needs its own file. */
	const struct vlm_vision_config *v = &cfg->vision;
	if (p->min_pixels > p->max_pixels)
		cfg_fail(r, -EBADMSG, "size", "shortest_edge",
			 "min pixels %lld exceed longest_edge %lld", p->min_pixels, p->max_pixels);
	if (p->patch_size != v->patch_size)
		cfg_fail(r, -EBADMSG, "", "patch_size", "%d differs from the vision patch_size %d",
			 p->patch_size, v->patch_size);
	if (p->temporal_patch_size != v->temporal_patch_size)
		cfg_fail(r, -EBADMSG, "", "temporal_patch_size",
			 "%d differs from the vision temporal_patch_size %d",
			 p->temporal_patch_size, v->temporal_patch_size);
	if (p->merge_size != v->spatial_merge_size)
		cfg_fail(r, -EBADMSG, "", "merge_size",
			 "%d differs from the vision spatial_merge_size %d", p->merge_size,
			 v->spatial_merge_size);
	for (int i = 0; i < 3; i++) {
		if (!(p->std[i] > 0))
			cfg_fail(r, -EBADMSG, "", "image_std", "item %d is not positive", i);
	}
	return r->rc;
}

int vlm_config_load(const char *dir, struct vlm_config *cfg, vlm_err *err)
{
	*cfg = (struct vlm_config){ .gen.pad_id = -1 };
	struct cfg_reader r;
	int rc = cfg_read_model(&r, dir, cfg, err);
	if (rc == 0)
		rc = cfg_read_generation(&r, dir, cfg, err);
	if (rc == 0)
		rc = cfg_read_preproc(&r, dir, cfg, err);
	return rc;
}
