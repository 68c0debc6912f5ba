/* vlm_generate on the tiny fixture: the loop against the low-level steps it is made of (greedy
 * tokens equal prefill + argmax/decode on the same prompt), the logit mask, stop tokens, the
 * token limit, the abort hook, seeded sampling, streamed text, and context overflow. The model's
 * outputs themselves are checked against transformers in test_model_parity. */
#include <errno.h>

#include "chat.h"
#include "check.h"
#include "image_prep.h"
#include "tokenizer.h"
#include "vlm.h"

struct hooks {
	const int32_t *allowed; /* tokens the mask lets through; NULL: all but the stop tokens */
	int n_allowed;
	int abort_after; /* > 0: abort once this many tokens were streamed */
	int streamed;
	char text[4096];
	size_t len;
};

static int mask(void *user, const int32_t *gen, size_t n_gen, float *logits, int64_t V)
{
	struct hooks *h = user;
	for (int64_t v = 0; v < V; v++) {
		bool keep = !h->allowed && v != 1000 && v != 1004 && v != 1006;
		for (int i = 0; h->allowed && i < h->n_allowed; i++)
			keep |= h->allowed[i] == v;
		if (!keep)
			logits[v] = -INFINITY;
	}
	return 0;
}

static bool stop_now(void *user)
{
	struct hooks *h = user;
	return h->abort_after > 0 && h->streamed >= h->abort_after;
}

static void on_token(void *user, int32_t token, float logprob, const char *text, size_t len)
{
	struct hooks *h = user;
	h->streamed += token >= 0;
	if (h->len + len < sizeof h->text) {
		memcpy(h->text + h->len, text, len);
		h->len += len;
	}
}

int main(void)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/tests/fixtures/tiny-glm4v", getenv("INTAKE_SOURCE_DIR"));
	struct vlm_model *m = NULL;
	struct vlm_session *s = NULL;
	vlm_err err = { 0 };
	if (vlm_model_load(dir, &(struct vlm_model_opts){ .n_threads = 2 }, &m, &err) < 0 ||
	    vlm_session_new(m, 256, &s, &err) < 0) {
		return 1;
	}
	/* The vocabulary as the schema grammar sees it (fixture README: 1016 tokenizer ids). */
	size_t len = 0;
	CHECK_INT(vlm_model_n_tokens(m), 1016);
	const char *user = vlm_model_token_bytes(m, 1004, &len);
	CHECK(user && len == 8 && memcmp(user, "<|user|>", 8) == 0);
	CHECK(vlm_model_token_bytes(m, 1020, &len) == NULL);
	CHECK(vlm_model_token_is_stop(m, 1004) && !vlm_model_token_is_stop(m, 1005));
	CHECK(vlm_model_token_is_special(m, 1004) && !vlm_model_token_is_special(m, 1013));

	/* A 60x90 gradient image: below the processor's minimum, so smart_resize scales it up. */
	uint8_t rgb[60 * 90 * 3];
	for (int i = 0; i < 60 * 90 * 3; i++)
		rgb[i] = (uint8_t)(i * 7 % 251);
	struct vlm_image img = { rgb, 90, 60 };
	struct hooks h = { 0 };
	struct vlm_request req = { .prompt = "Total?",
				   .images = &img,
				   .n_images = 1,
				   .max_tokens = 8,
				   .mask = mask,
				   .abort = stop_now,
				   .on_token = on_token,
				   .user = &h };
	struct vlm_result r = { 0 };
	CHECK_INT(vlm_generate(s, &req, &r, &err), 0);
	CHECK_INT(r.n_tokens, 8);
	CHECK_INT(r.stop, VLM_STOP_LENGTH);
	CHECK_INT(h.streamed, 8);
	CHECK(h.len == strlen(r.text) && memcmp(h.text, r.text, h.len) == 0);
	for (size_t i = 0; i < r.n_tokens; i++)
		CHECK(r.logprobs[i] <= 0);

	/* The same prompt by hand: image prep, chat ids, prefill, then argmax + decode. */
	struct vlm_prep_params pp;
	vlm_prep_params_default(&pp);
	struct vlm_prepped prep = { 0 };
	CHECK_INT(vlm_image_prep(rgb, 60, 90, &pp, &prep, &err), 0);
	struct vlm_tokenizer *tok = NULL;
	char path[600];
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	CHECK_INT(vlm_tokenizer_load(path, &tok, &err), 0);
	int32_t *ids = NULL;
	size_t n = 0;
	CHECK_INT(vlm_chat_prompt(tok, 1011, NULL, "Total?", &prep.n_tokens, 1, &ids, &n, &err), 0);
	CHECK_INT(r.n_prompt_tokens, (int64_t)n);
	float logits[1024];
	CHECK_INT(vlm_session_prefill(s, ids, (int64_t)n, prep.pixel_values,
				      (const int64_t(*)[3])prep.grid_thw, 1, logits, false, &err),
		  0);
	for (size_t i = 0; i < r.n_tokens; i++) {
		int best = -1;
		/* generate never picks the LM head's padding rows past the tokenizer's ids */
		for (int v = 0; v < vlm_tokenizer_vocab_size(tok); v++)
			if (v != 1000 && v != 1004 && v != 1006 &&
			    (best < 0 || logits[v] > logits[best]))
				best = v;
		CHECK_INT(r.tokens[i], best);
		if (i + 1 < r.n_tokens)
			CHECK_INT(vlm_session_decode(s, best, logits, &err), 0);
	}
	free(ids);
	vlm_prepped_done(&prep);
	vlm_result_done(&r);

	/* Only two tokens allowed: nothing else comes out. */
	const int32_t two[2] = { 83, 205 };
	h = (struct hooks){ .allowed = two, .n_allowed = 2 };
	req.n_images = 0;
	CHECK_INT(vlm_generate(s, &req, &r, &err), 0);
	CHECK_INT(r.n_tokens, 8);
	for (size_t i = 0; i < r.n_tokens; i++)
		CHECK(r.tokens[i] == 83 || r.tokens[i] == 205);
	vlm_result_done(&r);

	/* A stop token ends generation at once, and is not part of the result. */
	const int32_t eos[1] = { 1004 };
	h = (struct hooks){ .allowed = eos, .n_allowed = 1 };
	CHECK_INT(vlm_generate(s, &req, &r, &err), 0);
	CHECK_INT(r.stop, VLM_STOP_EOS);
	CHECK_INT(r.n_tokens, 0);
	CHECK_STR(r.text, "");
	vlm_result_done(&r);

	/* The abort hook is checked between steps. */
	h = (struct hooks){ .abort_after = 3 };
	CHECK_INT(vlm_generate(s, &req, &r, &err), 0);
	CHECK_INT(r.stop, VLM_STOP_ABORTED);
	CHECK_INT(r.n_tokens, 3);
	vlm_result_done(&r);

	/* Seeded sampling repeats itself; another seed goes elsewhere. */
	struct vlm_result a = { 0 }, b = { 0 }, c = { 0 };
	h = (struct hooks){ 0 };
	req.sample = true;
	req.temperature = 1.0f;
	req.top_p = 1.0f;
	req.max_tokens = 32;
	req.seed = 5;
	CHECK_INT(vlm_generate(s, &req, &a, &err), 0);
	fprintf(stderr, "%s\n", err.msg);
	CHECK_INT(vlm_generate(s, &req, &b, &err), 0);
	req.seed = 6;
	CHECK_INT(vlm_generate(s, &req, &c, &err), 0);
	CHECK(a.n_tokens == b.n_tokens && memcmp(a.tokens, b.tokens, a.n_tokens * 4) == 0);
	CHECK(a.n_tokens != c.n_tokens || memcmp(a.tokens, c.tokens, a.n_tokens * 4) != 0);
	vlm_result_done(&a);
	vlm_result_done(&b);
	vlm_result_done(&c);

	/* Prompt plus max_tokens beyond the context is refused before any work. */
	req.max_tokens = 250;
	CHECK_INT(vlm_generate(s, &req, &r, &err), -E2BIG);
	CHECK_CONTAINS(err.msg, "context of 256");

	vlm_tokenizer_free(tok);
	vlm_session_free(s);
	vlm_model_free(m);
	return CHECK_DONE();
}
