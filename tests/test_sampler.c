/* Token selection: greedy ties, masks, truncation, temperature, penalty, seeding, and that the
 * reported log-probability is the unprocessed one. Frequencies are checked against probabilities
 * computed by hand from the logits. */
#include <errno.h>

#include "check.h"
#include "sampler.h"

static struct vlm_sampler *make(int64_t n, struct vlm_sampler_params p)
{
	struct vlm_sampler *s = NULL;
	CHECK_INT(vlm_sampler_new(n, &p, &s, NULL), 0);
	return s;
}

/* Draws `n` tokens and returns how often each of the first 4 ids came up. */
static void histogram(struct vlm_sampler *s, const float *logits, int n, int counts[4])
{
	memset(counts, 0, 4 * sizeof counts[0]);
	for (int i = 0; i < n; i++) {
		int32_t t = -1;
		float lp;
		CHECK_INT(vlm_sampler_next(s, logits, NULL, 0, &t, &lp, NULL), 0);
		if (t >= 0 && t < 4)
			counts[t]++;
	}
}

int main(void)
{
	const float ties[4] = { 1.0f, 3.0f, 3.0f, -2.0f };
	struct vlm_sampler *g = make(4, (struct vlm_sampler_params){ .greedy = true });
	int32_t t = -1;
	float lp = 0;
	CHECK_INT(vlm_sampler_next(g, ties, NULL, 0, &t, &lp, NULL), 0);
	CHECK_INT(t, 1); /* the first of two maxima */
	/* log(e^3 / (e^1 + 2e^3 + e^-2)) */
	CHECK_NEAR(lp, 3.0 - log(exp(1.0) + 2 * exp(3.0) + exp(-2.0)), 1e-6);
	const float masked[4] = { -INFINITY, NAN, -INFINITY, -INFINITY };
	vlm_err err = { 0 };
	CHECK_INT(vlm_sampler_next(g, masked, NULL, 0, &t, &lp, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "masked");
	vlm_sampler_free(g);

	/* p = (0.5, 0.3, 0.2, 0) with token 3 masked; top_p 0.6 keeps {0, 1}: 0.625 / 0.375. */
	const float l3[4] = { logf(0.5f), logf(0.3f), logf(0.2f), -INFINITY };
	struct vlm_sampler *s = make(
		4, (struct vlm_sampler_params){
			   .temperature = 1, .top_p = 0.6f, .repetition_penalty = 1, .seed = 42 });
	int c[4];
	histogram(s, l3, 20000, c);
	CHECK_NEAR(c[0] / 20000.0, 0.625, 0.015);
	CHECK_NEAR(c[1] / 20000.0, 0.375, 0.015);
	CHECK_INT(c[2], 0);
	CHECK_INT(c[3], 0);
	CHECK_INT(vlm_sampler_next(s, l3, NULL, 0, &t, &lp, NULL), 0);
	CHECK_NEAR(lp, logf(t == 0 ? 0.5f : 0.3f), 1e-5); /* unprocessed probability */
	vlm_sampler_free(s);

	/* Temperature 0.5 squares the odds: (0.25, 0.09, 0.04) / 0.38. */
	s = make(4, (struct vlm_sampler_params){
			    .temperature = 0.5f, .top_p = 1, .repetition_penalty = 1, .seed = 7 });
	histogram(s, l3, 20000, c);
	CHECK_NEAR(c[0] / 20000.0, 0.25 / 0.38, 0.015);
	CHECK_NEAR(c[1] / 20000.0, 0.09 / 0.38, 0.015);
	CHECK_NEAR(c[2] / 20000.0, 0.04 / 0.38, 0.015);
	vlm_sampler_free(s);

	/* top_k 1 is greedy; the repetition penalty (once per distinct id) flips the choice:
	 * 2.0/2 = 1.0 < 1.9, and a negative logit is multiplied: -1 * 2 = -2 < -1.5. */
	const float pen[4] = { 2.0f, 1.9f, -1.0f, -1.5f };
	s = make(4, (struct vlm_sampler_params){ .temperature = 1,
						 .top_p = 1,
						 .top_k = 1,
						 .repetition_penalty = 2,
						 .seed = 1 });
	const int32_t hist[3] = { 0, 0, 0 };
	CHECK_INT(vlm_sampler_next(s, pen, hist, 3, &t, &lp, NULL), 0);
	CHECK_INT(t, 1);
	const float neg[4] = { -INFINITY, -INFINITY, -1.0f, -1.5f };
	const int32_t hist2[1] = { 2 };
	CHECK_INT(vlm_sampler_next(s, neg, hist2, 1, &t, &lp, NULL), 0);
	CHECK_INT(t, 3);
	vlm_sampler_free(s);

	/* Same seed, same tokens; another seed, another sequence. */
	const float flat[4] = { 0, 0, 0, 0 };
	int32_t a[64], b[64], d[64];
	struct vlm_sampler_params p = {
		.temperature = 1, .top_p = 1, .repetition_penalty = 1, .seed = 123
	};
	struct vlm_sampler *s1 = make(4, p), *s2 = make(4, p);
	p.seed = 124;
	struct vlm_sampler *s3 = make(4, p);
	for (int i = 0; i < 64; i++) {
		vlm_sampler_next(s1, flat, NULL, 0, &a[i], &lp, NULL);
		vlm_sampler_next(s2, flat, NULL, 0, &b[i], &lp, NULL);
		vlm_sampler_next(s3, flat, NULL, 0, &d[i], &lp, NULL);
	}
	CHECK(memcmp(a, b, sizeof a) == 0);
	CHECK(memcmp(a, d, sizeof a) != 0);
	vlm_sampler_free(s1);
	vlm_sampler_free(s2);
	vlm_sampler_free(s3);

	struct vlm_sampler *bad = NULL;
	CHECK_INT(vlm_sampler_new(4,
				  &(struct vlm_sampler_params){
					  .temperature = 0, .top_p = 1, .repetition_penalty = 1 },
				  &bad, NULL),
		  -EINVAL);
	CHECK(bad == NULL);
	return CHECK_DONE();
}
