/* libvlm: the public interface of intake's GLM-4V inference engine.
 *
 * Owns: the error type every intake library reports through, backend discovery, and (as the
 * engine grows) model loading, tokenizing, image encoding and generation.
 * Thread safety: functions here are safe to call from any thread unless a prototype says
 * otherwise. Nothing here prints; callers log the error message once, at the top level. */
#ifndef VLM_H
#define VLM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An error report: `code` is the negative errno the failing function returned, `reason` an
 * optional module-specific detail (for example enum ex_ingest_reason), `msg` one line of the form
 * "module: object 'name': what is wrong". Every function that takes a `vlm_err *` accepts NULL. */
typedef struct vlm_err {
	int code;
	int reason;
	char msg[512];
} vlm_err;

/* Fills `err` (if not NULL) and returns `code`, so callers can write
 * `return vlm_err_set(err, -EINVAL, "config: key '%s': not a number", key);` */
int vlm_err_set(vlm_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vlm_err_setv(vlm_err *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* Same as vlm_err_set, also recording a module-specific reason. */
int vlm_err_set_reason(vlm_err *err, int code, int reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Copies `text` into dst[size] (always NUL-terminated, cut short when it does not fit) with
 * control characters, DEL and backslash written as \xNN, so outside text such as a file name
 * keeps an error message or log line on one line. Returns dst. */
const char *vlm_err_escape(char *dst, size_t size, const char *text);

/* Replaces every control character of `text` (a NUL-terminated message in the making) with a
 * space: prose that may span lines, such as a library's message or a value quoted from a file,
 * then keeps the message on one line. */
void vlm_err_flatten(char *text);

/* Number of CUDA devices usable by the engine: 0 when built without CUDA or when no device (or no
 * driver) is present. Never fails. */
int vlm_cuda_device_count(void);

const char *vlm_version(void);

/* ---- Tracing ------------------------------------------------------------------------------
 * A trace callback receives named intermediate tensors [rows, cols] (f32, borrowed for the call)
 * as the forward pass produces them: vision.patch_embed, vision.post_conv_norm,
 * vision.pos_embed, vision.block.N, vision.post_norm, vision.downsample, vision.merger,
 * text.embed, text.layer.N, text.norm, text.logits. Used to locate a mismatch with transformers
 * layer by layer (`intake model generate --trace DIR` writes them to files). */
typedef void vlm_trace_fn(void *user, const char *name, const float *data, int64_t rows,
			  int64_t cols);
struct vlm_trace {
	vlm_trace_fn *fn;
	void *user;
};

/* ---- Model ----------------------------------------------------------------------------------
 * A model is a model directory as published on the Hugging Face hub (config.json, safetensors
 * shards or one model.safetensors, tokenizer.json, optional generation_config.json and
 * preprocessor_config.json), mmapped and checked. Immutable after loading except for the trace;
 * the CPU backend runs one forward pass of a model at a time (its thread pool is shared), so
 * sessions of one model must not run concurrently. */
struct vlm_model;

struct vlm_model_opts {
	int n_threads;      /* 0: every online CPU */
	bool reference_ops; /* the plain single-threaded reference ops (tests, debugging) */
	/* Opt-in: matmuls with bf16 weights (prefill, vision and decode) and attention on
	 * bf16-rounded activations with AVX512_BF16 dot products (prefill and vision 2-4x as fast,
	 * decode at the memory bandwidth on a busy core; every other op stays f32). Load fails with
	 * -ENOTSUP on a CPU without AVX512_BF16. Off: f32 throughout, the parity default. */
	bool bf16_activations;
};

/* Whether bf16_activations can be turned on here (this CPU and this build have AVX512_BF16), so
 * a configuration can be refused before any model is loaded. */
bool vlm_bf16_supported(void);

int vlm_model_load(const char *dir, const struct vlm_model_opts *opts, struct vlm_model **out,
		   vlm_err *err);
void vlm_model_free(struct vlm_model *model); /* accepts NULL */
/* Sets or (trace NULL) clears the trace callback. */
void vlm_model_set_trace(struct vlm_model *model, const struct vlm_trace *trace);

#define VLM_INFO_MAX_EOS 8
struct vlm_model_info {
	const char *architecture; /* "Glm4vForConditionalGeneration" */
	int text_layers, text_hidden, text_heads, text_kv_heads, text_head_dim, text_intermediate;
	int vision_layers, vision_hidden, vision_heads, patch_size, merge_size;
	int vocab_size;  /* the LM head's rows */
	int max_context; /* max_position_embeddings */
	int64_t n_params_vision, n_params_text, n_params;
	int64_t n_tensors;
	int64_t weight_bytes;     /* as stored (mmapped) */
	const char *weight_dtype; /* "BF16", "F16", "F32" or "mixed" */
	int64_t kv_bytes_per_token;
	int image_token_id, image_start_id, image_end_id;
	int eos_ids[VLM_INFO_MAX_EOS];
	int n_eos_ids;
	double rope_theta;
	int rotary_dim, mrope_section[3];
	int64_t min_pixels, max_pixels;
};
void vlm_model_get_info(const struct vlm_model *model, struct vlm_model_info *info);

/* The vocabulary, for constraints over tokens (the schema grammar): ids 0 .. n_tokens-1 exist in
 * the tokenizer (the LM head may have more rows; generation never picks those). */
int32_t vlm_model_n_tokens(const struct vlm_model *model);
/* The bytes token `id` spells (an added token's literal text; a regular token's bytes may be part
 * of a multi-byte character), borrowed from the model; NULL when id is not a token. */
const char *vlm_model_token_bytes(const struct vlm_model *model, int32_t id, size_t *len);
/* Tokens that are special (control) tokens, and those that end generation. */
bool vlm_model_token_is_special(const struct vlm_model *model, int32_t id);
bool vlm_model_token_is_stop(const struct vlm_model *model, int32_t id);
/* How many tokens `len` bytes of UTF-8 `text` encode to as a prompt's text (no template, no
 * special tokens added), so a caller can size images to fit a context before generating.
 * Errors: -EINVAL for invalid UTF-8, -ENOMEM. */
int vlm_model_count_tokens(const struct vlm_model *model, const char *text, size_t len,
			   size_t *n_tokens, vlm_err *err);

/* ---- Sessions and generation ----------------------------------------------------------------
 * A session is one sequence: its KV cache (n_ctx tokens) and its working memory, allocated when
 * the session is made or grown once for a larger prompt or image; the token loop never
 * allocates. One thread at a time. */
struct vlm_session;

int vlm_session_new(struct vlm_model *model, int64_t n_ctx, struct vlm_session **out, vlm_err *err);
void vlm_session_free(struct vlm_session *s); /* accepts NULL */

/* The low-level steps generate is made of (also used by the parity tests). prefill starts a new
 * sequence: ids [n] with `image_token_id` placeholders, images given as preprocessed
 * pixel_values [sum(t*gh*gw), C*T*P*P] with grids (t, gh, gw). logits: [n, vocab] when
 * all_logits, else [vocab] for the last token. decode appends one token. */
int vlm_session_prefill(struct vlm_session *s, const int32_t *ids, int64_t n,
			const float *pixel_values, const int64_t (*grids)[3], int n_images,
			float *logits, bool all_logits, vlm_err *err);
int vlm_session_decode(struct vlm_session *s, int32_t token, float *logits, vlm_err *err);

/* 8-bit RGB, rows top to bottom (what ingest produces). */
struct vlm_image {
	const uint8_t *rgb;
	int width, height;
};

/* Called before each token is chosen with the step's logits [n_vocab] (f32, writable): set a
 * logit to -INFINITY to forbid that token. `generated` holds the tokens chosen so far. A negative
 * return aborts generation with that error. */
typedef int vlm_logit_mask_fn(void *user, const int32_t *generated, size_t n_generated,
			      float *logits, int64_t n_vocab);
/* Checked between steps; true stops generation (VLM_STOP_ABORTED). */
typedef bool vlm_abort_fn(void *user);
/* Each chosen token, with its log-probability and the text it completes (possibly empty). At the
 * end, bytes held back for an incomplete character come once more with token -1. */
typedef void vlm_token_fn(void *user, int32_t token, float logprob, const char *text, size_t len);

struct vlm_request {
	const char *system; /* optional system message */
	const char *prompt; /* the user's text, after the images */
	const struct vlm_image *images;
	int n_images;
	int max_tokens;
	bool sample; /* false: greedy */
	float temperature, top_p;
	int top_k;
	float repetition_penalty; /* 0 means 1 (off) */
	uint64_t seed;
	vlm_logit_mask_fn *mask;
	vlm_abort_fn *abort;
	vlm_token_fn *on_token;
	void *user;
};

enum vlm_stop { VLM_STOP_EOS, VLM_STOP_LENGTH, VLM_STOP_ABORTED };

struct vlm_result {
	int32_t *tokens; /* generated tokens, without the stop token */
	float *logprobs; /* [n_tokens] */
	size_t n_tokens;
	char *text; /* UTF-8, special tokens skipped */
	enum vlm_stop stop;
	int64_t n_prompt_tokens;
};

/* Runs one request: preprocesses the images, builds the chat prompt (thinking disabled), prefills
 * and decodes until a stop token, max_tokens or the abort hook. *out is caller-owned; free it with
 * vlm_result_done. */
int vlm_generate(struct vlm_session *s, const struct vlm_request *req, struct vlm_result *out,
		 vlm_err *err);
void vlm_result_done(struct vlm_result *r);

#ifdef __cplusplus
}
#endif
#endif
