/* libFuzzer target: the tokenizer with the fixture's tokenizer.json. The first byte picks a mode:
 * even, the rest is text to encode (valid UTF-8 must decode back to exactly itself; invalid UTF-8
 * must be refused with -EINVAL); odd, the rest is a stream of 16-bit token ids to decode, where
 * the output must be valid UTF-8 and the incremental stream must concatenate to the same text. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "tokenizer.h"

static struct vlm_tokenizer *tok;

static void free_tok(void)
{
	vlm_tokenizer_free(tok);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[FUZZ_PATH_SIZE];
	vlm_err err = { 0 };
	if (vlm_tokenizer_load(fuzz_source_path(path, "tests/fixtures/tiny-glm4v/tokenizer.json"),
			       &tok, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(2);
	}
	atexit(free_tok);
	return 0;
}

/* RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF. An independent check of the
 * tokenizer's own validation, written from the RFC's table. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t len;
		uint8_t lo = 0x80, hi = 0xbf; /* bounds of the second byte */
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		} else {
			return false;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

static void fuzz_encode(const uint8_t *text, size_t len)
{
	int32_t *ids = malloc((len ? len : 1) * sizeof *ids);
	if (!ids)
		FUZZ_DIE("malloc");
	size_t n_ids = 0;
	vlm_err err = { 0 };
	int rc = vlm_tokenize(tok, (const char *)text, len, ids, len, &n_ids, &err);
	if (!utf8_valid(text, len)) {
		FUZZ_CHECK(rc == -EINVAL);
		free(ids);
		return;
	}
	FUZZ_CHECK(rc == 0 && n_ids <= len);
	char *back = NULL;
	size_t back_len = 0;
	FUZZ_CHECK(vlm_detokenize(tok, ids, n_ids, false, &back, &back_len, &err) == 0);
	FUZZ_CHECK(back_len == len && memcmp(back, text, len) == 0);
	free(back);

	/* The whole text as user-supplied: no special token can appear, and it still round-trips. */
	struct vlm_text_span all = { 0, len };
	FUZZ_CHECK(vlm_tokenize_spans(tok, (const char *)text, len, &all, 1, ids, len, &n_ids,
				      &err) == 0);
	for (size_t i = 0; i < n_ids; i++)
		FUZZ_CHECK(!vlm_token_is_special(tok, ids[i]));
	FUZZ_CHECK(vlm_detokenize(tok, ids, n_ids, false, &back, &back_len, &err) == 0);
	FUZZ_CHECK(back_len == len && memcmp(back, text, len) == 0);
	free(back);
	free(ids);
}

static void fuzz_decode(const uint8_t *data, size_t size, bool skip_special)
{
	size_t n = size / 2;
	int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
	if (!ids)
		FUZZ_DIE("malloc");
	/* Ids mostly inside the vocabulary, a few just past it. */
	int32_t range = vlm_tokenizer_vocab_size(tok) + 4;
	bool all_valid = true;
	for (size_t i = 0; i < n; i++) {
		ids[i] = (int32_t)((data[2 * i] | data[2 * i + 1] << 8) % range);
		all_valid &= ids[i] < vlm_tokenizer_vocab_size(tok);
	}
	char *text = NULL;
	size_t len = 0;
	vlm_err err = { 0 };
	int rc = vlm_detokenize(tok, ids, n, skip_special, &text, &len, &err);
	if (!all_valid) {
		FUZZ_CHECK(rc == -EINVAL && text == NULL);
		free(ids);
		return;
	}
	FUZZ_CHECK(rc == 0 && text[len] == '\0' && utf8_valid((const uint8_t *)text, len));

	struct vlm_detok_stream *s = NULL;
	FUZZ_CHECK(vlm_detok_stream_new(tok, skip_special, &s, &err) == 0);
	size_t at = 0;
	for (size_t i = 0; i <= n; i++) {
		const char *piece;
		size_t piece_len;
		if (i < n)
			FUZZ_CHECK(vlm_detok_stream_push(s, ids[i], &piece, &piece_len, &err) == 0);
		else
			vlm_detok_stream_flush(s, &piece, &piece_len);
		FUZZ_CHECK(piece_len <= len - at && memcmp(text + at, piece, piece_len) == 0);
		at += piece_len;
	}
	FUZZ_CHECK(at == len);
	vlm_detok_stream_free(s);
	free(text);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return -1;
	if (data[0] % 2 == 0)
		fuzz_encode(data + 1, size - 1);
	else
		fuzz_decode(data + 1, size - 1, data[0] & 2);
	return 0;
}
