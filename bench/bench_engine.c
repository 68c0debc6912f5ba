/* bench_engine: the engine's speed on a model directory at real shapes (issue 3, bench/engine).
 * Usage: bench_engine MODEL_DIR [--threads N] [--precision f32|bf16] [--json FILE]
 * (--precision bf16: vlm_model_opts.bf16_activations, matmuls and attention on bf16-rounded
 * activations; default f32)
 *
 * What is timed (wall clock, one run each after a warm-up; tools/bench_transformers.py times the
 * same steps with transformers on the same inputs):
 * - image prep: vlm_image_prep of a synthetic 1024x1024 RGB image (smart_resize to 1036x1036,
 *   bicubic resize, normalisation, patch rows: 5476 patches, 1369 merged tokens);
 * - vision encode: from the call to vlm_session_prefill to the trace callback "vision.merger",
 *   the vision tower's last output: patch embedding, every block, downsample and merger;
 * - image prefill: the whole vlm_session_prefill of the prompt <|begin_of_image|>, 1369 image
 *   tokens, <|end_of_image|> (vision encode, then the decoder over those 1371 tokens and the
 *   last token's logits); its text part is image prefill minus vision encode;
 * - prefill 1k / 2k: vlm_session_prefill of 1024 / 2048 pseudo-random text ids (below the
 *   tokenizer's size, special tokens skipped) into a fresh sequence, last token's logits only;
 * - decode: 32 vlm_session_decode steps after the 1k prefill (pseudo-random ids fed in; the
 *   step's cost does not depend on which id);
 * - peak RSS: getrusage's ru_maxrss after all of the above (weights mmapped and touched, KV cache,
 *   working memory) less the bandwidth buffer below, which is resident throughout;
 * - roofline: bytes of weights one decode step reads (every text layer and the final norm and
 *   LM head, as stored; the single embedding row and the KV cache are left out) divided by the
 *   streaming read bandwidth (membw.c, all threads, huge pages) measured right before and right
 *   after the decode steps, the higher of the two: this VM's bandwidth moves between about 35
 *   and 60 GB/s from one minute to the next, so a figure taken at another moment says nothing
 *   about the decode.
 * The warm-up (a prefill with a small image, then one decode step) touches every weight once, so
 * no timed step pays for page faults of the mmapped shards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "image_prep.h"
#include "membw.h"
#include "vlm.h"

enum {
	IMAGE_SIDE = 1024,
	WARM_SIDE = 112,
	PREFILL_SHORT = 1024,
	PREFILL_LONG = 2048,
	DECODE_STEPS = 32
};
#define MEMBW_BYTES ((size_t)256 << 20) /* two 128 MiB slices: each far past the last-level cache */

struct results {
	int n_threads;
	bool bf16;
	double load_s, prep_s, vision_s, image_prefill_s, prefill_s[2], decode_s, decode_best_s;
	int64_t image_tokens, image_patches;
	long peak_rss_kib;
	double bw_gb_s[2], bytes_per_token; /* before and after the decode steps */
};

/* The synthetic page: smooth gradients with a fine xor pattern, so the resize has detail to
 * filter. tools/bench_transformers.py builds the same pixels from the same formula. */
static uint8_t *synthetic_image(int side)
{
	uint8_t *rgb = malloc((size_t)side * side * 3);
	if (!rgb)
		return NULL;
	for (int y = 0; y < side; y++)
		for (int x = 0; x < side; x++) {
			uint8_t *p = rgb + ((size_t)y * side + x) * 3;
			p[0] = (uint8_t)(x * 255 / (side - 1));
			p[1] = (uint8_t)(y * 255 / (side - 1));
			p[2] = (uint8_t)((x ^ y) & 255);
		}
	return rgb;
}

/* A 32-bit LCG (Numerical Recipes constants) over [0, n_tokens), skipping special tokens (an
 * image or video placeholder would make the text prompt a malformed multimodal one): the same
 * ids in C and in Python. */
static void pseudo_random_ids(const struct vlm_model *model, int32_t *ids, int64_t n, uint32_t seed)
{
	uint32_t s = seed, below = (uint32_t)vlm_model_n_tokens(model);
	for (int64_t i = 0; i < n; i++) {
		do {
			s = s * 1664525u + 1013904223u;
			ids[i] = (int32_t)((s >> 8) % below);
		} while (vlm_model_token_is_special(model, ids[i]));
	}
}

/* Records when the vision tower hands over its output. */
struct vision_clock {
	double done_s;
};

static void on_trace(void *user, const char *name, const float *data, int64_t rows, int64_t cols)
{
	struct vision_clock *c = user;
	if (strcmp(name, "vision.merger") == 0)
		c->done_s = membw_now_s();
}

/* Preprocesses `rgb` [side, side, 3] with the model's pixel bounds. */
static int prep_image(const struct vlm_model_info *info, const uint8_t *rgb, int side,
		      struct vlm_prepped *out, vlm_err *err)
{
	struct vlm_prep_params p;
	vlm_prep_params_default(&p);
	p.min_pixels = info->min_pixels;
	p.max_pixels = info->max_pixels;
	return vlm_image_prep(rgb, side, side, &p, out, err);
}

/* ids = <|begin_of_image|>, n_tokens image placeholders, <|end_of_image|>; returns the count. */
static int64_t image_prompt(const struct vlm_model_info *info, int64_t n_tokens, int32_t *ids)
{
	ids[0] = info->image_start_id;
	for (int64_t i = 0; i < n_tokens; i++)
		ids[1 + i] = info->image_token_id;
	ids[1 + n_tokens] = info->image_end_id;
	return n_tokens + 2;
}

/* Weight bytes one decode step streams: the text parameters less the embedding table (of which
 * one row is read), at the stored element size. */
static int decode_bytes(const struct vlm_model_info *info, double *bytes, vlm_err *err)
{
	int elem =
		strcmp(info->weight_dtype, "F32") == 0 ? 4
		: strcmp(info->weight_dtype, "BF16") == 0 || strcmp(info->weight_dtype, "F16") == 0
			? 2
			: 0;
	if (!elem)
		return vlm_err_set(err, -ENOTSUP,
				   "bench_engine: weight dtype '%s': the roofline "
				   "needs one dtype",
				   info->weight_dtype);
	int64_t embed = (int64_t)info->vocab_size * info->text_hidden;
	*bytes = (double)(info->n_params_text - embed) * elem;
	return 0;
}

/* Every timed step, in the order the header describes. */
static int run(struct vlm_model *model, struct membw *mb, struct vlm_pool *pool, struct results *r,
	       vlm_err *err)
{
	struct vlm_model_info info;
	vlm_model_get_info(model, &info);
	int64_t n_ctx = PREFILL_LONG + DECODE_STEPS;
	struct vlm_session *s = NULL;
	struct vlm_prepped warm = { 0 }, page = { 0 };
	struct vision_clock clock = { 0 };
	float *logits = malloc((size_t)info.vocab_size * sizeof *logits);
	int32_t *ids = malloc((size_t)n_ctx * sizeof *ids);
	uint8_t *warm_rgb = synthetic_image(WARM_SIDE), *rgb = synthetic_image(IMAGE_SIDE);
	int rc = -ENOMEM;
	if (!logits || !ids || !warm_rgb || !rgb) {
		vlm_err_set(err, rc, "bench_engine: out of memory");
		goto out;
	}
	if ((rc = vlm_session_new(model, n_ctx, &s, err)) < 0 ||
	    (rc = prep_image(&info, warm_rgb, WARM_SIDE, &warm, err)) < 0)
		goto out;

	int64_t n = image_prompt(&info, warm.n_tokens, ids);
	if ((rc = vlm_session_prefill(s, ids, n, warm.pixel_values,
				      (const int64_t(*)[3])warm.grid_thw, 1, logits, false, err)) <
		    0 ||
	    (rc = vlm_session_decode(s, ids[0], logits, err)) < 0)
		goto out;

	double t0 = membw_now_s();
	if ((rc = prep_image(&info, rgb, IMAGE_SIDE, &page, err)) < 0)
		goto out;
	r->prep_s = membw_now_s() - t0;
	r->image_tokens = page.n_tokens;
	r->image_patches = page.n_patches;
	if (page.n_tokens + 2 > n_ctx) {
		rc = vlm_err_set(err, -E2BIG,
				 "bench_engine: %lld image tokens exceed the "
				 "benchmark's context",
				 (long long)page.n_tokens);
		goto out;
	}
	n = image_prompt(&info, page.n_tokens, ids);
	vlm_model_set_trace(model, &(struct vlm_trace){ .fn = on_trace, .user = &clock });
	t0 = membw_now_s();
	rc = vlm_session_prefill(s, ids, n, page.pixel_values, (const int64_t(*)[3])page.grid_thw,
				 1, logits, false, err);
	r->image_prefill_s = membw_now_s() - t0;
	r->vision_s = clock.done_s - t0;
	vlm_model_set_trace(model, NULL);
	if (rc < 0)
		goto out;

	static const int64_t lengths[2] = { PREFILL_SHORT, PREFILL_LONG };
	for (int i = 1; i >= 0; i--) { /* 2k first, so the 1k sequence is the one decode extends */
		pseudo_random_ids(model, ids, lengths[i], 1u + (uint32_t)i);
		t0 = membw_now_s();
		if ((rc = vlm_session_prefill(s, ids, lengths[i], NULL, NULL, 0, logits, false,
					      err)) < 0)
			goto out;
		r->prefill_s[i] = membw_now_s() - t0;
	}

	pseudo_random_ids(model, ids, DECODE_STEPS, 3u);
	r->decode_best_s = 1e30;
	r->bw_gb_s[0] = membw_read(mb, pool);
	t0 = membw_now_s();
	for (int i = 0; i < DECODE_STEPS; i++) {
		double t_step = membw_now_s();
		if ((rc = vlm_session_decode(s, ids[i], logits, err)) < 0)
			goto out;
		t_step = membw_now_s() - t_step;
		r->decode_best_s = t_step < r->decode_best_s ? t_step : r->decode_best_s;
	}
	r->decode_s = membw_now_s() - t0;
	r->bw_gb_s[1] = membw_read(mb, pool);

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	r->peak_rss_kib = ru.ru_maxrss - (long)(membw_bytes(mb) / 1024);
	rc = decode_bytes(&info, &r->bytes_per_token, err);
out:
	vlm_prepped_done(&warm);
	vlm_prepped_done(&page);
	vlm_session_free(s);
	free(logits);
	free(ids);
	free(warm_rgb);
	free(rgb);
	return rc;
}

static double bandwidth(const struct results *r)
{
	return r->bw_gb_s[0] > r->bw_gb_s[1] ? r->bw_gb_s[0] : r->bw_gb_s[1];
}

static void print_table(const struct results *r)
{
	double roof = bandwidth(r) * 1e9 / r->bytes_per_token, decode = DECODE_STEPS / r->decode_s;
	printf("%-44s %14s\n", "measurement", "value");
	printf("%-44s %11.2f s\n", "model load (mmap, checks)", r->load_s);
	printf("%-44s %11.1f ms\n", "image prep 1024x1024 (resize, normalise, patches)",
	       r->prep_s * 1e3);
	char what[2][64];
	snprintf(what[0], sizeof what[0], "vision encode (%lld patches -> %lld tokens)",
		 (long long)r->image_patches, (long long)r->image_tokens);
	snprintf(what[1], sizeof what[1], "image prefill (vision + %lld-token decoder)",
		 (long long)r->image_tokens + 2);
	printf("%-44s %11.2f s\n", what[0], r->vision_s);
	printf("%-44s %11.2f s\n", what[1], r->image_prefill_s);
	printf("%-44s %11.2f s\n", "  of which decoder", r->image_prefill_s - r->vision_s);
	printf("%-44s %9.1f tok/s\n", "prefill 1024 text tokens", PREFILL_SHORT / r->prefill_s[0]);
	printf("%-44s %9.1f tok/s\n", "prefill 2048 text tokens", PREFILL_LONG / r->prefill_s[1]);
	printf("%-44s %9.2f tok/s   (%.1f ms/token, best step %.1f ms)\n",
	       "decode, 32 steps after 1024 tokens", decode, 1e3 / decode, r->decode_best_s * 1e3);
	printf("%-44s %11.3f GB\n", "weights read per decoded token", r->bytes_per_token / 1e9);
	printf("%-44s %9.1f GB/s   (%.1f before decode, %.1f after)\n",
	       "memory read bandwidth (membw, all threads)", bandwidth(r), r->bw_gb_s[0],
	       r->bw_gb_s[1]);
	printf("%-44s %9.2f tok/s\n", "decode roofline (bytes / bandwidth)", roof);
	printf("%-44s %11.0f %%\n", "decode of roofline", 100.0 * decode / roof);
	printf("%-44s %10.0f MiB\n", "peak RSS", r->peak_rss_kib / 1024.0);
}

static int write_json(const char *path, const struct results *r, vlm_err *err)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return vlm_err_set(err, -errno, "bench_engine: '%s': cannot write: %s", path,
				   strerror(errno));
	fprintf(f,
		"{\"engine\": \"intake\", \"precision\": \"%s\", \"threads\": %d, \"load_s\": "
		"%.4f, \"prep_s\": %.4f, "
		"\"vision_s\": %.4f, \"image_prefill_s\": %.4f, \"image_tokens\": %lld, "
		"\"image_patches\": %lld, \"prefill_1k_s\": %.4f, \"prefill_2k_s\": %.4f, "
		"\"decode_steps\": %d, \"decode_s\": %.4f, \"decode_best_step_s\": %.4f, "
		"\"peak_rss_mib\": %.1f, \"bandwidth_gb_s\": %.3f, \"bandwidth_before_gb_s\": "
		"%.3f, "
		"\"bandwidth_after_gb_s\": %.3f, \"bytes_per_token\": %.0f}\n",
		r->bf16 ? "bf16" : "f32", r->n_threads, r->load_s, r->prep_s, r->vision_s,
		r->image_prefill_s, (long long)r->image_tokens, (long long)r->image_patches,
		r->prefill_s[0], r->prefill_s[1], DECODE_STEPS, r->decode_s, r->decode_best_s,
		r->peak_rss_kib / 1024.0, bandwidth(r), r->bw_gb_s[0], r->bw_gb_s[1],
		r->bytes_per_token);
	if (fclose(f) != 0)
		return vlm_err_set(err, -EIO, "bench_engine: '%s': write failed", path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *json = NULL;
	int n_threads = 0;
	bool usage = false, bf16 = false;
	for (int i = 1; i < argc && !usage; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			n_threads = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc &&
			 (strcmp(argv[i + 1], "f32") == 0 || strcmp(argv[i + 1], "bf16") == 0))
			bf16 = strcmp(argv[++i], "bf16") == 0;
		else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
			json = argv[++i];
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else
			usage = true;
	}
	if (!dir || usage || n_threads < 0) {
		fprintf(stderr,
			"usage: bench_engine MODEL_DIR [--threads N] [--precision f32|bf16] "
			"[--json FILE]\n");
		return 2;
	}
	vlm_err err = { 0 };
	struct results r = { .bf16 = bf16 };
	struct vlm_pool *pool = NULL;
	struct vlm_model *model = NULL;
	struct membw *mb = NULL;
	int rc = vlm_pool_new(n_threads, &pool, &err);
	if (rc == 0)
		rc = membw_new(MEMBW_BYTES, &mb, &err);
	if (rc == 0) {
		r.n_threads = vlm_pool_n_threads(pool);
		double t0 = membw_now_s();
		struct vlm_model_opts opts = { .n_threads = r.n_threads, .bf16_activations = bf16 };
		rc = vlm_model_load(dir, &opts, &model, &err);
		r.load_s = membw_now_s() - t0;
	}
	if (rc == 0)
		rc = run(model, mb, pool, &r, &err);
	vlm_model_free(model);
	membw_free(mb);
	vlm_pool_free(pool);
	if (rc == 0 && json)
		rc = write_json(json, &r, &err);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("bench_engine: %s, %d threads, precision %s\n\n", dir, r.n_threads,
	       bf16 ? "bf16" : "f32");
	print_table(&r);
	return 0;
}
