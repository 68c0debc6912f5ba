/* Image preprocessing for the vision tower, bit-compatible with transformers 5.5.4's
 * Glm46VImageProcessorPil: smart_resize, Pillow's anti-aliased bicubic resize, rescale and
 * normalise, and the merge-window patch layout.
 *
 * Owns: the target-size rule, the resampler (coefficient tables per axis, built once per call, no
 * allocation per pixel) and the pixel_values layout. Does not decode files, convert colour modes,
 * apply EXIF orientation or handle video frames.
 *
 * Bit-exactness depends on evaluating the filter in double exactly as Pillow writes it, so this
 * file is compiled with -ffp-contract=off (engine/CMakeLists.txt): a fused multiply-add would
 * change the last bit of a weight, and sometimes a rounded fixed-point weight. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image_prep.h"

/* Keeps every product of sides (times the frame count) far inside int64 and every index inside
 * size_t; ingest never produces sides over 65535 anyway. */
#define PREP_MAX_SIDE (1 << 24)
/* Pillow's 8-bit resampler: 32 bits minus 8 for the pixel and 2 for headroom. */
#define PREP_PRECISION_BITS 22
#define PREP_MAX_ASPECT 200.0

void vlm_prep_params_default(struct vlm_prep_params *p)
{
	*p = (struct vlm_prep_params){
		.patch_size = 14,
		.temporal_patch_size = 2,
		.merge_size = 2,
		.min_pixels = 12544,
		.max_pixels = 9633792,
		/* double literals cast to float, as numpy turns the JSON values into float32 (a float
		 * literal could round differently) */
		.mean = { (float)0.48145466, (float)0.4578275, (float)0.40821073 },
		.std = { (float)0.26862954, (float)0.26130258, (float)0.27577711 },
	};
}

int vlm_smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels,
		     int temporal, int *out_h, int *out_w, vlm_err *err)
{
	if (height <= 0 || width <= 0)
		return vlm_err_set(err, -EINVAL, "image_prep: image '%dx%d': empty image", width,
				   height);
	if (factor <= 0 || temporal <= 0 || min_pixels < 0 || max_pixels <= 0)
		return vlm_err_set(err, -EINVAL,
				   "image_prep: params 'factor %d, frames %d, pixels %lld..%lld': "
				   "out of range",
				   factor, temporal, (long long)min_pixels, (long long)max_pixels);

	/* transformers >= 5 scales a side under `factor` up (truncating) instead of failing. */
	double h = height, w = width;
	if (height < factor || width < factor) {
		double scale = fmax((double)factor / h, (double)factor / w);
		h = trunc(h * scale);
		w = trunc(w * scale);
	}
	double aspect = fmax(h, w) / fmin(h, w);
	if (aspect > PREP_MAX_ASPECT)
		return vlm_err_set(err, -EINVAL,
				   "image_prep: image '%dx%d': aspect ratio %.1f is over 200",
				   width, height, aspect);
	if (h > PREP_MAX_SIDE || w > PREP_MAX_SIDE)
		return vlm_err_set(err, -E2BIG,
				   "image_prep: image '%dx%d': a side is over %d pixels", width,
				   height, PREP_MAX_SIDE);

	/* Python's round() is half-to-even, which is rint() in the default rounding mode. */
	int64_t f = factor, t = temporal;
	int64_t h_bar = (int64_t)rint(h / f) * f;
	int64_t w_bar = (int64_t)rint(w / f) * f;
	/* The budget counts every frame; beta uses the (scaled) input size, not the rounded one. */
	if (t * h_bar * w_bar > max_pixels) {
		double beta = sqrt((double)(t * (int64_t)h * (int64_t)w) / (double)max_pixels);
		h_bar = (int64_t)floor(h / beta / f) * f;
		w_bar = (int64_t)floor(w / beta / f) * f;
		if (h_bar < f)
			h_bar = f;
		if (w_bar < f)
			w_bar = f;
	} else if (t * h_bar * w_bar < min_pixels) {
		double beta = sqrt((double)min_pixels / (double)(t * (int64_t)h * (int64_t)w));
		double hc = ceil(h * beta / f), wc = ceil(w * beta / f);
		if (hc * f > PREP_MAX_SIDE || wc * f > PREP_MAX_SIDE)
			return vlm_err_set(
				err, -E2BIG,
				"image_prep: image '%dx%d': min_pixels %lld needs a side "
				"over %d pixels",
				width, height, (long long)min_pixels, PREP_MAX_SIDE);
		h_bar = (int64_t)hc * f;
		w_bar = (int64_t)wc * f;
	}
	*out_h = (int)h_bar;
	*out_w = (int)w_bar;
	return 0;
}

/* Pillow's bicubic kernel (a = -0.5), written in Pillow's evaluation order. */
static double bicubic(double x)
{
	const double a = -0.5;
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

/* One axis of the resampler: output i reads n[i] inputs from first[i] with the fixed-point
 * weights weight[i * ksize ...]. */
struct axis {
	int ksize;
	int *first;
	int *n;
	int32_t *weight;
};

static size_t axis_ksize(int in, int out)
{
	double scale = (double)in / out;
	double support = 2.0 * fmax(scale, 1.0);
	return (size_t)ceil(support) * 2 + 1;
}

/* Lays the tables out in `mem` (at least axis_bytes(in, out)) and fills them. Weights are
 * normalised to sum 1 in double and rounded half away from zero to 22 fractional bits. */
static void axis_build(struct axis *a, int in, int out, void *mem)
{
	double scale = (double)in / out;
	double filterscale = fmax(scale, 1.0);
	double support = 2.0 * filterscale;
	double ss = 1.0 / filterscale;
	a->ksize = (int)axis_ksize(in, out);
	a->weight = mem;
	a->first = (int *)(a->weight + (size_t)out * a->ksize);
	a->n = a->first + out;
	for (int i = 0; i < out; i++) {
		double center = (i + 0.5) * scale;
		int lo = (int)(center - support + 0.5);
		int hi = (int)(center + support + 0.5);
		if (lo < 0)
			lo = 0;
		if (hi > in)
			hi = in;
		double sum = 0.0;
		for (int j = lo; j < hi; j++)
			sum += bicubic((j - center + 0.5) * ss);
		int32_t *k = a->weight + (size_t)i * a->ksize;
		for (int j = lo; j < hi; j++) {
			double v = bicubic((j - center + 0.5) * ss);
			if (sum != 0.0)
				v /= sum;
			v *= 1 << PREP_PRECISION_BITS;
			k[j - lo] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
		}
		a->first[i] = lo;
		a->n[i] = hi - lo;
	}
}

static size_t axis_bytes(int in, int out)
{
	return (size_t)out * (axis_ksize(in, out) * sizeof(int32_t) + 2 * sizeof(int));
}

/* Rounds a 22-bit fixed-point sum (which started at one half) to a byte, clamping. */
static uint8_t clip8(int32_t acc)
{
	if (acc < 0)
		return 0;
	acc >>= PREP_PRECISION_BITS;
	return acc > 255 ? 255 : (uint8_t)acc;
}

/* [rows, in_w, 3] -> [rows, out_w, 3] */
static void pass_horizontal(const uint8_t *src, int rows, int in_w, uint8_t *dst, int out_w,
			    const struct axis *a)
{
	for (int y = 0; y < rows; y++) {
		const uint8_t *row = src + (size_t)y * in_w * 3;
		uint8_t *o = dst + (size_t)y * out_w * 3;
		for (int x = 0; x < out_w; x++) {
			const int32_t *k = a->weight + (size_t)x * a->ksize;
			const uint8_t *p = row + (size_t)a->first[x] * 3;
			for (int c = 0; c < 3; c++) {
				int32_t acc = 1 << (PREP_PRECISION_BITS - 1);
				for (int j = 0; j < a->n[x]; j++)
					acc += p[j * 3 + c] * k[j];
				o[x * 3 + c] = clip8(acc);
			}
		}
	}
}

/* [in_h, w, 3] -> [out_h, w, 3] */
static void pass_vertical(const uint8_t *src, int w, uint8_t *dst, int out_h, const struct axis *a)
{
	size_t stride = (size_t)w * 3;
	for (int y = 0; y < out_h; y++) {
		const int32_t *k = a->weight + (size_t)y * a->ksize;
		const uint8_t *p = src + (size_t)a->first[y] * stride;
		uint8_t *o = dst + (size_t)y * stride;
		for (size_t i = 0; i < stride; i++) {
			int32_t acc = 1 << (PREP_PRECISION_BITS - 1);
			for (int j = 0; j < a->n[y]; j++)
				acc += p[(size_t)j * stride + i] * k[j];
			o[i] = clip8(acc);
		}
	}
}

int vlm_image_resize_bicubic(const uint8_t *src, int in_h, int in_w, uint8_t *dst, int out_h,
			     int out_w, vlm_err *err)
{
	if (in_h <= 0 || in_w <= 0 || out_h <= 0 || out_w <= 0 || in_h > PREP_MAX_SIDE ||
	    in_w > PREP_MAX_SIDE || out_h > PREP_MAX_SIDE || out_w > PREP_MAX_SIDE)
		return vlm_err_set(err, -EINVAL,
				   "image_prep: resize '%dx%d -> %dx%d': size out of range", in_w,
				   in_h, out_w, out_h);
	bool horizontal = in_w != out_w, vertical = in_h != out_h;
	if (!horizontal && !vertical) {
		memcpy(dst, src, (size_t)in_h * in_w * 3);
		return 0;
	}

	/* One block: the two axis tables, then the uint8 image between the passes. */
	size_t h_bytes = horizontal ? axis_bytes(in_w, out_w) : 0;
	size_t v_bytes = vertical ? axis_bytes(in_h, out_h) : 0;
	size_t mid_bytes = horizontal && vertical ? (size_t)in_h * out_w * 3 : 0;
	uint8_t *mem = malloc(h_bytes + v_bytes + mid_bytes);
	if (!mem)
		return vlm_err_set(err, -ENOMEM,
				   "image_prep: resize '%dx%d -> %dx%d': out of memory", in_w, in_h,
				   out_w, out_h);
	struct axis ax, ay;
	const uint8_t *mid = src;
	if (horizontal) {
		axis_build(&ax, in_w, out_w, mem);
		uint8_t *hout = vertical ? mem + h_bytes + v_bytes : dst;
		pass_horizontal(src, in_h, in_w, hout, out_w, &ax);
		mid = hout;
	}
	if (vertical) {
		axis_build(&ay, in_h, out_h, mem + h_bytes);
		pass_vertical(mid, out_w, dst, out_h, &ay);
	}
	free(mem);
	return 0;
}

static int params_check(const struct vlm_prep_params *p, vlm_err *err)
{
	if (p->patch_size <= 0 || p->temporal_patch_size <= 0 || p->merge_size <= 0)
		return vlm_err_set(
			err, -EINVAL,
			"image_prep: params 'patch %d, temporal %d, merge %d': sizes must "
			"be positive",
			p->patch_size, p->temporal_patch_size, p->merge_size);
	for (int c = 0; c < 3; c++)
		if (!(p->std[c] != 0.0f) || !isfinite(p->std[c]) || !isfinite(p->mean[c]))
			return vlm_err_set(err, -EINVAL,
					   "image_prep: params 'channel %d': mean %g, std %g: std "
					   "must be finite and non-zero",
					   c, (double)p->mean[c], (double)p->std[c]);
	return 0;
}

/* Writes the rows of pixel_values: patches in merge-window order (2x2 windows row-major, and
 * row-major inside a window), each row (c, t, py, px) with the frames identical. The processor
 * rescales in double and casts to float32 (x = (float)(v * (1/255))), then normalises in float32
 * ((x - mean) / std); lut holds that per channel and byte value. */
static void patchify(const uint8_t *img, int img_w, const struct vlm_prep_params *p,
		     const float lut[3][256], int64_t gh, int64_t gw, float *out)
{
	int ps = p->patch_size, m = p->merge_size, nt = p->temporal_patch_size;
	size_t plane = (size_t)ps * ps;
	size_t dim = 3 * (size_t)nt * plane;
	for (int64_t bh = 0; bh < gh / m; bh++)
		for (int64_t bw = 0; bw < gw / m; bw++)
			for (int ih = 0; ih < m; ih++)
				for (int iw = 0; iw < m; iw++) {
					int64_t y0 = (bh * m + ih) * ps, x0 = (bw * m + iw) * ps;
					for (int c = 0; c < 3; c++) {
						float *frame0 = out + (size_t)c * nt * plane;
						for (int py = 0; py < ps; py++) {
							const uint8_t *src =
								img +
								((size_t)(y0 + py) * img_w + x0) *
									3 +
								c;
							for (int px = 0; px < ps; px++)
								frame0[py * ps + px] =
									lut[c][src[px * 3]];
						}
						for (int t = 1; t < nt; t++)
							memcpy(frame0 + t * plane, frame0,
							       plane * sizeof *out);
					}
					out += dim;
				}
}

int vlm_image_prep(const uint8_t *rgb, int height, int width, const struct vlm_prep_params *p,
		   struct vlm_prepped *out, vlm_err *err)
{
	*out = (struct vlm_prepped){ 0 };
	int rc = params_check(p, err);
	if (rc < 0)
		return rc;
	int rh, rw;
	rc = vlm_smart_resize(height, width, p->patch_size * p->merge_size, p->min_pixels,
			      p->max_pixels, p->temporal_patch_size, &rh, &rw, err);
	if (rc < 0)
		return rc;

	int64_t gh = rh / p->patch_size, gw = rw / p->patch_size;
	int64_t dim = 3 * (int64_t)p->temporal_patch_size * p->patch_size * p->patch_size;
	size_t pv_bytes;
	if (__builtin_mul_overflow((size_t)(gh * gw), (size_t)dim * sizeof(float), &pv_bytes))
		return vlm_err_set(err, -E2BIG, "image_prep: image '%dx%d': too many patches",
				   width, height);
	bool resize = rh != height || rw != width;
	float *pv = malloc(pv_bytes);
	uint8_t *resized = resize ? malloc((size_t)rh * rw * 3) : NULL;
	if (!pv || (resize && !resized))
		rc = vlm_err_set(err, -ENOMEM, "image_prep: image '%dx%d': out of memory", width,
				 height);
	else if (resize)
		rc = vlm_image_resize_bicubic(rgb, height, width, resized, rh, rw, err);
	if (rc < 0) {
		free(resized);
		free(pv);
		return rc;
	}

	float lut[3][256];
	for (int c = 0; c < 3; c++)
		for (int v = 0; v < 256; v++) {
			float x = (float)((double)v * (1.0 / 255.0));
			lut[c][v] = (x - p->mean[c]) / p->std[c];
		}
	patchify(resized ? resized : rgb, rw, p, lut, gh, gw, pv);
	free(resized);

	out->grid_thw[0] = 1;
	out->grid_thw[1] = gh;
	out->grid_thw[2] = gw;
	out->n_tokens = gh * gw / ((int64_t)p->merge_size * p->merge_size);
	out->resized_h = rh;
	out->resized_w = rw;
	out->n_patches = gh * gw;
	out->patch_dim = dim;
	out->pixel_values = pv;
	return 0;
}

void vlm_prepped_done(struct vlm_prepped *out)
{
	if (!out)
		return;
	free(out->pixel_values);
	*out = (struct vlm_prepped){ 0 };
}
