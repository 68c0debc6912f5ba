/* The schema's page policy (docs/extract.md): which pages go into which prompt, the size each
 * page is given to the model at, and how the answers of several prompts merge into one.
 *
 * Sizing: intake downscales a page itself only when it is over its pixel budget (the schema's
 * pages.pixel_budget, lowered further when the model's context cannot hold that many image
 * tokens), to the largest size under the budget whose sides are multiples of the engine's
 * patch x merge factor (28 for GLM-4V). The engine's smart_resize then keeps that size as it is,
 * so each page is resampled once, by an area-averaging filter that suits large reductions (a
 * 300 dpi A4 scan to 2 megapixels is about 2x per side; to a small context, 10x or more). Pages
 * under the budget are left to smart_resize, which only rounds their sides to the factor.
 * The engine's own upper limit (the processor's max_pixels, about 4.8 megapixels per image for
 * GLM-4.6V) is above every shipped schema's budget, and it knows nothing of the context, so
 * relying on smart_resize alone would neither honour the schema nor fit a small context.
 *
 * Merging (several prompts for one document), walking the schema: a scalar takes the first
 * non-null value in page order; an object is null when every prompt answered null, otherwise its
 * members merge the same way over the prompts that gave an object; an array of line items is the
 * concatenation of every prompt's elements in page order. Each value keeps its evidence (token
 * log-probabilities and page), re-indexed for the merged arrays. Keys the schema does not have
 * are dropped. */
#ifndef EX_TILE_H
#define EX_TILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "validate.h"

/* Prompts for a document of n_pages pages with at most per_prompt pages each (per_prompt < 1
 * counts as 1); prompt i covers pages [i * per_prompt, min(n_pages, (i + 1) * per_prompt)). */
size_t ex_tile_n_prompts(size_t n_pages, int per_prompt);

/* The size a width x height page is given to the engine at, for at most `budget` pixels with
 * sides that are multiples of `factor`: unchanged (*out = input) when even its sides rounded up
 * to the factor fit the budget; else the largest multiples of the factor under the budget that
 * keep the aspect ratio (never under factor x factor). Returns true when the page must be
 * downscaled (the output differs from the input). */
bool ex_tile_fit(int width, int height, uint64_t budget, int factor, int *out_w, int *out_h);

/* Image tokens the engine makes of a page given at width x height (sides rounded up to the
 * factor, one token per factor x factor block): an upper bound, used to fit a context. */
int64_t ex_tile_tokens(int width, int height, int factor);

/* Downscales 8-bit RGB src [h, w, 3] into dst [dh, dw, 3] (dw <= w, dh <= h) by area averaging:
 * each output pixel is the mean of the source area it covers, partial pixels weighted by the
 * fraction covered. Errors: -EINVAL for sizes that do not shrink, -ENOMEM. */
int ex_tile_downscale(const uint8_t *src, int w, int h, uint8_t *dst, int dw, int dh, vlm_err *err);

/* One prompt's answer: its JSON (borrowed) and the evidence for its values, paths relative to
 * that answer (borrowed; the log-probabilities must outlive the merged result). */
struct ex_tile_part {
	const json_t *answer;
	const struct ex_field_evidence *evidence;
	size_t n_evidence;
};

/* The merged answer (owned) and its evidence (paths owned, log-probabilities borrowed from the
 * parts). */
struct ex_tile_merged {
	json_t *answer;
	struct ex_field_evidence *evidence;
	size_t n_evidence;
};

/* Merges parts[0 .. n-1] (in page order) by the rule above. Every schema key is present in the
 * result (null when no part had a value). A part whose answer is not an object contributes
 * nothing. Returns 0 or -ENOMEM; free with ex_tile_merged_done. */
int ex_tile_merge(const struct ex_schema *schema, const struct ex_tile_part *parts, size_t n,
		  struct ex_tile_merged *out, vlm_err *err);
void ex_tile_merged_done(struct ex_tile_merged *m); /* accepts a zeroed struct */

#endif
