/* Parity of engine/image_prep.c with transformers 5.5.4's GLM-4.6V image processor
 * (tests/fixtures/preprocess/golden.safetensors, written by tools/gen_preprocess_golden.py), plus
 * smart_resize sizes measured from the real processor (spec section 3), the patch order of the
 * spec's worked example, and input errors. */
#include <errno.h>

#include "check.h"
#include "image_prep.h"
#include "safetensors.h"

#define N_GOLDEN_CASES 12

static const struct vlm_tensor *need(const struct vlm_st_file *f, const char *name_case,
				     const char *what, enum vlm_dtype dtype, int n_dims)
{
	char name[256];
	snprintf(name, sizeof name, "%s/%s", name_case, what);
	const struct vlm_tensor *t = vlm_st_find(f, name);
	CHECK(t != NULL);
	if (!t)
		return NULL;
	CHECK_INT(t->dtype, dtype);
	CHECK_INT(t->n_dims, n_dims);
	return t->dtype == dtype && t->n_dims == n_dims ? t : NULL;
}

/* Worst differences over all cases, printed at the end. */
static int worst_resized;
static double worst_pixel_steps, worst_pixel_abs;

static void golden_case(const struct vlm_st_file *f, const char *name)
{
	const struct vlm_tensor *in = need(f, name, "input", VLM_DTYPE_U8, 3);
	const struct vlm_tensor *bounds = need(f, name, "bounds", VLM_DTYPE_I64, 1);
	const struct vlm_tensor *rs = need(f, name, "resized", VLM_DTYPE_U8, 3);
	const struct vlm_tensor *pv = need(f, name, "pixel_values", VLM_DTYPE_F32, 2);
	const struct vlm_tensor *grid = need(f, name, "grid_thw", VLM_DTYPE_I64, 2);
	if (!in || !bounds || !rs || !pv || !grid)
		return;
	int h = (int)in->shape[0], w = (int)in->shape[1];
	int rh = (int)rs->shape[0], rw = (int)rs->shape[1];
	const int64_t *b = bounds->data, *g = grid->data;

	struct vlm_prep_params p;
	vlm_prep_params_default(&p);
	p.min_pixels = b[0];
	p.max_pixels = b[1];

	int oh = 0, ow = 0;
	CHECK_INT(vlm_smart_resize(h, w, 28, p.min_pixels, p.max_pixels, 2, &oh, &ow, NULL), 0);
	CHECK_INT(oh, rh);
	CHECK_INT(ow, rw);

	uint8_t *mine = malloc((size_t)rh * rw * 3);
	CHECK(mine != NULL);
	if (mine && vlm_image_resize_bicubic(in->data, h, w, mine, rh, rw, NULL) == 0) {
		const uint8_t *want = rs->data;
		int max_diff = 0;
		for (size_t i = 0; i < (size_t)rh * rw * 3; i++) {
			int d = abs(mine[i] - want[i]);
			max_diff = d > max_diff ? d : max_diff;
		}
		CHECK(max_diff <= 1);
		if (max_diff > 1)
			fprintf(stderr, "%s: resized differs by up to %d\n", name, max_diff);
		worst_resized = max_diff > worst_resized ? max_diff : worst_resized;
	} else {
		CHECK(!"resize failed");
	}
	free(mine);

	struct vlm_prepped out;
	vlm_err err = { 0 };
	int rc = vlm_image_prep(in->data, h, w, &p, &out, &err);
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		return;
	}
	CHECK_INT(out.grid_thw[0], g[0]);
	CHECK_INT(out.grid_thw[1], g[1]);
	CHECK_INT(out.grid_thw[2], g[2]);
	CHECK_INT(out.n_tokens, g[0] * g[1] * g[2] / 4);
	CHECK_INT(out.resized_h, rh);
	CHECK_INT(out.resized_w, rw);
	CHECK_INT(out.n_patches, pv->shape[0]);
	CHECK_INT(out.patch_dim, pv->shape[1]);
	if (out.n_patches == pv->shape[0] && out.patch_dim == pv->shape[1]) {
		const float *want = pv->data;
		int64_t per_channel = out.patch_dim / 3;
		double worst = 0.0;
		for (int64_t r = 0; r < out.n_patches; r++)
			for (int64_t col = 0; col < out.patch_dim; col++) {
				size_t i = (size_t)(r * out.patch_dim + col);
				int c = (int)(col / per_channel);
				double step = 1.0 / (255.0 * p.std[c]);
				double d = fabs((double)out.pixel_values[i] - want[i]);
				CHECK(d <= step + 1e-6);
				if (d / step > worst)
					worst = d / step;
				if (d > worst_pixel_abs)
					worst_pixel_abs = d;
			}
		worst_pixel_steps = worst > worst_pixel_steps ? worst : worst_pixel_steps;
	}
	vlm_prepped_done(&out);
}

static void golden(void)
{
	const char *src = getenv("INTAKE_SOURCE_DIR");
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/fixtures/preprocess/golden.safetensors",
		 src ? src : "..");
	struct vlm_st_file *f = NULL;
	vlm_err err = { 0 };
	int rc = vlm_st_open(path, &f, &err);
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	int n_cases = 0;
	for (size_t i = 0; i < vlm_st_count(f); i++) {
		const char *name = vlm_st_tensor(f, i)->name;
		size_t len = strlen(name);
		if (len > 6 && strcmp(name + len - 6, "/input") == 0) {
			char case_name[256];
			snprintf(case_name, sizeof case_name, "%.*s", (int)(len - 6), name);
			golden_case(f, case_name);
			n_cases++;
		}
	}
	CHECK_INT(n_cases, N_GOLDEN_CASES);
	printf("golden: %d cases, resized max diff %d, pixel_values max diff %.3g (%.3g uint8 "
	       "steps)\n",
	       n_cases, worst_resized, worst_pixel_abs, worst_pixel_steps);
	vlm_st_close(f);
}

/* Sizes the real processor produced with the GLM-4.6V defaults (spec section 3), given there as
 * width x height -> grid (t, h, w) or a resized size. */
static void smart_resize_measured(void)
{
	static const struct {
		int w, h, out_h, out_w;
	} cases[] = {
		{ 6000, 4000, 128 * 14, 192 * 14 },
		{ 4000, 3000, 134 * 14, 180 * 14 },
		{ 3000, 3000, 156 * 14, 156 * 14 },
		{ 5000, 4000, 140 * 14, 174 * 14 },
		{ 1700, 2200, 158 * 14, 122 * 14 },
		{ 100, 100, 8 * 14, 8 * 14 },
		{ 640, 480, 476, 644 },
		{ 1920, 1080, 1092, 1932 },
		{ 336, 336, 336, 336 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int oh = 0, ow = 0;
		CHECK_INT(vlm_smart_resize(cases[i].h, cases[i].w, 28, 12544, 9633792, 2, &oh, &ow,
					   NULL),
			  0);
		CHECK_INT(oh, cases[i].out_h);
		CHECK_INT(ow, cases[i].out_w);
	}
	/* 6000x4000 fills the budget: 6144 merged tokens. */
	int oh, ow;
	vlm_smart_resize(4000, 6000, 28, 12544, 9633792, 2, &oh, &ow, NULL);
	CHECK_INT((oh / 28) * (ow / 28), 6144);
}

static void smart_resize_errors(void)
{
	int oh = -1, ow = -1;
	vlm_err err = { 0 };
	/* 5628 / 28 = 201 */
	CHECK_INT(vlm_smart_resize(28, 5628, 28, 12544, 9633792, 2, &oh, &ow, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "aspect ratio");
	CHECK_INT(oh, -1);
	/* exactly 200 is allowed */
	CHECK_INT(vlm_smart_resize(28, 5600, 28, 12544, 9633792, 2, &oh, &ow, NULL), 0);
	/* the small-image scale happens first: 1x201 becomes 28x5628 */
	CHECK_INT(vlm_smart_resize(1, 201, 28, 12544, 9633792, 2, &oh, &ow, NULL), -EINVAL);
	CHECK_INT(vlm_smart_resize(5628, 28, 28, 12544, 9633792, 2, &oh, &ow, NULL), -EINVAL);
	CHECK_INT(vlm_smart_resize(0, 10, 28, 12544, 9633792, 2, &oh, &ow, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "image_prep: image '10x0'");
	CHECK_INT(vlm_smart_resize(10, -1, 28, 12544, 9633792, 2, &oh, &ow, NULL), -EINVAL);
	CHECK_INT(vlm_smart_resize(10, 10, 0, 12544, 9633792, 2, &oh, &ow, NULL), -EINVAL);

	struct vlm_prep_params p;
	vlm_prep_params_default(&p);
	struct vlm_prepped out = { .n_tokens = 99 };
	uint8_t px[3] = { 0 };
	CHECK_INT(vlm_image_prep(px, 0, 1, &p, &out, &err), -EINVAL);
	CHECK(out.pixel_values == NULL);
	CHECK_INT(out.n_tokens, 0);
	p.std[1] = 0.0f;
	CHECK_INT(vlm_image_prep(px, 1, 1, &p, &out, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "std");
	vlm_prepped_done(&out);
	vlm_prepped_done(NULL);
}

/* The worked example of spec section 3.1: gh = 4, gw = 6. Each pixel encodes its patch (R = row,
 * G = column) and its place in the patch (B = py * 14 + px), with mean 0 and std 1 so a value
 * reads back as byte / 255. */
static void patch_order(void)
{
	enum { H = 56, W = 84 };
	static const int order[][2] = {
		{ 0, 0 }, { 0, 1 }, { 1, 0 }, { 1, 1 }, { 0, 2 }, { 0, 3 },
		{ 1, 2 }, { 1, 3 }, { 0, 4 }, { 0, 5 }, { 1, 4 }, { 1, 5 },
		{ 2, 0 }, { 2, 1 }, { 3, 0 }, { 3, 1 }, { 2, 2 },
	};
	static uint8_t img[H * W * 3];
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			uint8_t *q = img + (y * W + x) * 3;
			q[0] = (uint8_t)(y / 14);
			q[1] = (uint8_t)(x / 14);
			q[2] = (uint8_t)((y % 14) * 14 + x % 14);
		}
	struct vlm_prep_params p;
	vlm_prep_params_default(&p);
	p.min_pixels = 0;
	for (int c = 0; c < 3; c++) {
		p.mean[c] = 0.0f;
		p.std[c] = 1.0f;
	}
	struct vlm_prepped out;
	CHECK_INT(vlm_image_prep(img, H, W, &p, &out, NULL), 0);
	CHECK_INT(out.grid_thw[1], 4);
	CHECK_INT(out.grid_thw[2], 6);
	CHECK_INT(out.n_tokens, 6);
	CHECK_INT(out.n_patches, 24);
	CHECK_INT(out.patch_dim, 1176);
	if (out.n_patches != 24 || out.patch_dim != 1176) {
		vlm_prepped_done(&out);
		return;
	}
	for (size_t r = 0; r < sizeof order / sizeof order[0]; r++) {
		const float *row = out.pixel_values + r * 1176;
		for (int t = 0; t < 2; t++)
			for (int k = 0; k < 196; k++) {
				/* col = ((c * 2 + t) * 14 + py) * 14 + px, k = py * 14 + px */
				CHECK_NEAR(row[(0 * 2 + t) * 196 + k] * 255.0f, order[r][0], 1e-4);
				CHECK_NEAR(row[(1 * 2 + t) * 196 + k] * 255.0f, order[r][1], 1e-4);
				CHECK_NEAR(row[(2 * 2 + t) * 196 + k] * 255.0f, k, 1e-3);
			}
	}
	vlm_prepped_done(&out);
}

/* Weights of every output pixel sum to one, so a flat image stays flat in both directions, and
 * an unchanged size is a copy. */
static void resize_flat(void)
{
	enum { H = 37, W = 53 };
	static uint8_t src[H * W * 3], dst[100 * 20 * 3];
	memset(src, 200, sizeof src);
	CHECK_INT(vlm_image_resize_bicubic(src, H, W, dst, 100, 20, NULL), 0);
	int bad = 0;
	for (size_t i = 0; i < sizeof dst; i++)
		bad += dst[i] != 200;
	CHECK_INT(bad, 0);
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (uint8_t)(i * 7);
	static uint8_t copy[H * W * 3];
	CHECK_INT(vlm_image_resize_bicubic(src, H, W, copy, H, W, NULL), 0);
	CHECK(memcmp(src, copy, sizeof src) == 0);
	vlm_err err = { 0 };
	CHECK_INT(vlm_image_resize_bicubic(src, H, W, copy, 0, W, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "image_prep: resize");
}

int main(void)
{
	golden();
	smart_resize_measured();
	smart_resize_errors();
	patch_order();
	resize_flat();
	return CHECK_DONE();
}
