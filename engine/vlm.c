/* The engine's objects and main flow. Start reading at vlm_generate: preprocess images, build the
 * chat prompt, prefill (vision tower, embeddings with image rows spliced in, M-RoPE positions,
 * decoder), then one decode step per token with the caller's logit mask and the sampler.
 *
 * Owns: struct vlm_model (config, mmapped weights, tokenizer, CPU ops context) and struct
 * vlm_session (KV cache, grow-only working buffers). Memory is taken when a session is made or
 * when a larger prompt or image arrives, never per token. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "image_prep.h"
#include "model.h"
#include "positions.h"
#include "sampler.h"
#include "tokenizer.h"

struct vlm_model {
	struct vlm_config cfg;
	struct vlm_weights *weights;
	struct vlm_tokenizer *tok;
	struct vlm_ops *ops;
	struct vlm_trace trace;
};

/* A float buffer that only grows. */
struct grow_buf {
	float *data;
	int64_t cap;
};

struct vlm_session {
	struct vlm_model *model;
	struct vlm_kv kv;
	float *kv_data;
	int64_t n_past, rope_delta;
	struct grow_buf scratch, embeds, image_rows;
	int32_t *pos;     /* [3, n_ctx] */
	float *logits;    /* [vocab] */
	int32_t *history; /* [n_ctx] prompt and generated ids */
};

static int grow(struct grow_buf *b, int64_t n, vlm_err *err)
{
	if (n <= b->cap)
		return 0;
	float *p = realloc(b->data, (size_t)n * sizeof *p);
	if (!p)
		return vlm_err_set(err, -ENOMEM,
				   "engine: out of memory for %lld floats of working "
				   "memory",
				   (long long)n);
	b->data = p;
	b->cap = n;
	return 0;
}

bool vlm_bf16_supported(void)
{
	return vlm_ops_bf16_supported();
}

int vlm_model_load(const char *dir, const struct vlm_model_opts *opts, struct vlm_model **out,
		   vlm_err *err)
{
	*out = NULL;
	struct vlm_model *m = calloc(1, sizeof *m);
	if (!m)
		return vlm_err_set(err, -ENOMEM, "engine: out of memory");
	char path[4096];
	int rc = vlm_config_load(dir, &m->cfg, err);
	if (rc < 0)
		goto fail;
	if ((rc = vlm_weights_open(dir, &m->cfg, &m->weights, err)) < 0)
		goto fail;
	if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path) {
		rc = vlm_err_set(err, -ENAMETOOLONG, "engine: model directory '%s': path too long",
				 dir);
		goto fail;
	}
	if ((rc = vlm_tokenizer_load(path, &m->tok, err)) < 0)
		goto fail;
	if (vlm_tokenizer_vocab_size(m->tok) > m->cfg.text.vocab_size) {
		rc = vlm_err_set(err, -EBADMSG,
				 "engine: '%s': %d tokens, more than the model's "
				 "vocab_size %d",
				 path, vlm_tokenizer_vocab_size(m->tok), m->cfg.text.vocab_size);
		goto fail;
	}
	if ((rc = vlm_ops_new(opts ? opts->n_threads : 0, &m->ops, err)) < 0)
		goto fail;
	if (opts && opts->reference_ops && (rc = vlm_ops_set_impl(m->ops, VLM_OPS_REF, err)) < 0)
		goto fail;
	if (opts && opts->bf16_activations && (rc = vlm_ops_set_bf16(m->ops, true, err)) < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	vlm_model_free(m);
	return rc;
}

void vlm_model_free(struct vlm_model *m)
{
	if (!m)
		return;
	vlm_ops_free(m->ops);
	vlm_tokenizer_free(m->tok);
	vlm_weights_free(m->weights);
	free(m);
}

void vlm_model_set_trace(struct vlm_model *m, const struct vlm_trace *trace)
{
	m->trace = trace ? *trace : (struct vlm_trace){ 0 };
}

void vlm_model_get_info(const struct vlm_model *m, struct vlm_model_info *info)
{
	const struct vlm_config *c = &m->cfg;
	struct vlm_weights_info wi = { 0 };
	vlm_weights_info(c, &wi, NULL);
	*info = (struct vlm_model_info){
		.architecture = "Glm4vForConditionalGeneration",
		.text_layers = c->text.n_layers,
		.text_hidden = c->text.hidden_size,
		.text_heads = c->text.n_heads,
		.text_kv_heads = c->text.n_kv_heads,
		.text_head_dim = c->text.head_dim,
		.text_intermediate = c->text.intermediate_size,
		.vision_layers = c->vision.depth,
		.vision_hidden = c->vision.hidden_size,
		.vision_heads = c->vision.n_heads,
		.patch_size = c->vision.patch_size,
		.merge_size = c->vision.spatial_merge_size,
		.vocab_size = c->text.vocab_size,
		.max_context = c->text.max_position_embeddings,
		.n_params_vision = wi.n_params_vision,
		.n_params_text = wi.n_params_text,
		.n_params = wi.n_params,
		.n_tensors = (int64_t)(wi.n_tensors_vision + wi.n_tensors_text),
		.weight_bytes = vlm_weights_bytes(m->weights),
		.weight_dtype = vlm_weights_dtype(m->weights),
		.kv_bytes_per_token = wi.kv_bytes_per_token,
		.image_token_id = c->tokens.image,
		.image_start_id = c->tokens.image_start,
		.image_end_id = c->tokens.image_end,
		.rope_theta = c->text.rope_theta,
		.rotary_dim = c->text.rotary_dim,
		.min_pixels = c->preproc.min_pixels,
		.max_pixels = c->preproc.max_pixels,
	};
	memcpy(info->mrope_section, c->text.mrope_section, sizeof info->mrope_section);
	for (int i = 0; i < c->gen.n_eos_ids && i < VLM_INFO_MAX_EOS; i++)
		info->eos_ids[info->n_eos_ids++] = c->gen.eos_ids[i];
}

int32_t vlm_model_n_tokens(const struct vlm_model *m)
{
	return vlm_tokenizer_vocab_size(m->tok);
}

const char *vlm_model_token_bytes(const struct vlm_model *m, int32_t id, size_t *len)
{
	return vlm_token_bytes(m->tok, id, len);
}

bool vlm_model_token_is_special(const struct vlm_model *m, int32_t id)
{
	return vlm_token_is_special(m->tok, id);
}

static bool is_stop(const struct vlm_generation_config *g, int32_t token)
{
	for (int i = 0; i < g->n_eos_ids; i++)
		if (g->eos_ids[i] == token)
			return true;
	return false;
}

bool vlm_model_token_is_stop(const struct vlm_model *m, int32_t id)
{
	return is_stop(&m->cfg.gen, id);
}

int vlm_model_count_tokens(const struct vlm_model *m, const char *text, size_t len,
			   size_t *n_tokens, vlm_err *err)
{
	/* Every token spells at least one byte, so len + 1 ids always suffice. */
	int32_t *ids = malloc((len + 1) * sizeof *ids);
	if (!ids)
		return vlm_err_set(err, -ENOMEM, "engine: out of memory for %zu bytes of text",
				   len);
	int rc = vlm_tokenize(m->tok, text, len, ids, len + 1, n_tokens, err);
	free(ids);
	return rc;
}

int vlm_session_new(struct vlm_model *m, int64_t n_ctx, struct vlm_session **out, vlm_err *err)
{
	*out = NULL;
	const struct vlm_text_config *t = &m->cfg.text;
	if (n_ctx < 2 || n_ctx > t->max_position_embeddings)
		return vlm_err_set(err, -EINVAL,
				   "engine: context of %lld tokens (the model allows "
				   "2 .. %d)",
				   (long long)n_ctx, t->max_position_embeddings);
	struct vlm_session *s = calloc(1, sizeof *s);
	int64_t kvd = (int64_t)t->n_kv_heads * t->head_dim, L = t->n_layers;
	if (!s)
		return vlm_err_set(err, -ENOMEM, "engine: out of memory");
	s->model = m;
	s->kv.n_ctx = n_ctx;
	s->kv.k = calloc((size_t)L, sizeof *s->kv.k);
	s->kv.v = calloc((size_t)L, sizeof *s->kv.v);
	s->kv_data = malloc((size_t)(2 * L * n_ctx * kvd) * sizeof(float));
	s->pos = malloc((size_t)(3 * n_ctx) * sizeof *s->pos);
	s->logits = malloc((size_t)t->vocab_size * sizeof *s->logits);
	s->history = malloc((size_t)n_ctx * sizeof *s->history);
	if (!s->kv.k || !s->kv.v || !s->kv_data || !s->pos || !s->logits || !s->history) {
		vlm_session_free(s);
		return vlm_err_set(err, -ENOMEM,
				   "engine: out of memory for a KV cache of %lld "
				   "tokens",
				   (long long)n_ctx);
	}
	for (int64_t l = 0; l < L; l++) {
		s->kv.k[l] = s->kv_data + (2 * l) * n_ctx * kvd;
		s->kv.v[l] = s->kv_data + (2 * l + 1) * n_ctx * kvd;
	}
	*out = s;
	return 0;
}

void vlm_session_free(struct vlm_session *s)
{
	if (!s)
		return;
	free(s->kv.k);
	free(s->kv.v);
	free(s->kv_data);
	free(s->pos);
	free(s->logits);
	free(s->history);
	free(s->scratch.data);
	free(s->embeds.data);
	free(s->image_rows.data);
	free(s);
}

/* x [n, H] = the token embeddings, with each image placeholder row replaced, in order, by the
 * next row of the vision output. */
static int embed_prompt(struct vlm_session *s, const int32_t *ids, int64_t n, int64_t n_rows,
			vlm_err *err)
{
	struct vlm_model *m = s->model;
	int64_t H = m->cfg.text.hidden_size, row = 0;
	float *x = s->embeds.data;
	int rc = vlm_op_embedding(m->ops, x, m->weights->text.embed, ids, n, err);
	if (rc < 0)
		return rc;
	for (int64_t i = 0; i < n; i++) {
		if (ids[i] != m->cfg.tokens.image)
			continue;
		if (row == n_rows)
			break;
		memcpy(x + i * H, s->image_rows.data + row * H, (size_t)H * sizeof *x);
		row++;
	}
	int64_t placeholders = 0;
	for (int64_t i = 0; i < n; i++)
		placeholders += ids[i] == m->cfg.tokens.image;
	if (placeholders != n_rows)
		return vlm_err_set(err, -EINVAL,
				   "engine: the prompt has %lld image tokens, the "
				   "images give %lld",
				   (long long)placeholders, (long long)n_rows);
	vlm_trace_emit(&m->trace, "text.embed", x, n, H);
	return 0;
}

int vlm_session_prefill(struct vlm_session *s, const int32_t *ids, int64_t n,
			const float *pixel_values, const int64_t (*grids)[3], int n_images,
			float *logits, bool all_logits, vlm_err *err)
{
	struct vlm_model *m = s->model;
	const struct vlm_config *c = &m->cfg;
	int64_t H = c->text.hidden_size, n_patches = 0,
		merge2 = (int64_t)c->vision.spatial_merge_size * c->vision.spatial_merge_size;
	if (n < 1 || n > s->kv.n_ctx)
		return vlm_err_set(err, -E2BIG,
				   "engine: a prompt of %lld tokens does not fit the "
				   "context of %lld",
				   (long long)n, (long long)s->kv.n_ctx);
	for (int i = 0; i < n_images; i++)
		n_patches += grids[i][0] * grids[i][1] * grids[i][2];
	s->n_past = 0;
	int rc = vlm_rope_index(ids, n, c->tokens.image, c->tokens.video, grids, n_images,
				c->vision.spatial_merge_size, s->pos, &s->rope_delta, err);
	if (rc < 0)
		return rc;
	int64_t need = vlm_text_scratch_floats(c, n);
	if (n_images > 0) {
		int64_t v = vlm_vision_scratch_floats(c, n_patches, n_images);
		need = need > v ? need : v;
	}
	if ((rc = grow(&s->scratch, need, err)) < 0 || (rc = grow(&s->embeds, n * H, err)) < 0 ||
	    (rc = grow(&s->image_rows, n_patches / merge2 * H, err)) < 0)
		return rc;
	if (n_images > 0 &&
	    (rc = vlm_vision_encode(m->ops, c, &m->weights->vision, pixel_values, grids, n_images,
				    s->scratch.data, s->image_rows.data, &m->trace, err)) < 0)
		return rc;
	if ((rc = embed_prompt(s, ids, n, n_patches / merge2, err)) < 0)
		return rc;
	if ((rc = vlm_text_forward(m->ops, c, &m->weights->text, &s->kv, s->embeds.data, n, s->pos,
				   0, s->scratch.data, logits, all_logits, &m->trace, err)) < 0)
		return rc;
	memcpy(s->history, ids, (size_t)n * sizeof *ids);
	s->n_past = n;
	return 0;
}

int vlm_session_decode(struct vlm_session *s, int32_t token, float *logits, vlm_err *err)
{
	struct vlm_model *m = s->model;
	if (s->n_past < 1)
		return vlm_err_set(err, -EINVAL, "engine: decode before prefill");
	if (s->n_past >= s->kv.n_ctx)
		return vlm_err_set(err, -E2BIG, "engine: the context of %lld tokens is full",
				   (long long)s->kv.n_ctx);
	if (token < 0 || token >= m->cfg.text.vocab_size)
		return vlm_err_set(err, -EINVAL, "engine: token %d outside the vocabulary", token);
	int32_t p = (int32_t)(s->n_past + s->rope_delta), pos[3] = { p, p, p };
	int rc = vlm_op_embedding(m->ops, s->embeds.data, m->weights->text.embed, &token, 1, err);
	if (rc < 0)
		return rc;
	if ((rc = vlm_text_forward(m->ops, &m->cfg, &m->weights->text, &s->kv, s->embeds.data, 1,
				   pos, s->n_past, s->scratch.data, logits, false, &m->trace,
				   err)) < 0)
		return rc;
	s->history[s->n_past++] = token;
	return 0;
}

/* Preprocesses every image into one pixel_values array (rows of all images in order). */
static int prep_images(const struct vlm_model *m, const struct vlm_image *images, int n,
		       struct vlm_prepped *prepped, int64_t (*grids)[3], int64_t *n_tokens,
		       float **pixels, vlm_err *err)
{
	const struct vlm_preproc_config *pc = &m->cfg.preproc;
	struct vlm_prep_params p = {
		.patch_size = pc->patch_size,
		.temporal_patch_size = pc->temporal_patch_size,
		.merge_size = pc->merge_size,
		.min_pixels = pc->min_pixels,
		.max_pixels = pc->max_pixels,
	};
	memcpy(p.mean, pc->mean, sizeof p.mean);
	memcpy(p.std, pc->std, sizeof p.std);
	int64_t rows = 0;
	for (int i = 0; i < n; i++) {
		int rc = vlm_image_prep(images[i].rgb, images[i].height, images[i].width, &p,
					&prepped[i], err);
		if (rc < 0)
			return rc;
		memcpy(grids[i], prepped[i].grid_thw, sizeof grids[i]);
		n_tokens[i] = prepped[i].n_tokens;
		rows += prepped[i].n_patches;
	}
	int64_t dim = n ? prepped[0].patch_dim : 0;
	*pixels = malloc((size_t)(rows * dim + 1) * sizeof **pixels);
	if (!*pixels)
		return vlm_err_set(err, -ENOMEM, "engine: out of memory for %lld image patches",
				   (long long)rows);
	for (int i = 0, at = 0; i < n; i++) {
		memcpy(*pixels + at * dim, prepped[i].pixel_values,
		       (size_t)(prepped[i].n_patches * dim) * sizeof **pixels);
		at += (int)prepped[i].n_patches;
	}
	return 0;
}

/* The token loop: mask, choose, report, stop or feed back. Allocates nothing. */
static int decode_loop(struct vlm_session *s, const struct vlm_request *req,
		       struct vlm_sampler *sampler, struct vlm_detok_stream *detok,
		       struct vlm_result *out, vlm_err *err)
{
	struct vlm_model *m = s->model;
	int64_t V = m->cfg.text.vocab_size, n_tok = vlm_tokenizer_vocab_size(m->tok);
	out->stop = VLM_STOP_LENGTH;
	for (int step = 0; step < req->max_tokens; step++) {
		if (req->abort && req->abort(req->user)) {
			out->stop = VLM_STOP_ABORTED;
			return 0;
		}
		/* The LM head has padding rows past the tokenizer's last id: they spell nothing. */
		for (int64_t v = n_tok; v < V; v++)
			s->logits[v] = -INFINITY;
		int rc;
		if (req->mask &&
		    (rc = req->mask(req->user, out->tokens, out->n_tokens, s->logits, V)) < 0)
			return vlm_err_set(err, rc, "engine: the logit mask stopped generation");
		int32_t token;
		float logprob;
		if ((rc = vlm_sampler_next(sampler, s->logits, s->history, (size_t)s->n_past,
					   &token, &logprob, err)) < 0)
			return rc;
		if (is_stop(&m->cfg.gen, token)) {
			out->stop = VLM_STOP_EOS;
			return 0;
		}
		out->tokens[out->n_tokens] = token;
		out->logprobs[out->n_tokens++] = logprob;
		if (req->on_token) {
			const char *text;
			size_t len;
			if ((rc = vlm_detok_stream_push(detok, token, &text, &len, err)) < 0)
				return rc;
			req->on_token(req->user, token, logprob, text, len);
		}
		if (step + 1 < req->max_tokens &&
		    (rc = vlm_session_decode(s, token, s->logits, err)) < 0)
			return rc;
	}
	return 0;
}

int vlm_generate(struct vlm_session *s, const struct vlm_request *req, struct vlm_result *out,
		 vlm_err *err)
{
	struct vlm_model *m = s->model;
	*out = (struct vlm_result){ 0 };
	int n = req->n_images;
	if (n < 0 || req->max_tokens < 1 || !req->prompt)
		return vlm_err_set(err, -EINVAL,
				   "engine: a request needs a prompt, max_tokens >= 1 "
				   "and a non-negative image count");
	struct vlm_prepped *prepped = calloc((size_t)n + 1, sizeof *prepped);
	int64_t(*grids)[3] = calloc((size_t)n + 1, sizeof *grids);
	int64_t *image_tokens = calloc((size_t)n + 1, sizeof *image_tokens);
	float *pixels = NULL;
	int32_t *ids = NULL;
	size_t n_ids = 0;
	struct vlm_sampler *sampler = NULL;
	struct vlm_detok_stream *detok = NULL;
	int rc = 0;
	if (!prepped || !grids || !image_tokens) {
		rc = vlm_err_set(err, -ENOMEM, "engine: out of memory");
		goto out;
	}
	if ((rc = prep_images(m, req->images, n, prepped, grids, image_tokens, &pixels, err)) < 0 ||
	    (rc = vlm_chat_prompt(m->tok, m->cfg.tokens.image, req->system, req->prompt,
				  image_tokens, n, &ids, &n_ids, err)) < 0)
		goto out;
	out->n_prompt_tokens = (int64_t)n_ids;
	if ((int64_t)n_ids + req->max_tokens > s->kv.n_ctx) {
		rc = vlm_err_set(err, -E2BIG,
				 "engine: %zu prompt tokens and up to %d new ones do "
				 "not fit the context of %lld tokens",
				 n_ids, req->max_tokens, (long long)s->kv.n_ctx);
		goto out;
	}
	struct vlm_sampler_params sp = {
		.greedy = !req->sample,
		.temperature = req->temperature,
		.top_p = req->top_p,
		.top_k = req->top_k,
		.seed = req->seed,
		.repetition_penalty = req->repetition_penalty > 0 ? req->repetition_penalty : 1,
	};
	out->tokens = malloc((size_t)req->max_tokens * sizeof *out->tokens);
	out->logprobs = malloc((size_t)req->max_tokens * sizeof *out->logprobs);
	if (!out->tokens || !out->logprobs) {
		rc = vlm_err_set(err, -ENOMEM, "engine: out of memory");
		goto out;
	}
	if ((rc = vlm_sampler_new(m->cfg.text.vocab_size, &sp, &sampler, err)) < 0 ||
	    (rc = vlm_detok_stream_new(m->tok, true, &detok, err)) < 0 ||
	    (rc = vlm_session_prefill(s, ids, (int64_t)n_ids, pixels, (const int64_t(*)[3])grids, n,
				      s->logits, false, err)) < 0 ||
	    (rc = decode_loop(s, req, sampler, detok, out, err)) < 0)
		goto out;
	size_t len;
	if (req->on_token) {
		const char *rest;
		vlm_detok_stream_flush(detok, &rest, &len);
		if (len)
			req->on_token(req->user, -1, 0, rest, len);
	}
	rc = vlm_detokenize(m->tok, out->tokens, out->n_tokens, true, &out->text, &len, err);
out:
	for (int i = 0; prepped && i < n; i++)
		vlm_prepped_done(&prepped[i]);
	free(prepped);
	free(grids);
	free(image_tokens);
	free(pixels);
	free(ids);
	vlm_sampler_free(sampler);
	vlm_detok_stream_free(detok);
	if (rc < 0)
		vlm_result_done(out);
	return rc;
}

void vlm_result_done(struct vlm_result *r)
{
	if (!r)
		return;
	free(r->tokens);
	free(r->logprobs);
	free(r->text);
	*r = (struct vlm_result){ 0 };
}
