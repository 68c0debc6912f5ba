/* Weight loading: finds the shards of a model directory, normalises tensor names, and binds every
 * tensor of ONE table (wt_table, derived from the config; spec §2) to a typed slot in struct
 * vlm_weights after checking its dtype and shape. Whatever the files hold beyond the table is an
 * error, except ignorable rotary buffers, so a wrong or mixed-up checkpoint fails at load with
 * the tensor's name instead of producing plausible garbage.
 *
 * Owns the shard mappings (one vlm_st_file per shard, opened once) and the renamed tensor views.
 * Does not convert dtypes or upload anything to a device. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "weights.h"

#define WT_INDEX_FILE "model.safetensors.index.json"
#define WT_SINGLE_FILE "model.safetensors"

/* One expected tensor: canonical name, shape, where the model code reads it, and (once loaded)
 * the tensor view renamed to the canonical name. */
struct wt_spec {
	char name[128];
	int n_dims;
	int64_t shape[VLM_MAX_DIMS];
	const struct vlm_tensor **slot;
	struct vlm_tensor tensor;
	bool vision;
};

/* Counts specs when `specs` is NULL, fills them otherwise; the same code does both so the count
 * can never disagree with the table. */
struct wt_builder {
	struct wt_spec *specs;
	size_t n;
	bool vision;
};

static void wt_add(struct wt_builder *b, const struct vlm_tensor **slot, const char *prefix,
		   const char *name, const int64_t *shape, int n_dims)
{
	if (b->specs) {
		struct wt_spec *s = &b->specs[b->n];
		snprintf(s->name, sizeof s->name, "%s%s", prefix, name);
		s->n_dims = n_dims;
		memcpy(s->shape, shape, (size_t)n_dims * sizeof *shape);
		s->slot = slot;
		s->vision = b->vision;
	}
	b->n++;
}

#define WT_ADD(b, slot, prefix, name, ...)                              \
	wt_add(b, slot, prefix, name, (const int64_t[]){ __VA_ARGS__ }, \
	       (int)(sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)))

/* The table: every tensor the model reads, with its shape from the config (spec §2.1-2.3). */
static void wt_table(struct wt_builder *b, const struct vlm_config *cfg, struct vlm_weights *w)
{
	const struct vlm_vision_config *v = &cfg->vision;
	const int64_t D = v->hidden_size, O = v->out_hidden_size, Iv = v->intermediate_size;
	const int64_t M = v->spatial_merge_size, P = v->patch_size;
	struct vlm_vision_weights *vw = &w->vision;
	const char *p = "model.visual.";
	char prefix[64];

	b->vision = true;
	WT_ADD(b, &vw->patch_embed_w, p, "patch_embed.proj.weight", D, v->in_channels,
	       v->temporal_patch_size, P, P);
	WT_ADD(b, &vw->patch_embed_b, p, "patch_embed.proj.bias", D);
	WT_ADD(b, &vw->post_conv_norm, p, "post_conv_layernorm.weight", D);
	WT_ADD(b, &vw->pos_embed, p, "embeddings.position_embedding.weight", v->n_positions, D);
	for (int i = 0; i < v->depth; i++) {
		struct vlm_vision_block *blk = &vw->blocks[i];
		snprintf(prefix, sizeof prefix, "model.visual.blocks.%d.", i);
		WT_ADD(b, &blk->norm1, prefix, "norm1.weight", D);
		WT_ADD(b, &blk->qkv_w, prefix, "attn.qkv.weight", 3 * D, D);
		if (v->attention_bias)
			WT_ADD(b, &blk->qkv_b, prefix, "attn.qkv.bias", 3 * D);
		WT_ADD(b, &blk->proj_w, prefix, "attn.proj.weight", D, D);
		WT_ADD(b, &blk->norm2, prefix, "norm2.weight", D);
		/* The block MLP is out_hidden_size wide (spec §1.3). */
		WT_ADD(b, &blk->gate_w, prefix, "mlp.gate_proj.weight", O, D);
		WT_ADD(b, &blk->up_w, prefix, "mlp.up_proj.weight", O, D);
		WT_ADD(b, &blk->down_w, prefix, "mlp.down_proj.weight", D, O);
	}
	WT_ADD(b, &vw->post_norm, p, "post_layernorm.weight", D);
	WT_ADD(b, &vw->downsample_w, p, "downsample.weight", O, D, M, M);
	WT_ADD(b, &vw->downsample_b, p, "downsample.bias", O);
	WT_ADD(b, &vw->merger_proj_w, p, "merger.proj.weight", O, O);
	WT_ADD(b, &vw->merger_norm_w, p, "merger.post_projection_norm.weight", O);
	WT_ADD(b, &vw->merger_norm_b, p, "merger.post_projection_norm.bias", O);
	WT_ADD(b, &vw->merger_gate_w, p, "merger.gate_proj.weight", Iv, O);
	WT_ADD(b, &vw->merger_up_w, p, "merger.up_proj.weight", Iv, O);
	WT_ADD(b, &vw->merger_down_w, p, "merger.down_proj.weight", O, Iv);

	const struct vlm_text_config *t = &cfg->text;
	const int64_t H = t->hidden_size, V = t->vocab_size, I = t->intermediate_size;
	const int64_t QD = (int64_t)t->n_heads * t->head_dim,
		      KD = (int64_t)t->n_kv_heads * t->head_dim;
	struct vlm_text_weights *tw = &w->text;
	p = "model.language_model.";

	b->vision = false;
	WT_ADD(b, &tw->embed, p, "embed_tokens.weight", V, H);
	for (int l = 0; l < t->n_layers; l++) {
		struct vlm_text_layer *ly = &tw->layers[l];
		snprintf(prefix, sizeof prefix, "model.language_model.layers.%d.", l);
		WT_ADD(b, &ly->input_norm, prefix, "input_layernorm.weight", H);
		WT_ADD(b, &ly->q_w, prefix, "self_attn.q_proj.weight", QD, H);
		WT_ADD(b, &ly->k_w, prefix, "self_attn.k_proj.weight", KD, H);
		WT_ADD(b, &ly->v_w, prefix, "self_attn.v_proj.weight", KD, H);
		if (t->attention_bias) {
			WT_ADD(b, &ly->q_b, prefix, "self_attn.q_proj.bias", QD);
			WT_ADD(b, &ly->k_b, prefix, "self_attn.k_proj.bias", KD);
			WT_ADD(b, &ly->v_b, prefix, "self_attn.v_proj.bias", KD);
		}
		WT_ADD(b, &ly->o_w, prefix, "self_attn.o_proj.weight", H, QD);
		WT_ADD(b, &ly->post_self_attn_norm, prefix, "post_self_attn_layernorm.weight", H);
		WT_ADD(b, &ly->post_attention_norm, prefix, "post_attention_layernorm.weight", H);
		WT_ADD(b, &ly->gate_up_w, prefix, "mlp.gate_up_proj.weight", 2 * I, H);
		WT_ADD(b, &ly->down_w, prefix, "mlp.down_proj.weight", H, I);
		WT_ADD(b, &ly->post_mlp_norm, prefix, "post_mlp_layernorm.weight", H);
	}
	WT_ADD(b, &tw->norm, p, "norm.weight", H);
	if (!cfg->tie_word_embeddings)
		WT_ADD(b, &tw->lm_head, "", "lm_head.weight", V, H);
}

/* Allocates the per-block and per-layer structs and the table of specs. */
static int wt_table_new(struct vlm_weights *w, const struct vlm_config *cfg, vlm_err *err)
{
	struct wt_builder b = { 0 };
	w->vision.blocks = calloc((size_t)cfg->vision.depth, sizeof *w->vision.blocks);
	w->text.layers = calloc((size_t)cfg->text.n_layers, sizeof *w->text.layers);
	if (w->vision.blocks && w->text.layers) {
		wt_table(&b, cfg, w);
		b.specs = calloc(b.n, sizeof *b.specs);
	}
	if (!b.specs)
		return vlm_err_set(err, -ENOMEM, "weights: out of memory for the tensor table");
	w->n_specs = b.n;
	b.n = 0;
	wt_table(&b, cfg, w);
	w->specs = b.specs;
	return 0;
}

/* A tensor found in the files: its canonical name and where it came from. */
struct wt_found {
	char *name;
	const struct vlm_tensor *src;
	const char *file;
	bool used;
};

struct wt_loader {
	const char *dir;
	char source[4096]; /* the index or the single file: what errors about the set name */
	struct wt_found *found;
	size_t n_found;
	vlm_err *err;
};

static char *wt_concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static bool wt_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Spec §2.4: the older Qwen2-VL-style layout keeps the text tower under "model." and the vision
 * tower under "visual."; map both onto the current layout. */
static char *wt_canonical(const char *name)
{
	if (wt_starts(name, "visual."))
		return wt_concat("model.", name);
	if (wt_starts(name, "model.") && !wt_starts(name, "model.language_model.") &&
	    !wt_starts(name, "model.visual."))
		return wt_concat("model.language_model.", name + strlen("model."));
	return wt_concat("", name);
}

static int wt_add_found(struct wt_loader *ld, const struct vlm_tensor *src, const char *file)
{
	struct wt_found *f = &ld->found[ld->n_found];
	f->name = wt_canonical(src->name);
	if (!f->name)
		return vlm_err_set(ld->err, -ENOMEM, "weights: out of memory");
	f->src = src;
	f->file = file;
	ld->n_found++;
	return 0;
}

static int wt_path(char *buf, size_t size, const char *dir, const char *name, vlm_err *err)
{
	if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size)
		return vlm_err_set(err, -ENAMETOOLONG, "weights: '%s': path too long", dir);
	return 0;
}

static int wt_add_shard(struct vlm_weights *w, struct vlm_st_file *f)
{
	struct vlm_st_file **shards = realloc(w->shards, (w->n_shards + 1) * sizeof *shards);
	if (!shards) {
		vlm_st_close(f);
		return -ENOMEM;
	}
	w->shards = shards;
	w->shards[w->n_shards++] = f;
	return 0;
}

static int wt_read_single(struct wt_loader *ld, struct vlm_weights *w)
{
	struct vlm_st_file *f;
	int rc = vlm_st_open(ld->source, &f, ld->err);
	if (rc != 0)
		return rc;
	if (wt_add_shard(w, f) != 0)
		return vlm_err_set(ld->err, -ENOMEM, "weights: out of memory");
	ld->found = calloc(vlm_st_count(f) + 1, sizeof *ld->found);
	if (!ld->found)
		return vlm_err_set(ld->err, -ENOMEM, "weights: out of memory");
	for (size_t i = 0; rc == 0 && i < vlm_st_count(f); i++)
		rc = wt_add_found(ld, vlm_st_tensor(f, i), vlm_st_path(f));
	return rc;
}

/* The shard called `file` (a bare file name from the index), opened on first use. */
static int wt_shard(struct wt_loader *ld, struct vlm_weights *w, const char *tensor,
		    const char *file, struct vlm_st_file **out)
{
	char path[4096];
	if (!*file || strchr(file, '/') || strcmp(file, ".") == 0 || strcmp(file, "..") == 0)
		return vlm_err_set(ld->err, -EBADMSG,
				   "weights: '%s': tensor '%s': shard name '%s' is not a file name "
				   "in the model directory",
				   ld->source, tensor, file);
	int rc = wt_path(path, sizeof path, ld->dir, file, ld->err);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < w->n_shards; i++) {
		if (strcmp(vlm_st_path(w->shards[i]), path) == 0) {
			*out = w->shards[i];
			return 0;
		}
	}
	struct stat st;
	if (stat(path, &st) != 0 && errno == ENOENT)
		return vlm_err_set(ld->err, -ENOENT,
				   "weights: '%s': tensor '%s': its shard '%s' is missing",
				   ld->source, tensor, file);
	rc = vlm_st_open(path, out, ld->err);
	if (rc == 0 && wt_add_shard(w, *out) != 0)
		rc = vlm_err_set(ld->err, -ENOMEM, "weights: out of memory");
	return rc;
}

/* Every tensor of every shard must be listed in the index, under that shard. */
static int wt_check_unlisted(struct wt_loader *ld, const struct vlm_weights *w, json_t *map)
{
	for (size_t s = 0; s < w->n_shards; s++) {
		const char *path = vlm_st_path(w->shards[s]);
		const char *file = path + strlen(ld->dir) + 1;
		for (size_t i = 0; i < vlm_st_count(w->shards[s]); i++) {
			const char *name = vlm_st_tensor(w->shards[s], i)->name;
			const char *listed = json_string_value(json_object_get(map, name));
			if (!listed || strcmp(listed, file) != 0)
				return vlm_err_set(ld->err, -EBADMSG,
						   "weights: '%s': tensor '%s' is not listed in "
						   "%s under this shard",
						   path, name, WT_INDEX_FILE);
		}
	}
	return 0;
}

static int wt_read_index(struct wt_loader *ld, struct vlm_weights *w)
{
	json_error_t jerr;
	json_t *index = json_load_file(ld->source, JSON_REJECT_DUPLICATES, &jerr);
	if (!index)
		return vlm_err_set(ld->err, -EBADMSG, "weights: '%s': invalid JSON (line %d): %s",
				   ld->source, jerr.line, jerr.text);
	json_t *map = json_object_get(index, "weight_map");
	int rc = 0;
	if (!json_is_object(map))
		rc = vlm_err_set(ld->err, -EBADMSG, "weights: '%s': 'weight_map' is %s", ld->source,
				 map ? "not an object" : "missing");
	if (rc == 0) {
		ld->found = calloc(json_object_size(map) + 1, sizeof *ld->found);
		if (!ld->found)
			rc = vlm_err_set(ld->err, -ENOMEM, "weights: out of memory");
	}
	const char *name;
	json_t *value;
	json_object_foreach(map, name, value)
	{
		if (rc != 0)
			break;
		struct vlm_st_file *shard;
		if (!json_is_string(value)) {
			rc = vlm_err_set(ld->err, -EBADMSG,
					 "weights: '%s': tensor '%s': shard is not a string",
					 ld->source, name);
			break;
		}
		rc = wt_shard(ld, w, name, json_string_value(value), &shard);
		if (rc != 0)
			break;
		const struct vlm_tensor *t = vlm_st_find(shard, name);
		if (!t)
			rc = vlm_err_set(ld->err, -EBADMSG,
					 "weights: '%s': tensor '%s' is listed in %s but not in "
					 "this shard",
					 vlm_st_path(shard), name, WT_INDEX_FILE);
		else
			rc = wt_add_found(ld, t, vlm_st_path(shard));
	}
	if (rc == 0)
		rc = wt_check_unlisted(ld, w, map);
	json_decref(index);
	return rc;
}

static int wt_found_cmp(const void *a, const void *b)
{
	return strcmp(((const struct wt_found *)a)->name, ((const struct wt_found *)b)->name);
}

static void wt_shape_str(char *buf, size_t size, const int64_t *shape, int n_dims)
{
	size_t at = 0;
	at += (size_t)snprintf(buf, size, "[");
	for (int i = 0; i < n_dims && at < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? ", " : "",
				       (long long)shape[i]);
	if (at < size)
		snprintf(buf + at, size - at, "]");
}

static int wt_bind(struct wt_loader *ld, struct wt_spec *s)
{
	struct wt_found key = { .name = s->name };
	struct wt_found *f = bsearch(&key, ld->found, ld->n_found, sizeof key, wt_found_cmp);
	if (!f)
		return vlm_err_set(ld->err, -EBADMSG, "weights: '%s': tensor '%s' is missing",
				   ld->source, s->name);
	const struct vlm_tensor *t = f->src;
	f->used = true;
	if (t->dtype != VLM_DTYPE_BF16 && t->dtype != VLM_DTYPE_F16 && t->dtype != VLM_DTYPE_F32)
		return vlm_err_set(
			ld->err, -ENOTSUP,
			"weights: '%s': tensor '%s': dtype %s, expected BF16, F16 or F32", f->file,
			t->name, vlm_dtype_name(t->dtype));
	if (t->n_dims != s->n_dims ||
	    memcmp(t->shape, s->shape, (size_t)s->n_dims * sizeof *s->shape) != 0) {
		char got[128], want[128];
		wt_shape_str(got, sizeof got, t->shape, t->n_dims);
		wt_shape_str(want, sizeof want, s->shape, s->n_dims);
		return vlm_err_set(ld->err, -EBADMSG,
				   "weights: '%s': tensor '%s': shape %s, expected %s", f->file,
				   t->name, got, want);
	}
	s->tensor = *t;
	s->tensor.name = s->name;
	*s->slot = &s->tensor;
	return 0;
}

/* Rotary inverse-frequency buffers: derived from the config, saved by some writers. */
static bool wt_ignorable(const char *name)
{
	size_t n = strlen(name), k = strlen(".inv_freq");
	return n >= k && strcmp(name + n - k, ".inv_freq") == 0;
}

static int wt_bind_all(struct wt_loader *ld, struct vlm_weights *w)
{
	qsort(ld->found, ld->n_found, sizeof *ld->found, wt_found_cmp);
	for (size_t i = 1; i < ld->n_found; i++) {
		if (strcmp(ld->found[i - 1].name, ld->found[i].name) == 0)
			return vlm_err_set(ld->err, -EBADMSG,
					   "weights: '%s': tensors '%s' and '%s' (in '%s') are the "
					   "same tensor '%s' after prefix normalisation",
					   ld->found[i].file, ld->found[i].src->name,
					   ld->found[i - 1].src->name, ld->found[i - 1].file,
					   ld->found[i].name);
	}
	for (size_t i = 0; i < w->n_specs; i++) {
		int rc = wt_bind(ld, &w->specs[i]);
		if (rc != 0)
			return rc;
	}
	for (size_t i = 0; i < ld->n_found; i++) {
		const struct wt_found *f = &ld->found[i];
		if (!f->used && !wt_ignorable(f->name))
			return vlm_err_set(
				ld->err, -EBADMSG,
				"weights: '%s': tensor '%s': unexpected tensor (not part "
				"of this model's configuration)",
				f->file, f->src->name);
	}
	return 0;
}

static int wt_load(struct wt_loader *ld, struct vlm_weights *w, const struct vlm_config *cfg)
{
	int rc = wt_table_new(w, cfg, ld->err);
	if (rc == 0)
		rc = wt_path(ld->source, sizeof ld->source, ld->dir, WT_INDEX_FILE, ld->err);
	if (rc != 0)
		return rc;
	struct stat st;
	if (stat(ld->source, &st) == 0) {
		rc = wt_read_index(ld, w);
	} else {
		rc = wt_path(ld->source, sizeof ld->source, ld->dir, WT_SINGLE_FILE, ld->err);
		if (rc == 0 && stat(ld->source, &st) != 0)
			return vlm_err_set(ld->err, -ENOENT,
					   "weights: '%s': neither %s nor %s is there", ld->dir,
					   WT_INDEX_FILE, WT_SINGLE_FILE);
		if (rc == 0)
			rc = wt_read_single(ld, w);
	}
	if (rc == 0)
		rc = wt_bind_all(ld, w);
	if (rc == 0 && cfg->tie_word_embeddings)
		w->text.lm_head = w->text.embed;
	return rc;
}

int vlm_weights_open(const char *dir, const struct vlm_config *cfg, struct vlm_weights **out,
		     vlm_err *err)
{
	*out = NULL;
	struct vlm_weights *w = calloc(1, sizeof *w);
	if (!w)
		return vlm_err_set(err, -ENOMEM, "weights: out of memory");
	struct wt_loader ld = { .dir = dir, .err = err };
	int rc = wt_load(&ld, w, cfg);
	for (size_t i = 0; i < ld.n_found; i++)
		free(ld.found[i].name);
	free(ld.found);
	if (rc != 0) {
		vlm_weights_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void vlm_weights_free(struct vlm_weights *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_shards; i++)
		vlm_st_close(w->shards[i]);
	free(w->shards);
	free(w->specs);
	free(w->vision.blocks);
	free(w->text.layers);
	free(w);
}

int vlm_weights_info(const struct vlm_config *cfg, struct vlm_weights_info *out, vlm_err *err)
{
	*out = (struct vlm_weights_info){ 0 };
	struct vlm_weights *table = calloc(1, sizeof *table);
	int rc = table ? wt_table_new(table, cfg, err)
		       : vlm_err_set(err, -ENOMEM, "weights: out of memory");
	for (size_t i = 0; rc == 0 && i < table->n_specs; i++) {
		const struct wt_spec *s = &table->specs[i];
		int64_t n = 1;
		for (int d = 0; d < s->n_dims; d++)
			n *= s->shape[d];
		if (s->vision) {
			out->n_params_vision += n;
			out->n_tensors_vision++;
		} else {
			out->n_params_text += n;
			out->n_tensors_text++;
		}
	}
	vlm_weights_free(table);
	out->n_params = out->n_params_vision + out->n_params_text;
	const struct vlm_text_config *t = &cfg->text;
	out->kv_bytes_per_token = 2 * (int64_t)t->n_layers * t->n_kv_heads * t->head_dim * 2;
	return rc;
}

int64_t vlm_weights_bytes(const struct vlm_weights *w)
{
	int64_t n = 0;
	for (size_t i = 0; i < w->n_specs; i++)
		n += (int64_t)w->specs[i].tensor.n_bytes;
	return n;
}

const char *vlm_weights_dtype(const struct vlm_weights *w)
{
	enum vlm_dtype d = w->specs[0].tensor.dtype;
	for (size_t i = 1; i < w->n_specs; i++)
		if (w->specs[i].tensor.dtype != d)
			return "mixed";
	return vlm_dtype_name(d);
}
