/* get_rope_index: the worked example of the model spec (glm4v.md §6), written out by hand, and
 * the errors for prompts that do not match their images. */
#include <errno.h>

#include "check.h"
#include "positions.h"

enum { IMG = 50, VID = 51 };

int main(void)
{
	/* 3 text tokens, one image of grid (1, 4, 6) = 6 merged tokens, 2 text tokens. */
	const int32_t ids[11] = { 1, 2, 3, IMG, IMG, IMG, IMG, IMG, IMG, 4, 5 };
	const int64_t grid[1][3] = { { 1, 4, 6 } };
	const int32_t want[3][11] = {
		{ 0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7 },
		{ 0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7 },
		{ 0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7 },
	};
	int32_t pos[3 * 11];
	int64_t delta = 0;
	CHECK_INT(vlm_rope_index(ids, 11, IMG, VID, grid, 1, 2, pos, &delta, NULL), 0);
	CHECK(memcmp(pos, want, sizeof want) == 0);
	CHECK_INT(delta, -3);

	/* Pure text: positions are indices, delta 0. */
	CHECK_INT(vlm_rope_index(ids, 3, IMG, VID, NULL, 0, 2, pos, &delta, NULL), 0);
	CHECK(pos[2] == 2 && pos[3 + 2] == 2 && pos[6 + 2] == 2);
	CHECK_INT(delta, 0);

	vlm_err err = { 0 };
	CHECK_INT(vlm_rope_index(ids, 8, IMG, VID, grid, 1, 2, pos, &delta, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "needs 6 tokens");
	CHECK_INT(vlm_rope_index(ids, 11, IMG, VID, NULL, 0, 2, pos, &delta, &err), -EINVAL);
	CHECK_INT(vlm_rope_index(ids, 3, IMG, VID, grid, 1, 2, pos, &delta, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "1 image(s) given, the prompt has 0");
	const int32_t vid[2] = { 1, VID };
	CHECK_INT(vlm_rope_index(vid, 2, IMG, VID, NULL, 0, 2, pos, &delta, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "video");
	return CHECK_DONE();
}
