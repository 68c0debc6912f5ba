/* get_rope_index for still images: see positions.h. Groups are maximal runs of text tokens or of
 * one image's tokens; `next` is one past the largest position assigned so far. */
#include <errno.h>

#include "positions.h"

int vlm_rope_index(const int32_t *ids, int64_t L, int32_t image_token_id, int32_t video_token_id,
		   const int64_t (*grids)[3], int n_images, int merge_size, int32_t *pos,
		   int64_t *rope_delta, vlm_err *err)
{
	int32_t *pt = pos, *ph = pos + L, *pw = pos + 2 * L;
	int64_t next = 0, i = 0;
	int image = 0;
	while (i < L) {
		if (ids[i] == video_token_id)
			return vlm_err_set(err, -EINVAL,
					   "positions: token %lld: video input is not "
					   "supported",
					   (long long)i);
		if (ids[i] != image_token_id) {
			pt[i] = ph[i] = pw[i] = (int32_t)next++;
			i++;
			continue;
		}
		if (image >= n_images)
			return vlm_err_set(err, -EINVAL,
					   "positions: more image groups in the prompt "
					   "than the %d image(s) given",
					   n_images);
		int64_t t = grids[image][0], mh = grids[image][1] / merge_size,
			mw = grids[image][2] / merge_size, n = t * mh * mw;
		if (i + n > L)
			return vlm_err_set(err, -EINVAL,
					   "positions: image %d needs %lld tokens, the "
					   "prompt ends after %lld",
					   image, (long long)n, (long long)(L - i));
		for (int64_t k = 0; k < n; k++) {
			if (ids[i + k] != image_token_id)
				return vlm_err_set(err, -EINVAL,
						   "positions: image %d has %lld tokens in "
						   "the prompt, its grid needs %lld",
						   image, (long long)k, (long long)n);
			pt[i + k] = (int32_t)(next + k / (mh * mw));
			ph[i + k] = (int32_t)(next + (k / mw) % mh);
			pw[i + k] = (int32_t)(next + k % mw);
		}
		int64_t span = t > mh ? t : mh;
		span = span > mw ? span : mw;
		next += span;
		i += n;
		image++;
	}
	if (image != n_images)
		return vlm_err_set(err, -EINVAL, "positions: %d image(s) given, the prompt has %d",
				   n_images, image);
	*rope_delta = next - L;
	return 0;
}
