/* libFuzzer target: schema-constrained decoding against token streams, with the tiny fixture
 * model's real vocabulary and the three shipped schemas. The first byte picks the schema; then
 * each 16-bit value is one step of a generation: with the top bit clear, the n-th token the mask
 * allows (so streams reach deep into the grammar), with it set, an arbitrary id (so streams also
 * break it). Checked: a token the mask forbade is refused when taken in; a completed answer is
 * one JSON object that validation accepts as an answer; evidence entries point into the given
 * log-probabilities; ex_grammar_finish succeeds exactly when the answer is complete. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "grammar.h"
#include "validate.h"

static const char *const schema_names[] = { "invoice", "lab_report", "nameplate" };
#define N_SCHEMAS (sizeof schema_names / sizeof schema_names[0])
static struct ex_schema *schemas[N_SCHEMAS];
static struct ex_grammar *grammars[N_SCHEMAS];
static struct ex_vocab *vocab;
static int32_t n_vocab;
#define MAX_STEPS 512
static float logits[65536];

static void free_all(void)
{
	for (size_t i = 0; i < N_SCHEMAS; i++) {
		ex_grammar_free(grammars[i]);
		ex_schema_free(schemas[i]);
	}
	ex_vocab_free(vocab);
}

static void die(const vlm_err *err)
{
	fprintf(stderr, "%s\n", err->msg);
	exit(2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[FUZZ_PATH_SIZE];
	vlm_err err = { 0 };
	struct vlm_model *model = NULL;
	struct vlm_model_opts opts = { .n_threads = 1 };
	if (vlm_model_load(fuzz_source_path(dir, "tests/fixtures/tiny-glm4v"), &opts, &model,
			   &err) != 0 ||
	    ex_vocab_from_model(model, &vocab, &err) != 0)
		die(&err);
	vlm_model_free(model);
	n_vocab = ex_vocab_n_tokens(vocab);
	if (n_vocab <= 0 || (size_t)n_vocab > sizeof logits / sizeof logits[0])
		FUZZ_DIE("vocabulary size");
	fuzz_source_path(dir, "schemas");
	for (size_t i = 0; i < N_SCHEMAS; i++)
		if (ex_schema_find(schema_names[i], dir, &schemas[i], &err) != 0 ||
		    ex_grammar_compile(schemas[i], vocab, &grammars[i], &err) != 0)
			die(&err);
	atexit(free_all);
	return 0;
}

/* The token a 16-bit step value stands for, given this step's mask. */
static int32_t pick(unsigned v)
{
	if (v & 0x8000)
		return (int32_t)((v & 0x7fff) % (unsigned)(n_vocab + 2));
	int32_t n_allowed = 0;
	for (int32_t t = 0; t < n_vocab; t++)
		n_allowed += !isinf(logits[t]);
	if (n_allowed == 0)
		return 0;
	int32_t k = (int32_t)(v % (unsigned)n_allowed);
	for (int32_t t = 0; t < n_vocab; t++)
		if (!isinf(logits[t]) && k-- == 0)
			return t;
	return 0;
}

static void check_answer(size_t which, const struct ex_grammar_state *s, const float *logprobs,
			 size_t n)
{
	json_error_t jerr;
	json_t *answer = json_loads(ex_grammar_json(s), 0, &jerr);
	FUZZ_CHECK(json_is_object(answer));
	struct ex_validation *v = NULL;
	vlm_err err = { 0 };
	FUZZ_CHECK(ex_validate(schemas[which], answer, NULL, 0, &v, &err) == 0);
	FUZZ_CHECK(v->status != EX_STATUS_FAILED);
	ex_validation_free(v);
	json_decref(answer);

	struct ex_field_evidence *ev = NULL;
	size_t n_ev = 0;
	FUZZ_CHECK(ex_grammar_evidence(s, logprobs, n, 1, &ev, &n_ev, &err) == 0);
	for (size_t i = 0; i < n_ev; i++) {
		FUZZ_CHECK(ev[i].path && ev[i].page == 1);
		FUZZ_CHECK(ev[i].n == 0 || (ev[i].logprobs >= logprobs &&
					    ev[i].logprobs + ev[i].n <= logprobs + n));
	}
	free(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return -1;
	size_t which = data[0] % N_SCHEMAS;
	struct ex_grammar_state *s = NULL;
	vlm_err err = { 0 };
	FUZZ_CHECK(ex_grammar_state_new(grammars[which], &s, &err) == 0);
	static int32_t tokens[MAX_STEPS];
	static float logprobs[MAX_STEPS];
	size_t n = 0;
	bool broken = false;
	for (size_t at = 1; at + 1 < size && n < MAX_STEPS; at += 2) {
		for (int32_t t = 0; t < n_vocab; t++)
			logits[t] = 0.0f;
		if (ex_grammar_mask(s, tokens, n, logits, n_vocab) != 0) {
			broken = true;
			break;
		}
		/* After the closing brace only stop tokens are offered, and the engine's result
		 * does not include the stop token: the generation is over. */
		if (ex_grammar_complete(s))
			break;
		/* A forbidden token must be refused when it is taken in, at the next call. */
		tokens[n] = pick((unsigned)data[at] | (unsigned)data[at + 1] << 8);
		bool forbidden = tokens[n] >= n_vocab || isinf(logits[tokens[n]]);
		logprobs[n] = -(float)n / 8;
		n++;
		if (forbidden) {
			FUZZ_CHECK(ex_grammar_mask(s, tokens, n, logits, n_vocab) == -EBADMSG);
			broken = true;
			break;
		}
	}
	int rc = ex_grammar_finish(s, tokens, n, &err);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	FUZZ_CHECK((rc == 0) == (!broken && ex_grammar_complete(s)));
	if (rc == 0)
		check_answer(which, s, logprobs, n);
	ex_grammar_state_free(s);
	return 0;
}
