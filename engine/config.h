/* A model directory's hyper-parameters: config.json (text and vision towers, multimodal token
 * ids), generation_config.json (sampling defaults, optional) and preprocessor_config.json (image
 * budget and normalisation, optional). Every number the engine uses comes from here; nothing about
 * token ids or sizes is hard-coded elsewhere.
 *
 * struct vlm_config is plain data (no heap), filled by vlm_config_load and safe to copy and to
 * share read-only between threads. */
#ifndef VLM_CONFIG_H
#define VLM_CONFIG_H

#include <stdbool.h>

#include "vlm.h"

#define VLM_MAX_EOS_IDS 8

struct vlm_text_config {
	int vocab_size;
	int hidden_size;
	int n_layers;
	int n_heads;
	int n_kv_heads;        /* n_heads % n_kv_heads == 0 */
	int head_dim;          /* text_config.head_dim, else hidden_size / n_heads */
	int intermediate_size; /* per half of the fused gate_up projection */
	int max_position_embeddings;
	float rms_norm_eps;
	bool attention_bias; /* q/k/v biases (o_proj never has one) */
	double rope_theta;
	double partial_rotary_factor;
	int rotary_dim;       /* head_dim * partial_rotary_factor: the rotated leading dims */
	int mrope_section[3]; /* frequency pairs for t, h, w; sums to rotary_dim / 2 */
};

struct vlm_vision_config {
	int depth;
	int hidden_size;
	int n_heads;
	int head_dim; /* hidden_size / n_heads */
	int patch_size;
	int temporal_patch_size;
	int spatial_merge_size;
	int in_channels;
	int image_size;
	int n_positions;       /* (image_size / patch_size)^2 rows of the position table */
	int out_hidden_size;   /* = text hidden_size; also the block MLP width */
	int intermediate_size; /* the patch merger's MLP width */
	float rms_norm_eps;
	bool attention_bias;
};

/* Multimodal token ids; video ids are -1 when config.json has none. */
struct vlm_token_ids {
	int image;
	int video;
	int image_start;
	int image_end;
	int video_start;
	int video_end;
};

/* Sampling defaults. eos ids and pad come from generation_config.json when it names them, else
 * from config.json; the other fields from generation_config.json, else transformers' defaults
 * (greedy, temperature 1, top_p 1, top_k 50, repetition_penalty 1). */
struct vlm_generation_config {
	int eos_ids[VLM_MAX_EOS_IDS];
	int n_eos_ids; /* >= 1 */
	int pad_id;    /* -1 when neither file names one */
	bool do_sample;
	float temperature;
	float top_p;
	int top_k; /* 0 disables top-k */
	float repetition_penalty;
};

/* Image preprocessing; defaults are GLM-4.6V's published values when the file is absent. */
struct vlm_preproc_config {
	long long min_pixels; /* size.shortest_edge: a pixel count over both temporal frames */
	long long max_pixels; /* size.longest_edge, likewise */
	int patch_size;
	int temporal_patch_size;
	int merge_size;
	float mean[3];
	float std[3];
};

struct vlm_config {
	struct vlm_text_config text;
	struct vlm_vision_config vision;
	struct vlm_token_ids tokens;
	bool tie_word_embeddings;
	struct vlm_generation_config gen;
	struct vlm_preproc_config preproc;
};

/* Reads and validates DIR/config.json, DIR/generation_config.json and
 * DIR/preprocessor_config.json (the last two optional). Errors: -ENOENT (no config.json),
 * -EBADMSG (invalid JSON, a missing key, a wrong type or inconsistent values: err names the file
 * and the key), -ENOTSUP (a model type, rope type or activation this engine does not implement). */
int vlm_config_load(const char *dir, struct vlm_config *cfg, vlm_err *err);

#endif
