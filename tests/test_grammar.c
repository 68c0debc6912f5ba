/* The schema grammar over a synthetic vocabulary of awkward tokens (every single byte, UTF-8
 * fragments, tokens spanning JSON punctuation and values): the allowed and forbidden tokens at key
 * points of every type, random walks (uniform among allowed tokens) that must always give JSON
 * jansson reads with the schema's shape, for a test schema and every shipped schema, the evidence
 * per value, the value length limit, broken token streams, and the shared cache. Expected answers
 * are written by hand from the JSON grammar (RFC 8259) and the schema. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <unistd.h>

#include "check.h"
#include "grammar.h"
#include "json_shape.h"

/* Ids 0..255 are the single bytes; then these; then a special and two stop tokens. */
static const char *const extra[] = {
	"\",",
	"\":\"",
	"}]",
	"{\"",
	"\\\"",
	"\\u00",
	"\\u",
	"\"}",
	"},{\"",
	"\":",
	"{",
	"\"",
	"12",
	"123",
	"007",
	".5",
	"e+",
	"-0",
	"1,",
	"5,\"x\":5",
	"null",
	"nu",
	"ll",
	"true",
	"false",
	" the",
	"  ",
	" ",
	"abc",
	"\xe4\xb8\xad",
	"\xe4\xb8\xad\xe6\x96\x87",
	"\xe4",
	"\xb8\xad",
	"\xe4\xb8",
	"\xad",
	"\"H",
	"\"Hi",
	"gh\"",
	"\"],\"",
	"\"]",
	"]}",
	"D8",
	"D7",
	"\",\"",
	"0,",
	"\"s\":\"",
	"\\n",
	"\n",
};
#define N_EXTRA (sizeof extra / sizeof extra[0])
#define ID_SPECIAL (256 + (int32_t)N_EXTRA)
#define ID_STOP (ID_SPECIAL + 1)
#define ID_STOP2 (ID_SPECIAL + 2)
#define N_VOCAB (ID_SPECIAL + 3)

static struct ex_vocab *make_vocab(void)
{
	static char single[256];
	const char *bytes[N_VOCAB];
	size_t lens[N_VOCAB];
	uint8_t flags[N_VOCAB] = { 0 };
	for (int i = 0; i < 256; i++) {
		single[i] = (char)i;
		bytes[i] = &single[i];
		lens[i] = 1;
	}
	for (size_t i = 0; i < N_EXTRA; i++) {
		bytes[256 + i] = extra[i];
		lens[256 + i] = strlen(extra[i]);
	}
	bytes[ID_SPECIAL] = "<|box|>";
	bytes[ID_STOP] = "<|user|>";
	bytes[ID_STOP2] = "<|endoftext|>";
	for (int i = ID_SPECIAL; i < N_VOCAB; i++)
		lens[i] = strlen(bytes[i]);
	flags[ID_SPECIAL] = EX_TOKEN_SPECIAL;
	flags[ID_STOP] = EX_TOKEN_SPECIAL | EX_TOKEN_STOP;
	flags[ID_STOP2] = EX_TOKEN_STOP;
	struct ex_vocab *v = NULL;
	vlm_err err = { 0 };
	if (ex_vocab_new(N_VOCAB, bytes, lens, flags, &v, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	return v;
}

/* The id of a token by its text (a single byte when one character long). */
static int32_t tok(const char *text)
{
	if (strlen(text) == 1)
		return (unsigned char)text[0];
	for (size_t i = 0; i < N_EXTRA; i++)
		if (strcmp(extra[i], text) == 0)
			return 256 + (int32_t)i;
	fprintf(stderr, "no token '%s'\n", text);
	exit(1);
}

static const char test_schema[] =
	"name: t\nversion: 1\ninstruction: x\n"
	"fields:\n"
	"  s: {type: string}\n"
	"  i: {type: integer, nullable: false}\n"
	"  x: {type: number}\n"
	"  d: {type: decimal}\n"
	"  dt: {type: date}\n"
	"  b: {type: boolean}\n"
	"  e: {type: enum, values: [H, High, L]}\n"
	"  code: {type: string, pattern: '\\d{3}', constrain_pattern: true, nullable: false}\n"
	"  o:\n"
	"    type: object\n"
	"    fields:\n"
	"      a: {type: string}\n"
	"  items:\n"
	"    type: array\n"
	"    fields:\n"
	"      name: {type: string}\n"
	"      qty: {type: integer}\n";

static struct ex_schema *load_schema(const char *path)
{
	struct ex_schema *schema = NULL;
	vlm_err err = { 0 };
	if (ex_schema_load(path, &schema, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	return schema;
}

/* A generation fed by hand: the tokens so far and the logits of the last mask. */
struct run {
	struct ex_grammar_state *s;
	int32_t gen[4096];
	size_t n;
	float logits[N_VOCAB + 5]; /* the LM head may have rows past the vocabulary */
	int rc;
};

static int mask(struct run *r)
{
	for (int i = 0; i < N_VOCAB + 5; i++)
		r->logits[i] = 1.0f;
	return r->rc = ex_grammar_mask(r->s, r->gen, r->n, r->logits, N_VOCAB + 5);
}

/* Appends the tokens (NULL-terminated) and masks. */
static void feed(struct run *r, ...)
{
	va_list ap;
	va_start(ap, r);
	for (const char *t; (t = va_arg(ap, const char *));)
		r->gen[r->n++] = tok(t);
	va_end(ap);
	mask(r);
}

static bool ok(const struct run *r, const char *text)
{
	return r->logits[tok(text)] == 1.0f;
}

static bool ok_id(const struct run *r, int32_t id)
{
	return r->logits[id] == 1.0f;
}

static void start(struct run *r, struct ex_grammar_state *s)
{
	ex_grammar_state_reset(s);
	r->s = s;
	r->n = 0;
	mask(r);
}

#define ALLOWED(r, t) CHECK(ok(r, t))
#define FORBIDDEN(r, t) CHECK(!ok(r, t))

static void test_key_points(struct ex_grammar_state *s)
{
	struct run *r = calloc(1, sizeof *r);
	start(r, s);
	/* The answer opens with {"s": and nothing else; no stop, special or padding token. */
	CHECK_INT(r->rc, 0);
	ALLOWED(r, "{");
	ALLOWED(r, "{\"");
	FORBIDDEN(r, "\"");
	FORBIDDEN(r, " ");
	FORBIDDEN(r, "}]");
	CHECK(!ok_id(r, ID_SPECIAL) && !ok_id(r, ID_STOP) && !ok_id(r, ID_STOP2));
	CHECK(!ok_id(r, N_VOCAB) && !ok_id(r, N_VOCAB + 4));
	feed(r, "{\"", "s", NULL);
	ALLOWED(r, "\":\"");
	ALLOWED(r, "\":");
	FORBIDDEN(r, "\",");
	FORBIDDEN(r, "s");
	/* String or null (nullable by default); no number, no boolean, no white space. */
	feed(r, "\":", NULL);
	ALLOWED(r, "\"");
	ALLOWED(r, "null");
	ALLOWED(r, "nu");
	ALLOWED(r, "\"H");
	FORBIDDEN(r, "1");
	FORBIDDEN(r, "true");
	FORBIDDEN(r, " ");
	FORBIDDEN(r, "{");
	/* Inside the string: no raw control character, escapes and UTF-8 only when well-formed. */
	feed(r, "\"", "abc", NULL);
	FORBIDDEN(r, "\n");
	ALLOWED(r, "\\n");
	CHECK(!ok_id(r, 0) && !ok_id(r, 0x1f) && ok_id(r, 0x7f));
	ALLOWED(r, "\\\"");
	ALLOWED(r, "\\u00");
	ALLOWED(r, "\xe4");
	ALLOWED(r, "\xe4\xb8\xad\xe6\x96\x87");
	FORBIDDEN(r, "\xb8\xad");
	CHECK(!ok_id(r, 0xc0) && !ok_id(r, 0xc1) && !ok_id(r, 0xf5) && !ok_id(r, 0xff));
	ALLOWED(r, "\",");
	ALLOWED(r, "\",\"");
	FORBIDDEN(r, "\"}"); /* s is not the last field */
	FORBIDDEN(r, "\":");
	feed(r, "\xe4", NULL); /* half a character: only its continuation */
	ALLOWED(r, "\xb8\xad");
	ALLOWED(r, "\xb8");
	FORBIDDEN(r, "a");
	FORBIDDEN(r, "\"");
	FORBIDDEN(r, "\xe4");
	feed(r, "\xb8", NULL);
	ALLOWED(r, "\xad");
	FORBIDDEN(r, "\xb8\xad");
	feed(r, "\xad", "\\", NULL);
	ALLOWED(r, "\"");
	ALLOWED(r, "/");
	ALLOWED(r, "u");
	FORBIDDEN(r, "x");
	FORBIDDEN(r, "'");
	feed(r, "u", NULL); /* \u: four hex digits, no surrogate, no U+0000 */
	ALLOWED(r, "D7");
	FORBIDDEN(r, "D8");
	ALLOWED(r, "0");
	ALLOWED(r, "a");
	FORBIDDEN(r, "g");
	feed(r, "0", "0", "0", NULL);
	FORBIDDEN(r, "0");
	ALLOWED(r, "1");
	ALLOWED(r, "f");
	feed(r, "f", "\",\"", "i", "\":", NULL);
	/* A non-nullable integer: no null, no leading zero, no fraction. */
	FORBIDDEN(r, "null");
	FORBIDDEN(r, "\"");
	ALLOWED(r, "0");
	ALLOWED(r, "-0");
	FORBIDDEN(r, "007");
	ALLOWED(r, "12");
	ALLOWED(r, "1,");
	ALLOWED(r, "5,\"x\":5");
	feed(r, "-", NULL);
	FORBIDDEN(r, ",");
	FORBIDDEN(r, "-");
	ALLOWED(r, "0");
	feed(r, "0", NULL);
	FORBIDDEN(r, "0");
	FORBIDDEN(r, "1");
	FORBIDDEN(r, ".5");
	FORBIDDEN(r, "e+");
	ALLOWED(r, ",");
	FORBIDDEN(r, "}");
	/* A number: fraction and exponent, each with digits. */
	feed(r, ",", "\"", "x", "\":", NULL);
	ALLOWED(r, "null");
	ALLOWED(r, "-0");
	feed(r, "0", NULL);
	ALLOWED(r, ".5");
	ALLOWED(r, "e+");
	ALLOWED(r, ",");
	FORBIDDEN(r, "0,");
	FORBIDDEN(r, "0");
	feed(r, ".", NULL);
	FORBIDDEN(r, ",");
	FORBIDDEN(r, "e+");
	feed(r, "5", "e+", NULL);
	FORBIDDEN(r, ",");
	FORBIDDEN(r, "-");
	feed(r, "1", "2", NULL);
	FORBIDDEN(r, "3"); /* two exponent digits at most */
	ALLOWED(r, ",");
	/* Decimal and date are JSON strings (validation normalises them). */
	feed(r, ",", "\"", "d", "\":", NULL);
	ALLOWED(r, "\"");
	FORBIDDEN(r, "1");
	feed(r, "\"", "12", ".5", "\",\"", "d", "t", "\":", "null", ",", "\"", "b", "\":", NULL);
	ALLOWED(r, "true");
	ALLOWED(r, "false");
	ALLOWED(r, "t");
	FORBIDDEN(r, "\"");
	FORBIDDEN(r, "1");
	feed(r, "t", NULL);
	ALLOWED(r, "r");
	FORBIDDEN(r, "true");
	feed(r, "r", "u", "e", ",", "\"", "e", "\":", NULL);
	/* Enum: only its values, as strings. */
	ALLOWED(r, "\"H");
	ALLOWED(r, "\"Hi");
	ALLOWED(r, "null");
	FORBIDDEN(r, "abc");
	feed(r, "\"H", NULL);
	ALLOWED(r, "\",");
	ALLOWED(r, "i");
	ALLOWED(r, "\"");
	FORBIDDEN(r, "a");
	feed(r, "i", NULL);
	ALLOWED(r, "gh\"");
	FORBIDDEN(r, "\"");
	feed(r, "gh\"", ",", "\"", "c", "o", "d", "e", "\":", NULL);
	/* The pattern \d{3}, forced: digits only, exactly three, no null (not nullable). */
	FORBIDDEN(r, "null");
	feed(r, "\"", NULL);
	FORBIDDEN(r, "\"");
	ALLOWED(r, "1");
	ALLOWED(r, "12");
	ALLOWED(r, "123");
	ALLOWED(r, "007");
	FORBIDDEN(r, "a");
	FORBIDDEN(r, "\xe4"); /* no token may end inside a character of a pattern string */
	feed(r, "12", NULL);
	FORBIDDEN(r, "\"");
	FORBIDDEN(r, "12");
	ALLOWED(r, "3");
	feed(r, "3", NULL);
	FORBIDDEN(r, "0");
	ALLOWED(r, "\",");
	ALLOWED(r, "\"");
	/* The object, then the array of line items (possibly empty). */
	feed(r, "\",", "\"", "o", "\":", NULL);
	ALLOWED(r, "{");
	ALLOWED(r, "{\"");
	ALLOWED(r, "null");
	FORBIDDEN(r, "[");
	feed(r, "null", ",", "\"", "i", "t", "e", "m", "s", "\":", NULL);
	ALLOWED(r, "[");
	ALLOWED(r, "null");
	FORBIDDEN(r, "{");
	feed(r, "[", NULL);
	ALLOWED(r, "]}");
	ALLOWED(r, "{\"");
	FORBIDDEN(r, "\"");
	FORBIDDEN(r, ",");
	feed(r, "{\"", "n", "a", "m", "e", "\":", "null", ",", "\"", "q", "t", "y", "\":", "1",
	     NULL);
	ALLOWED(r, "}]");
	ALLOWED(r, "},{\"");
	FORBIDDEN(r, "]}");
	FORBIDDEN(r, ",");
	feed(r, "}]", NULL);
	ALLOWED(r, "}");
	FORBIDDEN(r, ",");
	FORBIDDEN(r, "]}");
	CHECK(!ok_id(r, ID_STOP));
	CHECK(!ex_grammar_complete(r->s));
	/* After the closing brace: only the stop tokens. */
	feed(r, "}", NULL);
	CHECK_INT(r->rc, 0);
	CHECK(ex_grammar_complete(r->s));
	CHECK(ok_id(r, ID_STOP) && ok_id(r, ID_STOP2));
	CHECK(!ok_id(r, ID_SPECIAL));
	for (int i = 0; i < ID_SPECIAL; i++)
		CHECK(!ok_id(r, i));
	vlm_err err = { 0 };
	CHECK_INT(ex_grammar_finish(r->s, r->gen, r->n, &err), 0);
	const char *want = "{\"s\":\"abc\xe4\xb8\xad\\u000f\",\"i\":-0,\"x\":0.5e+12,"
			   "\"d\":\"12.5\",\"dt\":null,\"b\":true,\"e\":\"High\",\"code\":\"123\","
			   "\"o\":null,\"items\":[{\"name\":null,\"qty\":1}]}";
	CHECK_STR(ex_grammar_json(r->s), want);
	free(r);
}

/* ---- Random walks ---------------------------------------------------------------------------- */

static uint64_t rng(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

#define WALK_MAX 200000

/* One answer chosen uniformly among the allowed tokens at every step, until a stop token. */
static int random_answer(struct ex_grammar_state *s, uint64_t seed, int32_t *gen, float *logits,
			 size_t *n_gen)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t n = 0;
	ex_grammar_state_reset(s);
	while (n < WALK_MAX) {
		for (int i = 0; i < N_VOCAB; i++)
			logits[i] = 0;
		int rc = ex_grammar_mask(s, gen, n, logits, N_VOCAB);
		if (rc < 0)
			return rc;
		int n_ok = 0;
		for (int i = 0; i < N_VOCAB; i++)
			n_ok += logits[i] == 0;
		int pick = (int)(rng(&x) % (uint64_t)n_ok), t = 0;
		while (logits[t] != 0 || pick-- > 0)
			t++;
		if (t == ID_STOP || t == ID_STOP2)
			break;
		gen[n++] = t;
	}
	*n_gen = n;
	return 0;
}

static void test_random_walks(const struct ex_vocab *v, const char *path, size_t max_value,
			      int n_seeds)
{
	struct ex_schema *schema = load_schema(path);
	struct ex_grammar *g = NULL;
	struct ex_grammar_state *s = NULL;
	vlm_err err = { 0 };
	struct ex_grammar_opts opts = { .max_value_bytes = max_value };
	CHECK_INT(ex_grammar_compile_opts(schema, v, &opts, &g, &err), 0);
	CHECK_INT(ex_grammar_state_new(g, &s, &err), 0);
	int32_t *gen = malloc(WALK_MAX * sizeof *gen);
	float *logits = malloc(N_VOCAB * sizeof *logits);
	int bad = 0;
	for (int seed = 0; seed < n_seeds && bad < 3; seed++) {
		size_t n = 0;
		int rc = random_answer(s, (uint64_t)seed, gen, logits, &n);
		if (rc == 0)
			rc = ex_grammar_finish(s, gen, n, &err);
		json_error_t jerr;
		json_t *j = rc == 0 ? json_loads(ex_grammar_json(s), 0, &jerr) : NULL;
		if (!j || !object_shape(j, schema->fields, schema->n_fields)) {
			fprintf(stderr, "%s seed %d: rc %d (%s), %s: %s\n", path, seed, rc, err.msg,
				j ? "wrong shape" : jerr.text, ex_grammar_json(s));
			bad++;
		}
		json_decref(j);
	}
	CHECK_INT(bad, 0);
	free(gen);
	free(logits);
	ex_grammar_state_free(s);
	ex_grammar_free(g);
	ex_schema_free(schema);
}

/* ---- Evidence ---------------------------------------------------------------------------------- */

static void test_evidence(const struct ex_schema *schema, struct ex_grammar_state *s)
{
	static const char *const toks[] = {
		"{\"",
		"s",
		"\":\"",
		"abc",
		"\",",
		"\"",
		"i",
		"\":",
		"5,\"x\":5",
		",", /* 0 */
		"\"",
		"d",
		"\":",
		"null",
		",",
		"\"",
		"d",
		"t",
		"\":",
		"n", /* 10 */
		"u",
		"ll",
		",",
		"\"",
		"b",
		"\":",
		"false",
		",",
		"\"",
		"e", /* 20 */
		"\":",
		"\"",
		"L",
		"\"",
		",",
		"\"",
		"c",
		"o",
		"d",
		"e", /* 30 */
		"\":",
		"\"",
		"123",
		"\",",
		"\"",
		"o",
		"\":",
		"{\"",
		"a",
		"\":\"", /* 40 */
		"\xe4\xb8\xad",
		"\"}",
		",",
		"\"",
		"i",
		"t",
		"e",
		"m",
		"s",
		"\":", /* 50 */
		"[",
		"{\"",
		"n",
		"a",
		"m",
		"e",
		"\":\"",
		"x",
		"\",",
		"\"", /* 60 */
		"q",
		"t",
		"y",
		"\":",
		"1",
		"},{\"",
		"n",
		"a",
		"m",
		"e", /* 70 */
		"\":",
		"null",
		",",
		"\"",
		"q",
		"t",
		"y",
		"\":",
		"nu",
		"ll", /* 80 */
		"}]",
		"}", /* 90 */
	};
	enum { N = sizeof toks / sizeof toks[0] };
	int32_t ids[N];
	float lp[N];
	for (int i = 0; i < N; i++) {
		ids[i] = tok(toks[i]);
		lp[i] = -(float)(i + 1) / 100;
	}
	vlm_err err = { 0 };
	ex_grammar_state_reset(s);
	CHECK_INT(ex_grammar_finish(s, ids, N, &err), 0);
	CHECK_STR(ex_grammar_json(s),
		  "{\"s\":\"abc\",\"i\":5,\"x\":5,\"d\":null,\"dt\":null,"
		  "\"b\":false,\"e\":\"L\",\"code\":\"123\",\"o\":{\"a\":\"\xe4\xb8\xad\"},"
		  "\"items\":[{\"name\":\"x\",\"qty\":1},{\"name\":null,\"qty\":null}]}");
	/* Hand-derived: a token counts for the first value whose text it touches. */
	static const struct {
		const char *path;
		size_t first, n;
	} want[] = {
		{ "s", 2, 3 },
		{ "i", 8, 1 },
		{ "x", 0, 0 },
		{ "d", 13, 1 },
		{ "dt", 19, 3 },
		{ "b", 26, 1 },
		{ "e", 31, 3 },
		{ "code", 41, 3 },
		{ "o.a", 49, 3 },
		{ "items[0].name", 66, 3 },
		{ "items[0].qty", 74, 1 },
		{ "items[1].name", 81, 1 },
		{ "items[1].qty", 88, 2 },
	};
	struct ex_field_evidence *ev = NULL;
	size_t n_ev = 0;
	CHECK_INT(ex_grammar_evidence(s, lp, N - 1, 1, &ev, &n_ev, &err), -EINVAL);
	CHECK_INT(ex_grammar_evidence(s, lp, N, 2, &ev, &n_ev, &err), 0);
	CHECK_INT(n_ev, sizeof want / sizeof want[0]);
	for (size_t k = 0; k < n_ev && k < sizeof want / sizeof want[0]; k++) {
		CHECK_STR(ev[k].path, want[k].path);
		CHECK_INT(ev[k].n, want[k].n);
		CHECK(want[k].n == 0 || ev[k].logprobs == lp + want[k].first);
		CHECK_INT(ev[k].page, 2);
	}
	/* validate.c finds the values by these paths: confidence exp(min logprob). */
	json_t *answer = json_loads(ex_grammar_json(s), 0, NULL);
	struct ex_validation *val = NULL;
	CHECK_INT(ex_validate(schema, answer, ev, n_ev, &val, &err), 0);
	int found = 0;
	for (size_t k = 0; val && k < val->n_fields; k++) {
		if (strcmp(val->fields[k].path, "s") == 0) {
			CHECK_NEAR(val->fields[k].confidence, exp(-0.05), 1e-6);
			found++;
		}
		if (strcmp(val->fields[k].path, "items[1].qty") == 0) {
			CHECK_NEAR(val->fields[k].confidence, exp(-0.90), 1e-6);
			CHECK_INT(val->fields[k].page, 2);
			found++;
		}
	}
	CHECK_INT(found, 2);
	ex_validation_free(val);
	json_decref(answer);
	free(ev);
}

/* ---- Limits and broken streams ----------------------------------------------------------------- */

static void test_limits(const struct ex_vocab *v)
{
	char path[] = "/tmp/intake-grammar-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fputs("name: m\nversion: 1\ninstruction: x\nfields:\n  s: {type: string}\n"
	      "  n: {type: number}\n",
	      f);
	fclose(f);
	struct ex_schema *schema = load_schema(path);
	unlink(path);
	struct ex_grammar *g = NULL;
	struct ex_grammar_state *s = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_grammar_compile_opts(schema, v, &(struct ex_grammar_opts){ 65536 }, &g, &err),
		  -EINVAL);
	CHECK_CONTAINS(err.msg, "max_value_bytes");
	CHECK_INT(ex_grammar_compile_opts(schema, v, &(struct ex_grammar_opts){ 8 }, &g, &err), 0);
	CHECK_INT(ex_grammar_state_new(g, &s, &err), 0);
	struct run *r = calloc(1, sizeof *r);
	/* A string of at most 8 bytes: what still fits decides what may start. */
	start(r, s);
	feed(r, "{\"", "s", "\":\"", "a", "b", "c", "d", "e", NULL); /* 5 bytes, 3 left */
	ALLOWED(r, "\xe4");
	feed(r, "f", NULL); /* 2 left */
	FORBIDDEN(r, "\xe4");
	CHECK(ok_id(r, 0xc3));
	ALLOWED(r, "\\\"");
	ALLOWED(r, "\\n");
	FORBIDDEN(r, "\\u");
	FORBIDDEN(r, "abc");
	feed(r, "g", NULL); /* 1 left */
	FORBIDDEN(r, "\\\"");
	CHECK(!ok_id(r, 0xc3));
	ALLOWED(r, "h");
	feed(r, "h", NULL); /* 0 left: only the closing quote */
	FORBIDDEN(r, "h");
	ALLOWED(r, "\"");
	ALLOWED(r, "\",");
	/* A number of at most 8 characters. */
	feed(r, "\",", "\"", "n", "\":", "-", "1", "2", "3", "4", "5", "6", NULL);
	ALLOWED(r, "7");
	FORBIDDEN(r, ".5");
	feed(r, "7", NULL);
	FORBIDDEN(r, "8");
	ALLOWED(r, "}");
	free(r);

	/* The token limit: the answer stopped early is reported, not accepted. */
	int32_t early[] = { tok("{\""), 's', tok("\":\""), 'a' };
	ex_grammar_state_reset(s);
	CHECK_INT(ex_grammar_finish(s, early, 4, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "before its closing brace");

	/* A token the grammar does not allow, a stop token inside the answer, a token past the
	 * vocabulary: -EBADMSG from the mask, sticky. */
	float logits[N_VOCAB];
	int32_t wrong[] = { tok("{\""), 's', tok("\":"), '1' };
	ex_grammar_state_reset(s);
	CHECK_INT(ex_grammar_mask(s, wrong, 4, logits, N_VOCAB), -EBADMSG);
	CHECK_INT(ex_grammar_mask(s, wrong, 4, logits, N_VOCAB), -EBADMSG);
	CHECK_INT(ex_grammar_finish(s, wrong, 4, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "breaks the answer's JSON after '{\"s\":'");
	int32_t stop[] = { tok("{\""), ID_STOP };
	ex_grammar_state_reset(s);
	CHECK_INT(ex_grammar_mask(s, stop, 2, logits, N_VOCAB), -EBADMSG);
	int32_t past[] = { N_VOCAB + 3 };
	ex_grammar_state_reset(s);
	CHECK_INT(ex_grammar_mask(s, past, 1, logits, N_VOCAB), -EBADMSG);
	ex_grammar_state_free(s);
	ex_grammar_free(g);

	/* No stop token: the answer could never end. */
	const char *bytes[] = { "{", "}", "<eos>" };
	size_t lens[] = { 1, 1, 5 };
	uint8_t flags[] = { 0, 0, EX_TOKEN_SPECIAL };
	struct ex_vocab *nostop = NULL;
	CHECK_INT(ex_vocab_new(3, bytes, lens, flags, &nostop, &err), 0);
	CHECK_INT(ex_grammar_compile(schema, nostop, &g, &err), -EINVAL);
	CHECK(g == NULL);
	CHECK_CONTAINS(err.msg, "no stop token");
	ex_vocab_free(nostop);
	ex_schema_free(schema);
}

/* String states of different fields share one bitset; only value-closing tokens are per state. */
static void test_shared_cache(const struct ex_vocab *v, const struct ex_schema *schema)
{
	struct ex_grammar *g = NULL;
	struct ex_grammar_state *s = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_grammar_compile(schema, v, &g, &err), 0);
	CHECK_INT(ex_grammar_state_new(g, &s, &err), 0);
	struct run *r = calloc(1, sizeof *r);
	struct ex_grammar_stats st;
	start(r, s);
	feed(r, "{\"", "s", "\":\"", NULL);
	ex_grammar_stats(g, &st);
	CHECK_INT(st.n_shared, 1);
	size_t sets = st.n_sets;
	feed(r, "abc", NULL); /* the same state, budget still beyond any token: no new walk */
	ex_grammar_stats(g, &st);
	CHECK_INT(st.n_sets, sets);
	/* o.a is another field's string at the same position: its own closing tokens, the same
	 * shared bitset. */
	feed(r, "\",", "\"", "i", "\":", "1,", "\"", "x", "\":", "null", ",", "\"", "d",
	     "\":", "null", ",", "\"", "d", "t", "\":", "null", ",", "\"", "b", "\":", "null", ",",
	     "\"", "e", "\":", "null", ",", "\"", "c", "o", "d", "e", "\":", "\"", "123", "\",",
	     "\"", "o", "\":", "{\"", "a", "\":\"", NULL);
	CHECK_INT(r->rc, 0);
	ALLOWED(r, "\"}");
	FORBIDDEN(r, "\",");
	ex_grammar_stats(g, &st);
	CHECK_INT(st.n_shared, 1);
	CHECK_INT(st.n_sets, sets + 1);
	free(r);
	ex_grammar_state_free(s);
	ex_grammar_free(g);
}

int main(void)
{
	char path[1024];
	const char *src = getenv("INTAKE_SOURCE_DIR");
	struct ex_vocab *v = make_vocab();
	CHECK_INT(ex_vocab_n_tokens(v), N_VOCAB);

	char schema_path[] = "/tmp/intake-grammar-XXXXXX";
	int fd = mkstemp(schema_path);
	FILE *f = fdopen(fd, "w");
	fputs(test_schema, f);
	fclose(f);
	struct ex_schema *schema = load_schema(schema_path);
	struct ex_grammar *g = NULL;
	struct ex_grammar_state *s = NULL;
	vlm_err err = { 0 };
	CHECK_INT(ex_grammar_compile(schema, v, &g, &err), 0);
	CHECK_INT(ex_grammar_state_new(g, &s, &err), 0);
	test_key_points(s);
	test_evidence(schema, s);
	ex_grammar_state_free(s);
	ex_grammar_free(g);
	test_limits(v);
	test_shared_cache(v, schema);

	test_random_walks(v, schema_path, 16, 1000);
	test_random_walks(v, schema_path, 0, 20);
	/* Every shipped schema. */
	snprintf(path, sizeof path, "%s/schemas", src);
	DIR *dir = opendir(path);
	int n_shipped = 0;
	for (struct dirent *e; dir && (e = readdir(dir));) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof path, "%s/schemas/%s", src, e->d_name);
		test_random_walks(v, path, 16, 1000);
		test_random_walks(v, path, 0, 10);
		n_shipped++;
	}
	if (dir)
		closedir(dir);
	CHECK(n_shipped >= 3);
	unlink(schema_path);
	ex_schema_free(schema);
	ex_vocab_free(v);
	return CHECK_DONE();
}
