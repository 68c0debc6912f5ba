/* weights.c: loads the tiny fixture model (tests/fixtures/tiny-glm4v, spec §11) or, while that is
 * absent, a model with the same tensor names and shapes written here (the list below is
 * transformers' state_dict for the tiny config). Variants are written to a temporary directory by
 * repacking the base shards with this file's own safetensors writer: the old prefix layout, the
 * v4 config, single-file weights, tied embeddings, and one broken model per check, each expecting
 * its error. Parameter counts are checked against transformers' numbers for the tiny and the real
 * GLM-4.6V-Flash configuration. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "weights.h"

static char dir[] = "/tmp/test_weights.XXXXXX";

#define MAX_SHARDS 16

/* A model held in memory: each shard's header (object of name -> entry) and raw data area. */
struct shard {
	char file[128];
	json_t *header;
	uint8_t *data;
	size_t data_len;
};

struct model {
	json_t *config;
	json_t *config_v4;
	struct shard shards[MAX_SHARDS];
	int n_shards;
};

static void die(const char *what)
{
	fprintf(stderr, "test_weights: %s\n", what);
	exit(1);
}

static json_t *load_json(const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	if (!j)
		die(jerr.text);
	return j;
}

/* Reads a shard with plain stdio and jansson, independently of safetensors.c. */
static void read_shard(struct shard *s, const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t len[8];
	if (!fp || fread(len, 1, 8, fp) != 8)
		die(path);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | len[i];
	char *text = malloc(hlen);
	if (!text || fread(text, 1, hlen, fp) != hlen)
		die(path);
	json_error_t jerr;
	s->header = json_loadb(text, hlen, 0, &jerr);
	free(text);
	if (!s->header)
		die(jerr.text);
	json_object_del(s->header, "__metadata__");
	long start = ftell(fp);
	fseek(fp, 0, SEEK_END);
	s->data_len = (size_t)(ftell(fp) - start);
	fseek(fp, start, SEEK_SET);
	s->data = malloc(s->data_len ? s->data_len : 1);
	if (!s->data || fread(s->data, 1, s->data_len, fp) != s->data_len)
		die(path);
	fclose(fp);
}

static bool load_fixture(struct model *m, const char *fixture)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", fixture);
	if (access(path, R_OK) != 0)
		return false;
	json_t *index = load_json(path);
	const char *name;
	json_t *file;
	json_object_foreach(json_object_get(index, "weight_map"), name, file)
	{
		int i = 0;
		while (i < m->n_shards && strcmp(m->shards[i].file, json_string_value(file)) != 0)
			i++;
		if (i == m->n_shards) {
			if (m->n_shards == MAX_SHARDS)
				die("too many shards");
			snprintf(m->shards[i].file, sizeof m->shards[i].file, "%s",
				 json_string_value(file));
			snprintf(path, sizeof path, "%s/%s", fixture, m->shards[i].file);
			read_shard(&m->shards[i], path);
			m->n_shards++;
		}
	}
	json_decref(index);
	snprintf(path, sizeof path, "%s/config.json", fixture);
	m->config = load_json(path);
	snprintf(path, sizeof path, "%s/config.v4.json", fixture);
	m->config_v4 = access(path, R_OK) == 0 ? load_json(path) : NULL;
	return true;
}

/* The v4 dialect of a v5 config: RoPE keys moved out of rope_parameters. */
static json_t *to_v4(json_t *config)
{
	json_t *c = json_deep_copy(config);
	json_t *text = json_object_get(c, "text_config");
	json_t *rope = json_object_get(text, "rope_parameters");
	json_object_set(text, "rope_theta", json_object_get(rope, "rope_theta"));
	json_object_set(text, "partial_rotary_factor",
			json_object_get(rope, "partial_rotary_factor"));
	json_object_set_new(text, "rope_scaling",
			    json_pack("{s:s, s:O}", "rope_type", "default", "mrope_section",
				      json_object_get(rope, "mrope_section")));
	json_object_del(text, "rope_parameters");
	return c;
}

static void clear_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
}

/* Writes one shard file from one or more parts (header + data area each): every entry's bytes
 * are copied from its part's data at its data_offsets and repacked in header order; the header
 * is padded to 8 bytes as the reference writer does. */
static void write_shard(const char *file, const struct shard *parts, int n_parts)
{
	json_t *out = json_object();
	size_t total = 0;
	const char *name;
	json_t *entry;
	size_t capacity = 1;
	for (int k = 0; k < n_parts; k++)
		capacity += parts[k].data_len * 2; /* room for aliases of existing tensors */
	uint8_t *data = malloc(capacity);
	if (!data)
		die("out of memory");
	for (int k = 0; k < n_parts; k++) {
		json_object_foreach(parts[k].header, name, entry)
		{
			json_t *offs = json_object_get(entry, "data_offsets");
			size_t b = (size_t)json_integer_value(json_array_get(offs, 0));
			size_t e = (size_t)json_integer_value(json_array_get(offs, 1));
			if (total + (e - b) > capacity)
				die("test shard too large");
			memcpy(data + total, parts[k].data + b, e - b);
			json_t *copy = json_deep_copy(entry);
			json_object_set_new(
				copy, "data_offsets",
				json_pack("[I,I]", (json_int_t)total, (json_int_t)(total + e - b)));
			json_object_set_new(out, name, copy);
			total += e - b;
		}
	}
	char *text = json_dumps(out, JSON_COMPACT);
	size_t len = strlen(text), padded = (len + 7) / 8 * 8;
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	FILE *fp = fopen(path, "wb");
	if (!fp)
		die(path);
	for (int i = 0; i < 8; i++)
		fputc((int)((uint64_t)padded >> (8 * i) & 0xff), fp);
	fputs(text, fp);
	for (size_t i = len; i < padded; i++)
		fputc(' ', fp);
	fwrite(data, 1, total, fp);
	fclose(fp);
	free(text);
	free(data);
	json_decref(out);
}

static void write_model(const struct model *m, json_t *config, bool single_file)
{
	clear_dir();
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", dir);
	json_dump_file(config ? config : m->config, path, 0);
	if (single_file) {
		write_shard("model.safetensors", m->shards, m->n_shards);
		return;
	}
	json_t *map = json_object();
	for (int i = 0; i < m->n_shards; i++) {
		const struct shard *src = &m->shards[i];
		write_shard(src->file, src, 1);
		const char *name;
		json_t *entry;
		json_object_foreach(src->header, name, entry)
			json_object_set_new(map, name, json_string(src->file));
	}
	json_t *index = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", map);
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	json_dump_file(index, path, 0);
	json_decref(index);
}

static struct model copy_model(const struct model *m)
{
	struct model c = *m;
	for (int i = 0; i < m->n_shards; i++)
		c.shards[i].header = json_deep_copy(m->shards[i].header);
	c.config = json_deep_copy(m->config);
	c.config_v4 = NULL;
	return c;
}

static void drop_copy(struct model *c)
{
	for (int i = 0; i < c->n_shards; i++)
		json_decref(c->shards[i].header);
	json_decref(c->config);
}

/* The shard holding `name`, and its entry. */
static json_t *find_entry(struct model *m, const char *name, struct shard **shard)
{
	for (int i = 0; i < m->n_shards; i++) {
		json_t *e = json_object_get(m->shards[i].header, name);
		if (e) {
			if (shard)
				*shard = &m->shards[i];
			return e;
		}
	}
	die(name);
	return NULL;
}

/* Adds `name` as a copy of `like` (same shard, same bytes). */
static void add_alias(struct model *m, const char *name, const char *like)
{
	struct shard *s;
	json_t *e = find_entry(m, like, &s);
	json_object_set_new(s->header, name, json_deep_copy(e));
}

static void edit_index(const char *name, const char *file)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	json_t *index = load_json(path);
	json_t *map = json_object_get(index, "weight_map");
	if (file)
		json_object_set_new(map, name, json_string(file));
	else
		json_object_del(map, name);
	json_dump_file(index, path, 0);
	json_decref(index);
}

static int open_model(struct vlm_config *cfg, struct vlm_weights **w, vlm_err *err)
{
	*err = (vlm_err){ 0 };
	*w = NULL;
	int rc = vlm_config_load(dir, cfg, err);
	if (rc == 0)
		rc = vlm_weights_open(dir, cfg, w, err);
	return rc;
}

static void expect_ok(const char *what, struct vlm_weights **out, struct vlm_config *cfg)
{
	vlm_err err;
	int rc = open_model(cfg, out, &err);
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", what, err.msg);
	CHECK_INT(rc, 0);
}

static void expect_error(int code, const char *fragment)
{
	struct vlm_config cfg;
	struct vlm_weights *w;
	vlm_err err;
	CHECK_INT(open_model(&cfg, &w, &err), code);
	CHECK(w == NULL);
	CHECK_CONTAINS(err.msg, fragment);
}

static void check_shape(const struct vlm_tensor *t, int n_dims, int64_t d0, int64_t d1)
{
	CHECK(t != NULL);
	if (!t)
		return;
	CHECK_INT(t->n_dims, n_dims);
	CHECK_INT(t->shape[0], d0);
	if (n_dims > 1)
		CHECK_INT(t->shape[1], d1);
}

/* The bytes of `name` as the base model stores them. */
static void check_bytes(struct model *m, const struct vlm_tensor *t, const char *name)
{
	struct shard *s;
	json_t *offs = json_object_get(find_entry(m, name, &s), "data_offsets");
	size_t b = (size_t)json_integer_value(json_array_get(offs, 0));
	size_t e = (size_t)json_integer_value(json_array_get(offs, 1));
	CHECK(t && t->n_bytes == e - b && memcmp(t->data, s->data + b, e - b) == 0);
}

static void check_loaded(struct model *m, const struct vlm_weights *w)
{
	const struct vlm_vision_weights *v = &w->vision;
	const struct vlm_text_weights *t = &w->text;
	CHECK(v->patch_embed_w && v->patch_embed_w->n_dims == 5 &&
	      v->patch_embed_w->shape[4] == 14);
	check_shape(v->pos_embed, 2, 64, 64);
	check_shape(v->downsample_w, 4, 256, 64);
	check_shape(v->merger_gate_w, 2, 96, 256);
	check_shape(v->merger_down_w, 2, 256, 96);
	check_shape(v->merger_norm_b, 1, 256, 0);
	for (int i = 0; i < 2; i++) {
		const struct vlm_vision_block *b = &v->blocks[i];
		check_shape(b->qkv_w, 2, 192, 64);
		CHECK(b->qkv_b == NULL);
		check_shape(b->gate_w, 2, 256, 64);
		check_shape(b->down_w, 2, 64, 256);
		CHECK(b->norm1 && b->norm2 && b->proj_w && b->up_w);
	}
	check_shape(t->embed, 2, 1024, 256);
	for (int l = 0; l < 2; l++) {
		const struct vlm_text_layer *ly = &t->layers[l];
		check_shape(ly->q_w, 2, 256, 256);
		check_shape(ly->k_w, 2, 64, 256);
		check_shape(ly->v_b, 1, 64, 0);
		check_shape(ly->gate_up_w, 2, 704, 256);
		check_shape(ly->down_w, 2, 256, 352);
		CHECK(ly->input_norm && ly->q_b && ly->k_b && ly->o_w && ly->post_self_attn_norm &&
		      ly->post_attention_norm && ly->post_mlp_norm);
	}
	check_shape(t->lm_head, 2, 1024, 256);
	CHECK(t->lm_head != t->embed);
	if (t->layers[1].q_w)
		CHECK_STR(t->layers[1].q_w->name,
			  "model.language_model.layers.1.self_attn.q_proj.weight");
	CHECK_INT(vlm_weights_bytes(w), 1812160 * 2);
	check_bytes(m, t->layers[1].q_w, "model.language_model.layers.1.self_attn.q_proj.weight");
	check_bytes(m, v->blocks[0].qkv_w, "model.visual.blocks.0.attn.qkv.weight");
	check_bytes(m, t->lm_head, "lm_head.weight");
}

static void test_good_variants(struct model *base)
{
	struct vlm_config cfg;
	struct vlm_weights *w;

	write_model(base, NULL, false);
	expect_ok("base", &w, &cfg);
	if (w)
		check_loaded(base, w);
	vlm_weights_free(w);

	/* Old layout: "model." text tower, "visual." vision tower; data bytes unchanged. */
	struct model c = copy_model(base);
	for (int i = 0; i < c.n_shards; i++) {
		json_t *renamed = json_object();
		const char *name;
		json_t *e;
		json_object_foreach(c.shards[i].header, name, e)
		{
			char buf[256];
			if (strncmp(name, "model.language_model.", 21) == 0)
				snprintf(buf, sizeof buf, "model.%s", name + 21);
			else if (strncmp(name, "model.visual.", 13) == 0)
				snprintf(buf, sizeof buf, "visual.%s", name + 13);
			else
				snprintf(buf, sizeof buf, "%s", name);
			json_object_set(renamed, buf, e);
		}
		json_decref(c.shards[i].header);
		c.shards[i].header = renamed;
	}
	CHECK(json_object_get(c.shards[0].header, "visual.blocks.0.attn.qkv.weight") ||
	      json_object_get(c.shards[1].header, "visual.blocks.0.attn.qkv.weight"));
	CHECK(json_object_get(c.shards[0].header, "model.norm.weight") ||
	      json_object_get(c.shards[1].header, "model.norm.weight"));
	write_model(&c, NULL, false);
	expect_ok("old prefixes", &w, &cfg);
	if (w)
		check_loaded(base, w);
	vlm_weights_free(w);
	drop_copy(&c);

	/* v4 config dialect. */
	json_t *v4 = base->config_v4 ? json_incref(base->config_v4) : to_v4(base->config);
	write_model(base, v4, false);
	json_decref(v4);
	expect_ok("v4 config", &w, &cfg);
	CHECK_NEAR(cfg.text.rope_theta, 500000.0, 0);
	vlm_weights_free(w);

	write_model(base, NULL, true);
	expect_ok("single file", &w, &cfg);
	if (w)
		check_loaded(base, w);
	vlm_weights_free(w);

	/* Rotary buffers are ignorable. */
	c = copy_model(base);
	add_alias(&c, "model.language_model.layers.0.self_attn.rotary_emb.inv_freq",
		  "model.language_model.norm.weight");
	write_model(&c, NULL, false);
	expect_ok("inv_freq", &w, &cfg);
	vlm_weights_free(w);
	drop_copy(&c);

	/* Tied embeddings: no lm_head in the files, lm_head is embed. */
	c = copy_model(base);
	struct shard *s;
	find_entry(&c, "lm_head.weight", &s);
	json_object_del(s->header, "lm_head.weight");
	json_object_set_new(c.config, "tie_word_embeddings", json_true());
	write_model(&c, NULL, false);
	expect_ok("tied", &w, &cfg);
	if (w)
		CHECK(w->text.lm_head == w->text.embed);
	vlm_weights_free(w);
	drop_copy(&c);
}

static void test_broken_variants(struct model *base)
{
	struct model c = copy_model(base);
	struct shard *s;
	find_entry(&c, "model.visual.blocks.1.norm2.weight", &s);
	json_object_del(s->header, "model.visual.blocks.1.norm2.weight");
	write_model(&c, NULL, false);
	expect_error(-EBADMSG, "model.safetensors.index.json': tensor "
			       "'model.visual.blocks.1.norm2.weight' is missing");
	drop_copy(&c);

	c = copy_model(base);
	add_alias(&c, "model.language_model.layers.0.mlp.extra.weight",
		  "model.language_model.norm.weight");
	write_model(&c, NULL, false);
	expect_error(-EBADMSG, "tensor 'model.language_model.layers.0.mlp.extra.weight': "
			       "unexpected tensor");
	drop_copy(&c);

	c = copy_model(base);
	add_alias(&c, "visual.post_layernorm.weight", "model.visual.post_layernorm.weight");
	write_model(&c, NULL, false);
	expect_error(-EBADMSG, "are the same tensor 'model.visual.post_layernorm.weight' after "
			       "prefix normalisation");
	drop_copy(&c);

	c = copy_model(base);
	json_t *e = find_entry(&c, "model.language_model.layers.1.mlp.down_proj.weight", NULL);
	json_object_set_new(e, "shape", json_pack("[i,i]", 352, 256));
	write_model(&c, NULL, false);
	expect_error(-EBADMSG, "tensor 'model.language_model.layers.1.mlp.down_proj.weight': shape "
			       "[352, 256], expected [256, 352]");
	drop_copy(&c);

	c = copy_model(base);
	e = find_entry(&c, "model.language_model.norm.weight", NULL);
	json_object_set_new(e, "dtype", json_string("I16"));
	write_model(&c, NULL, false);
	expect_error(-ENOTSUP, "tensor 'model.language_model.norm.weight': dtype I16, expected "
			       "BF16, F16 or F32");
	drop_copy(&c);

	/* A shard cut short: the safetensors check names the shard and its last tensor. */
	write_model(base, NULL, false);
	char path[4096];
	const struct shard *last = &base->shards[base->n_shards - 1];
	snprintf(path, sizeof path, "%s/%s", dir, last->file);
	FILE *fp = fopen(path, "rb");
	fseek(fp, 0, SEEK_END);
	long size = ftell(fp);
	fclose(fp);
	CHECK_INT(truncate(path, size - 10), 0);
	expect_error(-EBADMSG, "(truncated)");
	expect_error(-EBADMSG, last->file);

	write_model(base, NULL, false);
	edit_index("model.language_model.norm.weight", "model-00009-of-00009.safetensors");
	expect_error(-ENOENT, "tensor 'model.language_model.norm.weight': its shard "
			      "'model-00009-of-00009.safetensors' is missing");

	write_model(base, NULL, false);
	edit_index("model.language_model.layers.0.extra.weight", base->shards[0].file);
	expect_error(-EBADMSG, "tensor 'model.language_model.layers.0.extra.weight' is listed in "
			       "model.safetensors.index.json but not in this shard");

	write_model(base, NULL, false);
	edit_index("model.language_model.norm.weight", NULL);
	expect_error(-EBADMSG, "tensor 'model.language_model.norm.weight' is not listed in "
			       "model.safetensors.index.json");

	write_model(base, NULL, false);
	edit_index("model.language_model.norm.weight", "../x.safetensors");
	expect_error(-EBADMSG, "shard name '../x.safetensors' is not a file name");

	clear_dir();
	write_model(base, NULL, false);
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	unlink(path);
	expect_error(-ENOENT, "neither model.safetensors.index.json nor model.safetensors");
}

static void check_info(const char *config, int64_t vision, int64_t text, size_t n_vision,
		       size_t n_text, int64_t kv)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", dir);
	clear_dir();
	FILE *fp = fopen(path, "w");
	fputs(config, fp);
	fclose(fp);
	struct vlm_config cfg;
	struct vlm_weights_info info;
	vlm_err err = { 0 };
	CHECK_INT(vlm_config_load(dir, &cfg, &err), 0);
	CHECK_INT(vlm_weights_info(&cfg, &info, &err), 0);
	CHECK_INT(info.n_params_vision, vision);
	CHECK_INT(info.n_params_text, text);
	CHECK_INT(info.n_params, vision + text);
	CHECK_INT(info.n_tensors_vision, n_vision);
	CHECK_INT(info.n_tensors_text, n_text);
	CHECK_INT(info.kv_bytes_per_token, kv);
}

static void test_info(const json_t *tiny)
{
	/* transformers 5.5.4 state_dict sizes for the tiny config. K and V of 2 layers x 2 kv heads
	 * x 32 dims x 2 bytes = 512. */
	char *tiny_text = json_dumps(tiny, 0);
	check_info(tiny_text, 416448, 1395712, 27, 29, 512);
	free(tiny_text);

	/* GLM-4.6V-Flash (spec §1-2): 704 tensors (181 vision), 10,292,777,472 parameters,
	 * confirmed by transformers; KV: 2 x 40 layers x 2 heads x 128 dims x 2 bytes. */
	json_t *real = json_deep_copy(tiny);
	json_t *t = json_object_get(real, "text_config"),
	       *v = json_object_get(real, "vision_config");
	json_object_set_new(t, "vocab_size", json_integer(151552));
	json_object_set_new(t, "hidden_size", json_integer(4096));
	json_object_set_new(t, "num_hidden_layers", json_integer(40));
	json_object_set_new(t, "num_attention_heads", json_integer(32));
	json_object_set_new(t, "head_dim", json_integer(128));
	json_object_set_new(t, "intermediate_size", json_integer(13696));
	json_object_set_new(json_object_get(t, "rope_parameters"), "mrope_section",
			    json_pack("[i,i,i]", 8, 12, 12));
	json_object_set_new(v, "depth", json_integer(24));
	json_object_set_new(v, "hidden_size", json_integer(1536));
	json_object_set_new(v, "num_heads", json_integer(12));
	json_object_set_new(v, "image_size", json_integer(336));
	json_object_set_new(v, "out_hidden_size", json_integer(4096));
	json_object_set_new(v, "intermediate_size", json_integer(13696));
	json_object_set_new(real, "image_token_id", json_integer(151363));
	json_object_set_new(real, "video_token_id", json_integer(151364));
	json_object_set_new(real, "image_start_token_id", json_integer(151339));
	json_object_set_new(real, "image_end_token_id", json_integer(151340));
	json_object_set_new(real, "video_start_token_id", json_integer(151341));
	json_object_set_new(real, "video_end_token_id", json_integer(151342));
	char *text = json_dumps(real, 0);
	check_info(text, 892498432, 9400279040, 181, 523, 40960);
	free(text);
	json_decref(real);
}

/* The fixture directory as it is, with its generation and preprocessor configs. */
static void test_fixture_dir(const char *fixture)
{
	struct vlm_config cfg;
	struct vlm_weights *w = NULL;
	vlm_err err = { 0 };
	CHECK_INT(vlm_config_load(fixture, &cfg, &err), 0);
	CHECK_INT(vlm_weights_open(fixture, &cfg, &w, &err), 0);
	if (!w) {
		fprintf(stderr, "fixture: %s\n", err.msg);
		return;
	}
	/* generation_config.json and preprocessor_config.json of the fixture. */
	CHECK(!cfg.gen.do_sample);
	CHECK_INT(cfg.gen.n_eos_ids, 3);
	CHECK_INT(cfg.gen.eos_ids[2], 1006);
	CHECK_INT(cfg.gen.pad_id, 1000);
	CHECK_INT(cfg.preproc.min_pixels, 12544);
	CHECK_INT(cfg.preproc.max_pixels, 9633792);
	/* The index's metadata: total_size 3624320 bytes. */
	CHECK_INT(vlm_weights_bytes(w), 3624320);
	vlm_weights_free(w);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct model base = { 0 };
	char fixture[2048];
	const char *src = getenv("INTAKE_SOURCE_DIR");
	snprintf(fixture, sizeof fixture, "%s/tests/fixtures/tiny-glm4v", src ? src : ".");
	if (!load_fixture(&base, fixture)) {
		fprintf(stderr, "test_weights: no fixture at %s\n", fixture);
		return 1;
	}
	test_fixture_dir(fixture);
	test_info(base.config);
	test_good_variants(&base);
	test_broken_variants(&base);

	for (int i = 0; i < base.n_shards; i++) {
		json_decref(base.shards[i].header);
		free(base.shards[i].data);
	}
	json_decref(base.config);
	json_decref(base.config_v4);
	clear_dir();
	rmdir(dir);
	return CHECK_DONE();
}
