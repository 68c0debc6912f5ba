/* Multimodal rotary positions (transformers' get_rope_index for Glm4v): each prompt token gets
 * three position streams (temporal, height, width); text advances all three together, an image's
 * tokens take their merged-grid coordinates offset from where the image starts, and text after an
 * image resumes after the image's largest coordinate. rope_delta carries that shift into decoding:
 * the token at cache index i (i >= prompt length) has position i + rope_delta on every stream.
 * Video is not implemented: a video token in the prompt is refused. Reentrant. */
#ifndef VLM_POSITIONS_H
#define VLM_POSITIONS_H

#include <stdint.h>

#include "vlm.h"

/* pos: int32 [3, L] out. grids: n_images rows of (t, gh, gw) in patches, in prompt order.
 * Errors: -EINVAL when the image tokens do not match the grids (count per image, total). */
int vlm_rope_index(const int32_t *ids, int64_t L, int32_t image_token_id, int32_t video_token_id,
		   const int64_t (*grids)[3], int n_images, int merge_size, int32_t *pos,
		   int64_t *rope_delta, vlm_err *err);

#endif
