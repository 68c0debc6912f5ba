/* Tokenizer parity with the `tokenizers` library on the tiny fixture (tokenizer_golden.json:
 * every encode case must give exactly its ids and decode back; every decode case its text, whole
 * and streamed), UTF-8 repair on hand-derived byte sequences, and broken tokenizer.json files that
 * must each fail with their own error. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer.h"

static char fixture[4096];

static int32_t *json_ids(const json_t *array, size_t *n)
{
	*n = json_array_size(array);
	int32_t *ids = malloc((*n + 1) * sizeof *ids);
	for (size_t i = 0; i < *n; i++)
		ids[i] = (int32_t)json_integer_value(json_array_get(array, i));
	return ids;
}

/* Streams ids through a decode stream and returns the concatenated pieces (malloc'd). */
static char *stream_decode(const struct vlm_tokenizer *tok, const int32_t *ids, size_t n,
			   bool skip_special)
{
	struct vlm_detok_stream *s;
	vlm_err err = { 0 };
	CHECK_INT(vlm_detok_stream_new(tok, skip_special, &s, &err), 0);
	size_t cap = 64, len = 0;
	char *all = malloc(cap);
	for (size_t i = 0; i <= n; i++) {
		const char *piece;
		size_t piece_len;
		if (i < n)
			CHECK_INT(vlm_detok_stream_push(s, ids[i], &piece, &piece_len, &err), 0);
		else
			vlm_detok_stream_flush(s, &piece, &piece_len);
		CHECK_INT(strlen(piece), piece_len);
		while (len + piece_len + 1 > cap)
			all = realloc(all, cap *= 2);
		memcpy(all + len, piece, piece_len);
		len += piece_len;
	}
	all[len] = '\0';
	vlm_detok_stream_free(s);
	return all;
}

static void test_golden(const struct vlm_tokenizer *tok)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/tokenizer_golden.json", fixture);
	json_error_t jerr;
	json_t *golden = json_load_file(path, JSON_ALLOW_NUL, &jerr);
	CHECK(golden != NULL);
	if (!golden)
		return;
	size_t i;
	const json_t *c;
	size_t n_encode = 0, n_decode = 0;
	json_array_foreach(json_object_get(golden, "encode"), i, c)
	{
		const json_t *text = json_object_get(c, "text");
		size_t len = json_string_length(text), n_want, n;
		int32_t *want = json_ids(json_object_get(c, "ids"), &n_want);
		int32_t *got = malloc((len + 1) * sizeof *got);
		vlm_err err = { 0 };
		CHECK_INT(vlm_tokenize(tok, json_string_value(text), len, got, len, &n, &err), 0);
		CHECK_INT(n, n_want);
		bool same = n == n_want && memcmp(got, want, n * sizeof *got) == 0;
		if (!same)
			fprintf(stderr, "encode case %zu: '%s' differs\n", i,
				json_string_value(text));
		CHECK(same);
		/* No case uses lstrip/rstrip tokens, so decoding gives the text back exactly. */
		char *back;
		size_t back_len;
		CHECK_INT(vlm_detokenize(tok, want, n_want, false, &back, &back_len, &err), 0);
		CHECK_INT(back_len, len);
		CHECK(back && memcmp(back, json_string_value(text), len) == 0);
		char *streamed = stream_decode(tok, want, n_want, false);
		CHECK_STR(streamed, back);
		free(streamed);
		free(back);
		free(got);
		free(want);
		n_encode++;
	}
	json_array_foreach(json_object_get(golden, "decode"), i, c)
	{
		size_t n;
		int32_t *ids = json_ids(json_object_get(c, "ids"), &n);
		bool skip = json_is_true(json_object_get(c, "skip_special_tokens"));
		char *text;
		size_t len;
		vlm_err err = { 0 };
		CHECK_INT(vlm_detokenize(tok, ids, n, skip, &text, &len, &err), 0);
		CHECK_STR(text, json_string_value(json_object_get(c, "text")));
		char *streamed = stream_decode(tok, ids, n, skip);
		CHECK_STR(streamed, text);
		free(streamed);
		free(text);
		free(ids);
		n_decode++;
	}
	/* The fixture README promises 51 encode and 40 decode cases. */
	CHECK_INT(n_encode, 51);
	CHECK_INT(n_decode, 40);
	json_decref(golden);
}

/* The id of the one-byte token for byte b, through its GPT-2 byte-level spelling. */
static int32_t byte_token(const struct vlm_tokenizer *tok, unsigned b)
{
	char spelling[3] = { (char)(0xc0 | b >> 6), (char)(0x80 | (b & 0x3f)), 0 };
	int32_t id = vlm_token_id(tok, spelling);
	CHECK(id >= 0);
	return id;
}

static void test_utf8_repair(const struct vlm_tokenizer *tok)
{
	/* Byte-level spellings of high bytes: 0xc3 -> U+00C3 'Ã', 0xa9 -> U+00A9 '©', 0x80 -> U+0122,
	 * 0xe0 -> U+00E0, 0xf0 -> U+00F0, 0x9f -> U+0141. Expected texts follow Unicode's "maximal
	 * subpart" replacement (Unicode 15 §3.9, U+FFFD substitution). */
	int32_t c3 = vlm_token_id(tok, "\xc3\x83"), a9 = vlm_token_id(tok, "\xc2\xa9");
	int32_t x80 = vlm_token_id(tok, "\xc4\xa2"), e0 = byte_token(tok, 0xe0);
	int32_t f0 = byte_token(tok, 0xf0), x9f = vlm_token_id(tok, "\xc5\x81");
	int32_t a = vlm_token_id(tok, "a"), user = vlm_token_id(tok, "<|user|>");
	struct {
		int32_t ids[4];
		size_t n;
		bool skip;
		const char *want;
	} cases[] = {
		{ { c3, a9 }, 2, false, "\xc3\xa9" }, /* é */
		{ { c3 }, 1, false, "\xef\xbf\xbd" }, /* cut at the end */
		{ { c3, a },
		  2,
		  false,
		  "\xef\xbf\xbd"
		  "a" },
		{ { e0, x80 }, 2, false, "\xef\xbf\xbd\xef\xbf\xbd" }, /* E0 needs A0..BF next */
		{ { f0, x9f, x9f, a },
		  4,
		  false,
		  "\xef\xbf\xbd"
		  "a" }, /* one subpart of 3 bytes */
		{ { c3, user, a9 }, 3, false, "\xef\xbf\xbd<|user|>\xef\xbf\xbd" },
		{ { c3, user, a9 }, 3, true, "\xc3\xa9" }, /* skipped tokens vanish */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text;
		size_t len;
		vlm_err err = { 0 };
		CHECK_INT(vlm_detokenize(tok, cases[i].ids, cases[i].n, cases[i].skip, &text, &len,
					 &err),
			  0);
		CHECK_STR(text, cases[i].want);
		char *streamed = stream_decode(tok, cases[i].ids, cases[i].n, cases[i].skip);
		CHECK_STR(streamed, cases[i].want);
		free(streamed);
		free(text);
	}

	/* The stream holds back the first half of é, then releases the whole character. */
	struct vlm_detok_stream *s;
	const char *piece;
	size_t len;
	vlm_err err = { 0 };
	CHECK_INT(vlm_detok_stream_new(tok, false, &s, &err), 0);
	CHECK_INT(vlm_detok_stream_push(s, c3, &piece, &len, &err), 0);
	CHECK_INT(len, 0);
	CHECK_INT(vlm_detok_stream_push(s, a9, &piece, &len, &err), 0);
	CHECK_STR(piece, "\xc3\xa9");
	CHECK_INT(vlm_detok_stream_push(s, 1 << 20, &piece, &len, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "token id 1048576");
	vlm_detok_stream_free(s);
}

static void test_api(const struct vlm_tokenizer *tok)
{
	/* Spec §11 fixes the fixture's special ids; 1013..1015 per the fixture README. */
	CHECK_INT(vlm_tokenizer_vocab_size(tok), 1016);
	CHECK_INT(vlm_token_id(tok, "<|endoftext|>"), 1000);
	CHECK_INT(vlm_token_id(tok, "[gMASK]"), 1001);
	CHECK_INT(vlm_token_id(tok, "<|image|>"), 1011);
	CHECK_INT(vlm_token_id(tok, "/nothink"), 1015);
	CHECK_INT(vlm_token_id(tok, "<|no such token|>"), -1);
	CHECK(vlm_token_is_special(tok, 1004));
	CHECK(!vlm_token_is_special(tok, 1013)); /* <think> is added but not special */
	CHECK(!vlm_token_is_special(tok, 5000));
	size_t len;
	CHECK(vlm_token_bytes(tok, 5000, &len) == NULL);
	const char *bytes = vlm_token_bytes(tok, vlm_token_id(tok, "\xc4\x8a"), &len); /* Ċ */
	CHECK(len == 1 && bytes[0] == '\n');

	int32_t ids[16];
	size_t n;
	vlm_err err = { 0 };
	CHECK_INT(vlm_tokenize(tok, "a<|user|>b", 10, ids, 16, &n, &err), 0);
	CHECK_INT(n, 3);
	CHECK_INT(ids[1], 1004);
	/* Too small an output: -E2BIG, and the count needed. */
	CHECK_INT(vlm_tokenize(tok, "a<|user|>b", 10, ids, 2, &n, &err), -E2BIG);
	CHECK_INT(n, 3);
	CHECK_INT(vlm_tokenize(tok, "a\xff", 2, ids, 16, &n, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "invalid UTF-8 at byte 1");
	CHECK_INT(vlm_tokenize(tok, "", 0, ids, 0, &n, &err), 0);
	CHECK_INT(n, 0);
	/* Inside a literal span a special token is plain text; outside it still matches. */
	struct vlm_text_span span = { 0, 9 };
	CHECK_INT(vlm_tokenize_spans(tok, "<|user|>x<|user|>", 17, &span, 1, ids, 16, &n, &err), 0);
	CHECK(n > 2);
	for (size_t i = 0; i + 1 < n; i++)
		CHECK(ids[i] != 1004);
	CHECK_INT(ids[n - 1], 1004);
	/* 2000 spaces stay one piece for the regex and BPE (the heap path, not the inline one). */
	char *spaces = malloc(2000);
	memset(spaces, ' ', 2000);
	int32_t *many = malloc(2000 * sizeof *many);
	CHECK_INT(vlm_tokenize(tok, spaces, 2000, many, 2000, &n, &err), 0);
	char *back;
	CHECK_INT(vlm_detokenize(tok, many, n, false, &back, &len, &err), 0);
	CHECK_INT(len, 2000);
	CHECK(back && memcmp(back, spaces, 2000) == 0);
	free(back);
	free(many);
	free(spaces);
}

/* Writes `json` to dir/name and loads it, expecting `code` and `msg` in the error. */
static void expect_broken(const char *dir, const char *name, const char *json, int code,
			  const char *msg)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(json, f);
	fclose(f);
	struct vlm_tokenizer *tok = (struct vlm_tokenizer *)1;
	vlm_err err = { 0 };
	CHECK_INT(vlm_tokenizer_load(path, &tok, &err), code);
	CHECK(tok == NULL);
	CHECK_CONTAINS(err.msg, "tokenizer: file '");
	CHECK_CONTAINS(err.msg, msg);
	unlink(path);
}

static void test_broken(void)
{
	char dir[] = "/tmp/test_tokenizer.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	expect_broken(dir, "notjson.json", "{\"model\": [", -EBADMSG, "not JSON");
	expect_broken(dir, "wordpiece.json",
		      "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", -ENOTSUP,
		      "model type 'WordPiece' is not supported");
	expect_broken(dir, "novocab.json", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}",
		      -EBADMSG, "model.vocab is missing");
	expect_broken(dir, "nobytes.json",
		      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, "
		      "\"merges\": [\"a zz\"]}}",
		      -EBADMSG, "vocab: no token for byte 0x00");
	vlm_err err = { 0 };
	struct vlm_tokenizer *tok;
	CHECK_INT(vlm_tokenizer_load("/nonexistent/tokenizer.json", &tok, &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "cannot open");
	rmdir(dir);
}

/* A merge naming an unknown token: the fixture itself with one merge's right side renamed. */
static void test_unknown_merge(void)
{
	char path[4200], out[] = "/tmp/test_tokenizer_merge.XXXXXX";
	snprintf(path, sizeof path, "%s/tokenizer.json", fixture);
	json_t *root = json_load_file(path, 0, NULL);
	json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
	json_array_set_new(json_array_get(merges, 5), 1, json_string("no-such-token"));
	int fd = mkstemp(out);
	CHECK(fd >= 0 && json_dumpfd(root, fd, 0) == 0);
	close(fd);
	json_decref(root);
	struct vlm_tokenizer *tok;
	vlm_err err = { 0 };
	CHECK_INT(vlm_tokenizer_load(out, &tok, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "merges[5]");
	CHECK_CONTAINS(err.msg, "the right token is not in the vocabulary");
	unlink(out);
}

int main(void)
{
	const char *src = getenv("INTAKE_SOURCE_DIR");
	snprintf(fixture, sizeof fixture, "%s/tests/fixtures/tiny-glm4v", src ? src : "..");
	char path[4200];
	snprintf(path, sizeof path, "%s/tokenizer.json", fixture);
	struct vlm_tokenizer *tok;
	vlm_err err = { 0 };
	int rc = vlm_tokenizer_load(path, &tok, &err);
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "%s\n", err.msg);
		return CHECK_DONE();
	}
	test_golden(tok);
	test_utf8_repair(tok);
	test_api(tok);
	vlm_tokenizer_free(tok);
	test_broken();
	test_unknown_merge();
	return CHECK_DONE();
}
