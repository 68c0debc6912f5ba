/* Token selection: see sampler.h. The random source is xoshiro256** seeded through splitmix64,
 * so results do not depend on libc. Sorting happens only over tokens that survive top-k, and
 * only when top-p is active. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "sampler.h"

struct candidate {
	float logit;
	int32_t id;
};

struct vlm_sampler {
	struct vlm_sampler_params p;
	int64_t n_vocab;
	uint64_t rng[4];
	struct candidate *cand; /* [n_vocab] */
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform(uint64_t s[4])
{
	return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

int vlm_sampler_new(int64_t n_vocab, const struct vlm_sampler_params *p, struct vlm_sampler **out,
		    vlm_err *err)
{
	*out = NULL;
	if (n_vocab < 1)
		return vlm_err_set(err, -EINVAL, "sampler: vocabulary of %lld tokens",
				   (long long)n_vocab);
	if (!p->greedy && (!(p->temperature > 0) || !(p->top_p > 0 && p->top_p <= 1) ||
			   p->top_k < 0 || !(p->repetition_penalty > 0)))
		return vlm_err_set(err, -EINVAL,
				   "sampler: temperature %g, top_p %g, top_k %d, "
				   "repetition_penalty %g out of range",
				   p->temperature, p->top_p, p->top_k, p->repetition_penalty);
	struct vlm_sampler *s = calloc(1, sizeof *s);
	if (!s || !(s->cand = malloc((size_t)n_vocab * sizeof *s->cand))) {
		vlm_sampler_free(s);
		return vlm_err_set(err, -ENOMEM, "sampler: out of memory");
	}
	s->p = *p;
	s->n_vocab = n_vocab;
	uint64_t x = p->seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	*out = s;
	return 0;
}

void vlm_sampler_free(struct vlm_sampler *s)
{
	if (!s)
		return;
	free(s->cand);
	free(s);
}

static int by_logit_desc(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* log(sum(exp(x))) over the finite logits, max being their maximum. */
static double log_sum_exp(const float *logits, int64_t n, float max)
{
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		if (logits[i] > -INFINITY)
			sum += exp((double)logits[i] - max);
	return max + log(sum);
}

int vlm_sampler_next(struct vlm_sampler *s, const float *logits, const int32_t *history,
		     size_t n_history, int32_t *token, float *logprob, vlm_err *err)
{
	int64_t n = s->n_vocab, best = -1;
	for (int64_t i = 0; i < n; i++)
		if (logits[i] > -INFINITY && (best < 0 || logits[i] > logits[best]))
			best = i;
	if (best < 0)
		return vlm_err_set(err, -EINVAL, "sampler: every token is masked");
	double lse = log_sum_exp(logits, n, logits[best]);
	if (s->p.greedy) {
		*token = (int32_t)best;
		*logprob = (float)(logits[best] - lse);
		return 0;
	}

	struct candidate *c = s->cand;
	for (int64_t i = 0; i < n; i++)
		c[i] = (struct candidate){ logits[i] > -INFINITY ? logits[i] : -INFINITY,
					   (int32_t)i };
	/* Computed from the untouched logits, so an id repeated in the history is penalised once,
	 * as HF's gather/scatter does. */
	float pen = s->p.repetition_penalty;
	if (pen != 1.0f)
		for (size_t i = 0; i < n_history; i++) {
			int32_t id = history[i];
			if (id >= 0 && id < n && c[id].logit > -INFINITY)
				c[id].logit = logits[id] > 0 ? logits[id] / pen : logits[id] * pen;
		}
	int64_t m = 0;
	for (int64_t i = 0; i < n; i++)
		if (c[i].logit > -INFINITY)
			c[m++] = (struct candidate){ c[i].logit / s->p.temperature, c[i].id };

	bool truncate_k = s->p.top_k > 0 && s->p.top_k < m;
	if (truncate_k || s->p.top_p < 1.0f)
		qsort(c, (size_t)m, sizeof *c, by_logit_desc);
	if (truncate_k) {
		/* HF keeps every logit >= the k-th largest, ties included. */
		float kth = c[s->p.top_k - 1].logit;
		int64_t keep = s->p.top_k;
		while (keep < m && c[keep].logit >= kth)
			keep++;
		m = keep;
	}
	float top = c[0].logit;
	for (int64_t k = 1; k < m; k++)
		top = c[k].logit > top ? c[k].logit : top;
	double total = 0;
	for (int64_t k = 0; k < m; k++)
		total += exp((double)c[k].logit - top);
	if (s->p.top_p < 1.0f) {
		/* The smallest prefix, by descending probability, whose mass reaches top_p. */
		double kept = 0;
		int64_t keep = 0;
		while (keep < m && kept < s->p.top_p * total)
			kept += exp((double)c[keep++].logit - top);
		m = keep;
		total = kept;
	}
	double r = uniform(s->rng) * total, acc = 0;
	int64_t pick = m - 1;
	for (int64_t k = 0; k < m; k++) {
		acc += exp((double)c[k].logit - top);
		if (r < acc) {
			pick = k;
			break;
		}
	}
	*token = c[pick].id;
	*logprob = (float)(logits[*token] - lse);
	return 0;
}
