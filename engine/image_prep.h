/* Image preprocessing with the semantics of transformers' GLM-4V image processor (5.5.4, the PIL
 * backend Glm46VImageProcessorPil that it picks when torchvision is absent): smart_resize picks a
 * size that is a multiple of patch*merge within a pixel budget, a Pillow-exact anti-aliased
 * bicubic resize brings the image there, and the result is normalised and cut into patch rows in
 * merge-window order, ready for the vision tower.
 *
 * Input is 8-bit RGB, rows top to bottom. Callers convert other modes first. Note the one known
 * difference from HF: HF's convert("RGB") drops alpha, while intake's ingest composites alpha onto
 * white, so a transparent image does not give HF's pixels (the parity test feeds RGB to both).
 * Thread safety: every function here is reentrant. */
#ifndef VLM_IMAGE_PREP_H
#define VLM_IMAGE_PREP_H

#include <stdint.h>

#include "vlm.h"

/* The processor's parameters (preprocessor_config.json). */
struct vlm_prep_params {
	int patch_size;          /* 14 */
	int temporal_patch_size; /* 2: a still image becomes this many identical frames */
	int merge_size;          /* 2: patches per side of one merged token */
	int64_t min_pixels; /* size.shortest_edge: a pixel count bounding all frames together */
	int64_t max_pixels; /* size.longest_edge: likewise */
	float mean[3];      /* image_mean, per RGB channel, as float32 like the processor */
	float std[3];       /* image_std */
};

/* Fills the GLM-4.6V values: 14, 2, 2, 12544, 9633792 and the OpenAI CLIP mean and std. */
void vlm_prep_params_default(struct vlm_prep_params *p);

/* One preprocessed image. pixel_values is owned by the struct: free with vlm_prepped_done. */
struct vlm_prepped {
	int64_t grid_thw[3]; /* (1, gh, gw) in patches */
	int64_t n_tokens;    /* merged tokens: gh*gw / merge^2 */
	int resized_h, resized_w;
	int64_t n_patches;   /* rows of pixel_values: gh*gw */
	int64_t patch_dim;   /* columns: 3 * temporal * patch * patch */
	float *pixel_values; /* [n_patches, patch_dim], columns (c, t, py, px) */
};

/* The target size of transformers' smart_resize, in double precision like Python: sides under
 * `factor` are first scaled up (truncating), the aspect ratio must be at most 200, each side is
 * rounded half-to-even to a multiple of `factor`, and if temporal*h*w leaves [min_pixels,
 * max_pixels] both sides are rescaled from the (scaled) input size. `temporal` is the frame
 * count, which is also the temporal factor. Errors: -EINVAL for a non-positive size or factor,
 * or an aspect ratio over 200; -E2BIG for a side over 2^24 pixels. */
int vlm_smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels,
		     int temporal, int *out_h, int *out_w, vlm_err *err);

/* Resizes 8-bit RGB `src` [in_h, in_w, 3] into `dst` [out_h, out_w, 3] exactly as Pillow's
 * Image.resize(BICUBIC) does: separable passes, horizontal first, uint8 between the passes, 22-bit
 * fixed-point weights; a pass is skipped when its axis keeps its size. `dst` must not overlap
 * `src`. Errors: -EINVAL for a non-positive size, -ENOMEM. */
int vlm_image_resize_bicubic(const uint8_t *src, int in_h, int in_w, uint8_t *dst, int out_h,
			     int out_w, vlm_err *err);

/* Preprocesses one RGB image [height, width, 3]. On success `out` holds a new pixel_values the
 * caller frees with vlm_prepped_done; on failure `out` is zeroed. Errors: those of
 * vlm_smart_resize, -EINVAL for bad params (non-positive sizes, a zero std), -ENOMEM. */
int vlm_image_prep(const uint8_t *rgb, int height, int width, const struct vlm_prep_params *p,
		   struct vlm_prepped *out, vlm_err *err);

/* Frees pixel_values and zeroes the struct; accepts NULL and a zeroed struct. */
void vlm_prepped_done(struct vlm_prepped *out);

#endif
