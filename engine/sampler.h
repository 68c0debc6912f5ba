/* Choosing the next token from a step's logits: greedy (first maximum), or seeded sampling with
 * transformers' order of processors (repetition penalty, temperature, top-k, top-p), plus the
 * chosen token's log-probability for confidence scores.
 *
 * The log-probability is taken from the logits as the caller hands them (after any logit mask,
 * before penalty, temperature and truncation): the model's own belief among the allowed tokens.
 * A sampler owns its scratch (sized once for the vocabulary) and its random state; one sampler
 * per sequence, used by one thread at a time. The same seed gives the same tokens. */
#ifndef VLM_SAMPLER_H
#define VLM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vlm.h"

struct vlm_sampler_params {
	bool greedy;              /* ignore the fields below */
	float temperature;        /* > 0 */
	float top_p;              /* (0, 1]; 1 disables */
	int top_k;                /* 0 disables */
	float repetition_penalty; /* 1 disables */
	uint64_t seed;
};

struct vlm_sampler;

int vlm_sampler_new(int64_t n_vocab, const struct vlm_sampler_params *p, struct vlm_sampler **out,
		    vlm_err *err);
void vlm_sampler_free(struct vlm_sampler *s); /* accepts NULL */

/* Picks a token from logits [n_vocab] (not modified; -inf marks a masked token, NaN counts as
 * masked). history: every token of the sequence so far (prompt included), for the repetition
 * penalty. Returns -EINVAL when no token is allowed. */
int vlm_sampler_next(struct vlm_sampler *s, const float *logits, const int32_t *history,
		     size_t n_history, int32_t *token, float *logprob, vlm_err *err);

#endif
