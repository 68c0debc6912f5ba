/* config.c: the tiny fixture's config.json (spec §11) in both dialects, with the values expected
 * from the spec's table, then one broken variant per validation rule, each expecting its key in
 * the error. */
#include <errno.h>
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char dir[] = "/tmp/test_config.XXXXXX";

/* Spec §11, v5 dialect. */
static const char *const tiny_v5 =
	"{\"architectures\": [\"Glm4vForConditionalGeneration\"], \"model_type\": \"glm4v\","
	" \"image_token_id\": 1011, \"video_token_id\": 1012, \"image_start_token_id\": 1007,"
	" \"image_end_token_id\": 1008, \"video_start_token_id\": 1009, \"video_end_token_id\": "
	"1010,"
	" \"tie_word_embeddings\": false,"
	" \"text_config\": {\"vocab_size\": 1024, \"hidden_size\": 256, \"num_hidden_layers\": 2,"
	"  \"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 32,"
	"  \"intermediate_size\": 352, \"rms_norm_eps\": 1e-05, \"attention_bias\": true,"
	"  \"hidden_act\": \"silu\", \"max_position_embeddings\": 2048, \"pad_token_id\": 1000,"
	"  \"eos_token_id\": [1000, 1004, 1006],"
	"  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000,"
	"   \"partial_rotary_factor\": 0.5, \"mrope_section\": [2, 3, 3]}},"
	" \"vision_config\": {\"depth\": 2, \"hidden_size\": 64, \"num_heads\": 2, \"patch_size\": "
	"14,"
	"  \"temporal_patch_size\": 2, \"spatial_merge_size\": 2, \"in_channels\": 3,"
	"  \"image_size\": 112, \"out_hidden_size\": 256, \"intermediate_size\": 96,"
	"  \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\", \"attention_bias\": false}}";

static json_t *tiny(void)
{
	json_error_t jerr;
	json_t *root = json_loads(tiny_v5, 0, &jerr);
	if (!root) {
		fprintf(stderr, "test config: %s\n", jerr.text);
		exit(1);
	}
	return root;
}

static json_t *text_of(json_t *root)
{
	return json_object_get(root, "text_config");
}

static void write_json(const char *name, json_t *root)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!root) {
		unlink(path);
		return;
	}
	if (json_dump_file(root, path, 0) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	json_decref(root);
}

static void write_text(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
}

static int load(struct vlm_config *cfg, vlm_err *err)
{
	*err = (vlm_err){ 0 };
	int rc = vlm_config_load(dir, cfg, err);
	if (rc != 0)
		fprintf(stderr, "(load: %s)\n", err->msg);
	return rc;
}

/* Writes config.json (consumed) and expects `code` with `fragment` in the message. */
static void expect_config_error(json_t *root, int code, const char *fragment)
{
	write_json("config.json", root);
	struct vlm_config cfg;
	vlm_err err = { 0 };
	CHECK_INT(vlm_config_load(dir, &cfg, &err), code);
	CHECK_INT(err.code, code);
	CHECK_CONTAINS(err.msg, fragment);
}

static void check_tiny_values(const struct vlm_config *c)
{
	CHECK_INT(c->text.vocab_size, 1024);
	CHECK_INT(c->text.hidden_size, 256);
	CHECK_INT(c->text.n_layers, 2);
	CHECK_INT(c->text.n_heads, 8);
	CHECK_INT(c->text.n_kv_heads, 2);
	CHECK_INT(c->text.head_dim, 32);
	CHECK_INT(c->text.intermediate_size, 352);
	CHECK_INT(c->text.max_position_embeddings, 2048);
	CHECK_NEAR(c->text.rms_norm_eps, 1e-5, 1e-12);
	CHECK(c->text.attention_bias);
	CHECK_NEAR(c->text.rope_theta, 500000.0, 0);
	CHECK_NEAR(c->text.partial_rotary_factor, 0.5, 0);
	CHECK_INT(c->text.rotary_dim, 16);
	CHECK_INT(c->text.mrope_section[0], 2);
	CHECK_INT(c->text.mrope_section[1], 3);
	CHECK_INT(c->text.mrope_section[2], 3);

	CHECK_INT(c->vision.depth, 2);
	CHECK_INT(c->vision.hidden_size, 64);
	CHECK_INT(c->vision.n_heads, 2);
	CHECK_INT(c->vision.head_dim, 32);
	CHECK_INT(c->vision.patch_size, 14);
	CHECK_INT(c->vision.temporal_patch_size, 2);
	CHECK_INT(c->vision.spatial_merge_size, 2);
	CHECK_INT(c->vision.in_channels, 3);
	CHECK_INT(c->vision.image_size, 112);
	CHECK_INT(c->vision.n_positions, 64);
	CHECK_INT(c->vision.out_hidden_size, 256);
	CHECK_INT(c->vision.intermediate_size, 96);
	CHECK(!c->vision.attention_bias);

	CHECK_INT(c->tokens.image, 1011);
	CHECK_INT(c->tokens.video, 1012);
	CHECK_INT(c->tokens.image_start, 1007);
	CHECK_INT(c->tokens.image_end, 1008);
	CHECK_INT(c->tokens.video_start, 1009);
	CHECK_INT(c->tokens.video_end, 1010);
	CHECK(!c->tie_word_embeddings);
}

static void test_v5_defaults(void)
{
	write_json("config.json", tiny());
	struct vlm_config c;
	vlm_err err;
	CHECK_INT(load(&c, &err), 0);
	check_tiny_values(&c);
	/* No generation_config.json: eos and pad from config.json, transformers' defaults. */
	CHECK_INT(c.gen.n_eos_ids, 3);
	CHECK_INT(c.gen.eos_ids[0], 1000);
	CHECK_INT(c.gen.eos_ids[1], 1004);
	CHECK_INT(c.gen.eos_ids[2], 1006);
	CHECK_INT(c.gen.pad_id, 1000);
	CHECK(!c.gen.do_sample);
	CHECK_NEAR(c.gen.temperature, 1.0, 0);
	CHECK_NEAR(c.gen.top_p, 1.0, 0);
	CHECK_INT(c.gen.top_k, 50);
	CHECK_NEAR(c.gen.repetition_penalty, 1.0, 0);
	/* No preprocessor_config.json: GLM-4.6V's published values (spec §3). */
	CHECK_INT(c.preproc.min_pixels, 12544);
	CHECK_INT(c.preproc.max_pixels, 9633792);
	CHECK_INT(c.preproc.patch_size, 14);
	CHECK_INT(c.preproc.temporal_patch_size, 2);
	CHECK_INT(c.preproc.merge_size, 2);
	CHECK_NEAR(c.preproc.mean[0], 0.48145466, 1e-7);
	CHECK_NEAR(c.preproc.std[2], 0.27577711, 1e-7);
}

static void test_v4_dialect(void)
{
	json_t *root = tiny();
	json_t *text = text_of(root);
	json_object_del(text, "rope_parameters");
	json_object_set_new(text, "rope_theta", json_integer(500000));
	json_object_set_new(text, "partial_rotary_factor", json_real(0.5));
	json_object_set_new(
		text, "rope_scaling",
		json_pack("{s:s, s:[i,i,i]}", "rope_type", "default", "mrope_section", 2, 3, 3));
	/* v4 files may omit head_dim: hidden / heads = 256 / 8. */
	json_object_del(text, "head_dim");
	write_json("config.json", root);
	struct vlm_config c;
	vlm_err err;
	CHECK_INT(load(&c, &err), 0);
	check_tiny_values(&c);
}

static void test_priorities(void)
{
	/* rope_parameters beats text_config beats rope_scaling; top-level ids beat text_config. */
	json_t *root = tiny();
	json_t *text = text_of(root);
	json_object_set_new(text, "rope_theta", json_integer(10000));
	json_object_set_new(text, "rope_scaling",
			    json_pack("{s:[i,i,i]}", "mrope_section", 4, 2, 2));
	json_object_set_new(text, "image_token_id", json_integer(5));
	json_object_set_new(text, "image_end_token_id", json_integer(6));
	json_object_del(root, "image_end_token_id");
	json_object_set_new(root, "eos_token_id", json_integer(1002));
	json_object_set_new(root, "tie_word_embeddings", json_true());
	write_json("config.json", root);
	struct vlm_config c;
	vlm_err err;
	CHECK_INT(load(&c, &err), 0);
	CHECK_NEAR(c.text.rope_theta, 500000.0, 0);
	CHECK_INT(c.text.mrope_section[0], 2);
	CHECK_INT(c.tokens.image, 1011);
	CHECK_INT(c.tokens.image_end, 6);
	CHECK_INT(c.gen.n_eos_ids, 1);
	CHECK_INT(c.gen.eos_ids[0], 1002);
	CHECK(c.tie_word_embeddings);
}

static void test_side_files(void)
{
	write_json("config.json", tiny());
	write_text("generation_config.json",
		   "{\"eos_token_id\": [1000, 1004], \"pad_token_id\": 1003, \"do_sample\": true,"
		   " \"temperature\": 0.8, \"top_p\": 0.6, \"top_k\": 2,"
		   " \"repetition_penalty\": 1.1}");
	write_text("preprocessor_config.json",
		   "{\"size\": {\"shortest_edge\": 3136, \"longest_edge\": 1000000},"
		   " \"patch_size\": 14, \"temporal_patch_size\": 2, \"merge_size\": 2,"
		   " \"image_mean\": [0.5, 0.25, 0.125], \"image_std\": [2, 4, 8]}");
	struct vlm_config c;
	vlm_err err;
	CHECK_INT(load(&c, &err), 0);
	CHECK_INT(c.gen.n_eos_ids, 2);
	CHECK_INT(c.gen.eos_ids[1], 1004);
	CHECK_INT(c.gen.pad_id, 1003);
	CHECK(c.gen.do_sample);
	CHECK_NEAR(c.gen.temperature, 0.8, 1e-7);
	CHECK_NEAR(c.gen.top_p, 0.6, 1e-7);
	CHECK_INT(c.gen.top_k, 2);
	CHECK_NEAR(c.gen.repetition_penalty, 1.1, 1e-7);
	CHECK_INT(c.preproc.min_pixels, 3136);
	CHECK_INT(c.preproc.max_pixels, 1000000);
	CHECK_NEAR(c.preproc.mean[1], 0.25, 0);
	CHECK_NEAR(c.preproc.std[2], 8.0, 0);

	write_text("generation_config.json", "{\"top_p\": 1.5}");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "generation_config.json': key 'top_p': 1.5 is outside");
	write_text("generation_config.json", "{\"eos_token_id\": 4096}");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "key 'eos_token_id': 4096 is not below vocab_size 1024");
	write_text("generation_config.json", "{\"do_sample\": true");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "generation_config.json': invalid JSON");
	write_json("generation_config.json", NULL);

	write_text("preprocessor_config.json", "{\"merge_size\": 3}");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "preprocessor_config.json': key 'merge_size': 3 differs from the "
				"vision spatial_merge_size 2");
	write_text("preprocessor_config.json",
		   "{\"size\": {\"shortest_edge\": 2000000, \"longest_edge\": 1000000}}");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "key 'size.shortest_edge'");
	write_text("preprocessor_config.json", "{\"image_std\": [1, 0, 1]}");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "key 'image_std': item 1 is not positive");
	write_json("preprocessor_config.json", NULL);

	/* No eos id in any file. */
	json_t *root = tiny();
	json_object_del(text_of(root), "eos_token_id");
	expect_config_error(
		root, -EBADMSG,
		"key 'eos_token_id': in neither config.json nor generation_config.json");
}

static void test_config_errors(void)
{
	write_json("config.json", NULL);
	struct vlm_config c;
	vlm_err err;
	CHECK_INT(vlm_config_load(dir, &c, &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "config.json': No such file");

	write_text("config.json", "{\"model_type\": ");
	CHECK_INT(vlm_config_load(dir, &c, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "config.json': invalid JSON");

	json_t *root = tiny();
	json_object_del(text_of(root), "hidden_size");
	expect_config_error(root, -EBADMSG, "config.json': key 'text_config.hidden_size': missing");

	root = tiny();
	json_object_set_new(text_of(root), "num_hidden_layers", json_string("2"));
	expect_config_error(root, -EBADMSG, "key 'text_config.num_hidden_layers': not an integer");

	root = tiny();
	json_object_set_new(text_of(root), "vocab_size", json_integer(0));
	expect_config_error(root, -EBADMSG, "key 'text_config.vocab_size': 0 is outside");

	root = tiny();
	json_object_set_new(text_of(root), "num_key_value_heads", json_integer(3));
	expect_config_error(root, -EBADMSG,
			    "key 'text_config.num_key_value_heads': 3 does not divide "
			    "num_attention_heads 8");

	root = tiny();
	json_object_del(text_of(root), "head_dim");
	json_object_set_new(text_of(root), "num_attention_heads", json_integer(7));
	json_object_set_new(text_of(root), "num_key_value_heads", json_integer(7));
	expect_config_error(root, -EBADMSG,
			    "key 'text_config.num_attention_heads': 7 does not divide "
			    "hidden_size 256");

	root = tiny();
	json_object_set_new(json_object_get(text_of(root), "rope_parameters"), "mrope_section",
			    json_pack("[i,i,i]", 2, 3, 4));
	expect_config_error(root, -EBADMSG,
			    "key 'text_config.rope_parameters.mrope_section': [2, 3, 4] sums to 9, "
			    "not rotary_dim / 2 = 8");

	root = tiny();
	json_object_del(json_object_get(text_of(root), "rope_parameters"), "mrope_section");
	expect_config_error(root, -EBADMSG,
			    "key 'text_config.rope_parameters.mrope_section': "
			    "missing");

	root = tiny();
	json_object_set_new(json_object_get(text_of(root), "rope_parameters"),
			    "partial_rotary_factor", json_real(0.3));
	expect_config_error(root, -EBADMSG,
			    "key 'text_config.rope_parameters.partial_rotary_"
			    "factor': 0.3 of head_dim 32");

	root = tiny();
	json_object_set_new(json_object_get(text_of(root), "rope_parameters"), "rope_type",
			    json_string("yarn"));
	expect_config_error(root, -ENOTSUP,
			    "key 'text_config.rope_parameters.rope_type': 'yarn' "
			    "is not supported");

	root = tiny();
	json_object_set_new(json_object_get(root, "vision_config"), "hidden_act",
			    json_string("gelu"));
	expect_config_error(root, -ENOTSUP, "key 'vision_config.hidden_act': 'gelu'");

	root = tiny();
	json_object_set_new(root, "model_type", json_string("qwen2_vl"));
	expect_config_error(root, -ENOTSUP, "key 'model_type': 'qwen2_vl' is not supported");

	root = tiny();
	json_object_del(root, "vision_config");
	expect_config_error(root, -EBADMSG, "key 'vision_config': missing");

	root = tiny();
	json_object_set_new(json_object_get(root, "vision_config"), "out_hidden_size",
			    json_integer(128));
	expect_config_error(
		root, -EBADMSG,
		"key 'vision_config.out_hidden_size': 128 differs from text hidden_size "
		"256");

	root = tiny();
	json_object_set_new(json_object_get(root, "vision_config"), "image_size",
			    json_integer(100));
	expect_config_error(
		root, -EBADMSG,
		"key 'vision_config.image_size': 100 is not a multiple of patch_size 14");

	root = tiny();
	json_object_set_new(root, "image_token_id", json_integer(5000));
	expect_config_error(root, -EBADMSG, "key 'image_token_id': 5000 is outside [0, 1023]");

	root = tiny();
	json_object_del(root, "image_start_token_id");
	expect_config_error(root, -EBADMSG, "key 'image_start_token_id': missing");

	root = tiny();
	json_object_set_new(text_of(root), "eos_token_id", json_string("x"));
	expect_config_error(root, -EBADMSG,
			    "key 'text_config.eos_token_id': not an integer or a "
			    "list");

	root = tiny();
	json_object_set_new(text_of(root), "attention_bias", json_integer(1));
	expect_config_error(root, -EBADMSG, "key 'text_config.attention_bias': not a boolean");
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_v5_defaults();
	test_v4_dialect();
	test_priorities();
	test_side_files();
	test_config_errors();
	write_json("config.json", NULL);
	rmdir(dir);
	return CHECK_DONE();
}
