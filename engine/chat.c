/* The chat prompt (see chat.h): the turn is rendered as text the way the model's chat template
 * renders it, with each image expanded to its placeholder tokens as the HF processor does, and
 * tokenized in one pass, so the ids equal transformers' for the same conversation. The system
 * and user texts are marked literal: special tokens inside them stay plain text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

/* A growing string; every append reports running out of memory through `ok`. */
struct text {
	char *s;
	size_t len, cap;
	bool ok;
};

static void append(struct text *t, const char *s, size_t n)
{
	if (!t->ok)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *p = realloc(t->s, cap);
		if (!p) {
			t->ok = false;
			return;
		}
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void append_str(struct text *t, const char *s)
{
	append(t, s, strlen(s));
}

/* Appends user-supplied text and records where it lies. */
static void append_literal(struct text *t, const char *s, struct vlm_text_span *span)
{
	span->start = t->len;
	span->len = strlen(s);
	append(t, s, span->len);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int vlm_chat_prompt(const struct vlm_tokenizer *tok, int32_t image_token_id, const char *system,
		    const char *text, const int64_t *image_tokens, int n_images, int32_t **ids,
		    size_t *n_ids, vlm_err *err)
{
	static const char *const needed[] = { "[gMASK]",          "<sop>",
					      "<|user|>",         "<|assistant|>",
					      "<|system|>",       "<|begin_of_image|>",
					      "<|end_of_image|>", "<|image|>" };
	*ids = NULL;
	*n_ids = 0;
	for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
		if (vlm_token_id(tok, needed[i]) < 0)
			return vlm_err_set(err, -EBADMSG, "chat: the tokenizer has no '%s' token",
					   needed[i]);
	if (vlm_token_id(tok, "<|image|>") != image_token_id)
		return vlm_err_set(err, -EBADMSG,
				   "chat: config.json's image_token_id %d is not the "
				   "tokenizer's <|image|> (%d)",
				   image_token_id, vlm_token_id(tok, "<|image|>"));

	struct text t = { .ok = true };
	struct vlm_text_span spans[2];
	size_t n_spans = 0;
	int64_t n_image_tokens = 0;
	append_str(&t, "[gMASK]<sop>");
	if (system) {
		append_str(&t, "<|system|>\n");
		append_literal(&t, system, &spans[n_spans++]);
	}
	append_str(&t, "<|user|>\n");
	for (int i = 0; i < n_images; i++) {
		append_str(&t, "<|begin_of_image|>");
		for (int64_t k = 0; k < image_tokens[i]; k++)
			append_str(&t, "<|image|>");
		append_str(&t, "<|end_of_image|>");
		n_image_tokens += image_tokens[i];
	}
	append_literal(&t, text, &spans[n_spans++]);
	if (!ends_with(text, "/nothink"))
		append_str(&t, "/nothink");
	append_str(&t, "<|assistant|>\n<think></think>\n");
	if (!t.ok) {
		free(t.s);
		return vlm_err_set(err, -ENOMEM, "chat: out of memory");
	}

	/* Each placeholder is one token; text needs at most one per byte. */
	size_t cap = t.len + (size_t)n_image_tokens + 1;
	int32_t *out = malloc(cap * sizeof *out);
	int rc = out ? vlm_tokenize_spans(tok, t.s, t.len, spans, n_spans, out, cap, n_ids, err)
		     : vlm_err_set(err, -ENOMEM, "chat: out of memory");
	free(t.s);
	if (rc < 0) {
		free(out);
		return rc;
	}
	*ids = out;
	return 0;
}
