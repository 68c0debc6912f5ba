/* Schema-constrained decoding: a schema compiled to a constraint over the model's tokens, applied
 * through the engine's logit-mask hook (vlm_logit_mask_fn), so the answer is always one JSON
 * object of the schema's shape.
 *
 * The answer is compact JSON (no optional white space): exactly the schema's keys in schema order,
 * each value of its type: strings (also date and decimal, which validation normalises) with
 * correct escapes and valid UTF-8; integer and number as well-formed JSON numbers; boolean;
 * enum as one of its values; object; array of objects (possibly empty). `null` is offered exactly
 * where the field is nullable (the schema's `nullable`, default true), whether or not it is
 * required: a required field answered null is reported by validation, which is better than a
 * forced guess. Patterns are forced only for fields with `constrain_pattern: true`.
 *
 * Limits: a value's text (a string's bytes between the quotes, a number's characters) is at most
 * max_value_bytes, so a runaway model cannot loop inside one value; arrays are not bounded (the
 * caller's max_tokens is). Numbers are ones jansson reads: integer parts of at most 18 digits,
 * exponents of at most two digits. \u escapes of surrogates and of U+0000 are not offered:
 * characters outside the BMP are written as UTF-8, which models do anyway.
 *
 * Thread safety: a vocabulary and a compiled grammar are immutable for their users and may be
 * shared between threads (the grammar fills its per-state token-set cache under a lock). A
 * grammar state is one generation's and belongs to one thread. */
#ifndef EX_GRAMMAR_H
#define EX_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "validate.h"
#include "vlm.h"

/* ---- Vocabulary ------------------------------------------------------------------------------ */

/* Token id -> bytes, with special and stop flags. Special and stop tokens never appear inside the
 * answer; stop tokens are the only ones offered after its closing brace. */
struct ex_vocab;

enum {
	EX_TOKEN_SPECIAL = 1u << 0,
	EX_TOKEN_STOP = 1u << 1,
};

/* From arrays (tests, benchmarks): token i spells bytes[i][0..lens[i]) (NULL for an id that is no
 * token) with flags[i] (EX_TOKEN_* bits; flags may be NULL). Copies everything. */
int ex_vocab_new(int32_t n_tokens, const char *const *bytes, const size_t *lens,
		 const uint8_t *flags, struct ex_vocab **out, vlm_err *err);
/* From a loaded model (vlm_model_n_tokens and friends). Copies; the model may go away after. */
int ex_vocab_from_model(const struct vlm_model *model, struct ex_vocab **out, vlm_err *err);
void ex_vocab_free(struct ex_vocab *vocab); /* accepts NULL */
int32_t ex_vocab_n_tokens(const struct ex_vocab *vocab);

/* ---- Compiled grammar ------------------------------------------------------------------------ */

struct ex_grammar;

#define EX_GRAMMAR_MAX_VALUE_BYTES 512

struct ex_grammar_opts {
	/* 0: EX_GRAMMAR_MAX_VALUE_BYTES; at most 65535. Below 6 some spellings cannot start (a \u
	 * escape needs 6 bytes, a 4-byte character 4); a value can always be closed. */
	size_t max_value_bytes;
};

/* Compiles `schema` over `vocab`. Both are borrowed and must outlive the grammar. *out is
 * caller-owned (ex_grammar_free). -EINVAL when the vocabulary has no stop token (the answer could
 * never end) or opts are out of range; -ENOMEM. */
int ex_grammar_compile_opts(const struct ex_schema *schema, const struct ex_vocab *vocab,
			    const struct ex_grammar_opts *opts, struct ex_grammar **out,
			    vlm_err *err);
/* Same with the default options. */
int ex_grammar_compile(const struct ex_schema *schema, const struct ex_vocab *vocab,
		       struct ex_grammar **out, vlm_err *err);
void ex_grammar_free(struct ex_grammar *g); /* accepts NULL */

/* What the token-set cache holds: sets walked (one per state and value budget met so far) and
 * the bitsets shared by every string or number state at one position. For tests and bench. */
struct ex_grammar_stats {
	size_t n_sets, n_shared;
};
void ex_grammar_stats(const struct ex_grammar *g, struct ex_grammar_stats *out);

/* ---- One generation -------------------------------------------------------------------------- */

struct ex_grammar_state;

/* A state at the start of the answer. *out is caller-owned (ex_grammar_state_free); the grammar
 * must outlive it. */
int ex_grammar_state_new(const struct ex_grammar *g, struct ex_grammar_state **out, vlm_err *err);
void ex_grammar_state_free(struct ex_grammar_state *s); /* accepts NULL */
/* Back to the start of the answer, for the next generation. */
void ex_grammar_state_reset(struct ex_grammar_state *s);

/* The engine's mask hook (vlm_logit_mask_fn, with the state as `user`): takes in the tokens of
 * `generated` it has not seen yet, then sets every token the schema does not allow next to
 * -INFINITY (ids past the vocabulary too). `generated` must extend what earlier calls saw.
 * Returns 0, or -EBADMSG when a generated token breaks the grammar or no token can continue
 * (a pattern that cannot complete within max_value_bytes): ex_grammar_finish says which. */
int ex_grammar_mask(void *state, const int32_t *generated, size_t n_generated, float *logits,
		    int64_t n_vocab);

/* After generation: takes in the rest of `tokens` (the result's tokens: the mask never sees the
 * last one) and checks that the answer is complete. Returns 0, or -EBADMSG when the answer
 * stopped before its closing brace (max_tokens hit: the caller marks the result failed) or broke
 * the grammar, with err saying which. */
int ex_grammar_finish(struct ex_grammar_state *s, const int32_t *tokens, size_t n_tokens,
		      vlm_err *err);

/* True once the closing brace of the answer has been taken in. */
bool ex_grammar_complete(const struct ex_grammar_state *s);

/* The answer's text taken in so far (NUL-terminated, borrowed from the state until its next
 * change). */
const char *ex_grammar_json(const struct ex_grammar_state *s);

/* Per value of the answer (every scalar and every null), its concrete path ("items[0].amount",
 * as validate.c names values) and the log-probabilities of the tokens that spelled it, taken
 * from `logprobs` (the result's logprobs, parallel to the tokens taken in; at least as many).
 * Rule: a token counts for the first value whose text (quotes and `null` included) it touches;
 * structural text (keys, commas, braces) counts for nothing. Tokens of one value are
 * consecutive, so each entry points into `logprobs`. Every entry gets `page`. *out is a new
 * array (free() it); its paths are borrowed from the state and its logprobs from the caller. */
int ex_grammar_evidence(const struct ex_grammar_state *s, const float *logprobs, size_t n_logprobs,
			int page, struct ex_field_evidence **out, size_t *n_out, vlm_err *err);

#endif
