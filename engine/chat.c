/* The GLM-4.6V chat prompt for one user turn with thinking disabled, and the stop-token set.
 * The prompt is rendered as text, exactly as chat_template.jinja would, with one <|image|> per
 * image, tokenized once (so text next to "/nothink" or "\n" merges as in HF), and each image's
 * placeholder is then expanded to its token count, as the HF processor does. The user's text is
 * marked literal so that it cannot produce control tokens. Knows nothing about images' pixels. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static const char nothink[] = "/nothink";

/* The template's control tokens, which must be added tokens of the tokenizer. */
static const char *const control_tokens[] = {
	"[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|begin_of_image|>",
	"<|end_of_image|>", "<|image|>",
};

/* Appends to a buffer sized by a first, counting pass (buf NULL). */
struct render {
	char *buf;
	size_t len;
};

static void put(struct render *r, const char *s, size_t n)
{
	if (r->buf)
		memcpy(r->buf + r->len, s, n);
	r->len += n;
}

static void put_str(struct render *r, const char *s)
{
	put(r, s, strlen(s));
}

static void put_literal(struct render *r, const char *s, size_t n, struct vlm_text_span *span)
{
	*span = (struct vlm_text_span){r->len, n};
	put(r, s, n);
}

static bool ends_with_nothink(const char *text, size_t len)
{
	size_t n = sizeof nothink - 1;
	return len >= n && memcmp(text + len - n, nothink, n) == 0;
}

/* The prompt text with one <|image|> per image; spans[0] is the system text, spans[1] the
 * user's. */
static void render_turn(const struct vlm_chat_turn *turn, struct render *r,
			struct vlm_text_span spans[2])
{
	put_str(r, "[gMASK]<sop>");
	if (turn->system) {
		put_str(r, "<|system|>\n");
		put_literal(r, turn->system, strlen(turn->system), &spans[0]);
	}
	put_str(r, "<|user|>\n");
	for (size_t i = 0; i < turn->n_images; i++)
		put_str(r, "<|begin_of_image|><|image|><|end_of_image|>");
	size_t len = strlen(turn->text);
	/* A trailing "/nothink" the user typed is the template's own, so it stays outside the
	 * literal span and reads the same as one we append. */
	if (ends_with_nothink(turn->text, len))
		len -= sizeof nothink - 1;
	put_literal(r, turn->text, len, &spans[1]);
	put_str(r, nothink);
	put_str(r, "<|assistant|>\n<think></think>\n");
}

static int check_tokens(const struct vlm_tokenizer *tok, int32_t image_token_id, vlm_err *err)
{
	for (size_t i = 0; i < sizeof control_tokens / sizeof control_tokens[0]; i++)
		if (!vlm_token_is_special(tok, vlm_token_id(tok, control_tokens[i])))
			return vlm_err_set(err, -EINVAL, "chat: token '%s': not a special token of "
							 "the tokenizer", control_tokens[i]);
	int32_t image = vlm_token_id(tok, "<|image|>");
	if (image != image_token_id)
		return vlm_err_set(err, -EINVAL, "chat: image_token_id %d: the tokenizer's "
						 "'<|image|>' is %d (config.json and tokenizer.json "
						 "disagree)", image_token_id, image);
	return 0;
}

int vlm_chat_build(const struct vlm_tokenizer *tok, int32_t image_token_id,
		   const struct vlm_chat_turn *turn, int32_t **ids, size_t *n_ids, vlm_err *err)
{
	*ids = NULL;
	*n_ids = 0;
	int rc = check_tokens(tok, image_token_id, err);
	if (rc)
		return rc;
	size_t n_image_ids = 0;
	for (size_t i = 0; i < turn->n_images; i++) {
		if (turn->n_image_tokens[i] == 0)
			return vlm_err_set(err, -EINVAL, "chat: image %zu: zero image tokens", i);
		n_image_ids += turn->n_image_tokens[i];
	}

	struct vlm_text_span spans[2] = {{0, 0}, {0, 0}};
	struct render r = {0};
	render_turn(turn, &r, spans);
	r.buf = malloc(r.len);
	/* One id per byte at most, plus each image's extra copies. */
	int32_t *rendered = malloc(r.len * sizeof *rendered);
	int32_t *out = malloc((r.len + n_image_ids) * sizeof *out);
	if (!r.buf || !rendered || !out) {
		rc = vlm_err_set(err, -ENOMEM, "chat: out of memory for a %zu-byte prompt", r.len);
		goto done;
	}
	r.len = 0;
	render_turn(turn, &r, spans);
	size_t n;
	rc = vlm_tokenize_spans(tok, r.buf, r.len, spans, 2, rendered, r.len, &n, err);
	if (rc)
		goto done;
	size_t n_out = 0, image = 0;
	for (size_t i = 0; i < n; i++) {
		if (rendered[i] != image_token_id) {
			out[n_out++] = rendered[i];
			continue;
		}
		for (size_t k = 0; k < turn->n_image_tokens[image]; k++)
			out[n_out++] = image_token_id;
		image++;
	}
	*ids = out;
	*n_ids = n_out;
	out = NULL;
done:
	free(out);
	free(rendered);
	free(r.buf);
	return rc;
}

static int cmp_id(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

int vlm_chat_stop_tokens(const struct vlm_tokenizer *tok, const int32_t *eos_ids, size_t n_eos,
			 int32_t *stop, size_t cap, size_t *n_stop, vlm_err *err)
{
	*n_stop = 0;
	if (cap < n_eos + 2)
		return vlm_err_set(err, -E2BIG, "chat: stop tokens: room for %zu, need %zu", cap,
				   n_eos + 2);
	size_t n = 0;
	for (size_t i = 0; i < n_eos; i++) {
		size_t len;
		if (!vlm_token_bytes(tok, eos_ids[i], &len))
			return vlm_err_set(err, -EINVAL, "chat: eos id %d: not a token of the "
							 "tokenizer", eos_ids[i]);
		stop[n++] = eos_ids[i];
	}
	/* A model that opens a new turn has finished its answer, whatever generation_config says. */
	const char *openers[] = {"<|user|>", "<|observation|>"};
	for (size_t i = 0; i < 2; i++) {
		int32_t id = vlm_token_id(tok, openers[i]);
		if (id >= 0)
			stop[n++] = id;
	}
	qsort(stop, n, sizeof *stop, cmp_id);
	size_t unique = 0;
	for (size_t i = 0; i < n; i++)
		if (unique == 0 || stop[unique - 1] != stop[i])
			stop[unique++] = stop[i];
	*n_stop = unique;
	return 0;
}
