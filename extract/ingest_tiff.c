/* TIFF decoder: every directory of a classic or BigTIFF file becomes one page of 8-bit RGB.
 *
 * libtiff reads the in-memory file through client callbacks; its messages go to per-handle
 * handlers (nothing is printed) and the last error becomes the detail of our one-line error.
 * This file owns the mapping from TIFF layouts (photometric, bit depth, extra samples, strips or
 * tiles, contiguous or separate planes) to RGB. Pixels are read one band at a time (a strip, or a
 * row of tiles), so memory beyond the page raster stays at one band. The document, limits,
 * orientation and the final colour conversions belong to ingest.c. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "ingest.h"

/* The most samples per pixel we accept (colour plus extra samples); bounds every buffer below to
 * 16 bytes per pixel at 16 bits. */
#define TIFF_MAX_SAMPLES 8

/* The in-memory file, our read position in it, and what libtiff last said about it. */
struct tiff_input {
	const struct ex_source *src;
	uint64_t pos;
	char msg[256]; /* last error (or loop warning) libtiff reported, "" when none */
	bool loop;     /* libtiff reported an IFD loop */
};

static tmsize_t input_read(thandle_t h, void *buf, tmsize_t n)
{
	struct tiff_input *in = h;
	size_t size = in->src->size;
	if (n <= 0 || in->pos >= size)
		return 0;
	size_t k = (size_t)n < size - in->pos ? (size_t)n : size - (size_t)in->pos;
	memcpy(buf, in->src->data + in->pos, k);
	in->pos += k;
	return (tmsize_t)k;
}

/* libtiff wants a write callback even for read-only handles; the file is never written. */
static tmsize_t input_write(thandle_t h, void *buf, tmsize_t n)
{
	return -1;
}

static toff_t input_seek(thandle_t h, toff_t off, int whence)
{
	struct tiff_input *in = h;
	if (whence == SEEK_SET) {
		in->pos = off;
		return off;
	}
	if (whence != SEEK_CUR && whence != SEEK_END)
		return (toff_t)-1;
	/* Relative offsets are signed values passed as unsigned ones. */
	uint64_t base = whence == SEEK_CUR ? in->pos : in->src->size;
	int64_t delta = (int64_t)off;
	if (delta < 0 ? (uint64_t) - (delta + 1) >= base : off > UINT64_MAX - base)
		return (toff_t)-1;
	in->pos = base + off;
	return in->pos;
}

/* The bytes belong to the caller (ingest.c frees them); closing the handle releases nothing. */
static int input_close(thandle_t h)
{
	return 0;
}

static toff_t input_size(thandle_t h)
{
	const struct tiff_input *in = h;
	return in->src->size;
}

/* Formats one libtiff message; keeps errors, and loop reports however libtiff made them (4.5 as
 * shipped here warns "might be an IFD loop. Treating directory N as last directory"; other
 * versions error "might cause an IFD loop"). libtiff gives no error codes, only text, so the
 * wording "IFD loop" is what we can key on; the loop tests in test_ingest_tiff.c guard it. */
static void input_note(struct tiff_input *in, const char *module, const char *fmt, va_list ap,
		       bool is_error) __attribute__((format(printf, 3, 0)));
static void input_note(struct tiff_input *in, const char *module, const char *fmt, va_list ap,
		       bool is_error)
{
	char text[sizeof in->msg];
	int k = snprintf(text, sizeof text, "%s: ", module ? module : "libtiff");
	if (k < 0 || (size_t)k >= sizeof text)
		k = 0;
	vsnprintf(text + k, sizeof text - (size_t)k, fmt, ap);
	bool loop = strstr(text, "IFD loop") != NULL;
	in->loop |= loop;
	if (is_error || loop)
		memcpy(in->msg, text, sizeof text);
}

static int input_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static int input_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	input_note(user, module, fmt, ap, true);
	return 1; /* handled: libtiff must not call its global handlers (which print) */
}

static int input_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static int input_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	input_note(user, module, fmt, ap, false);
	return 1;
}

static void input_reset(struct tiff_input *in)
{
	in->msg[0] = '\0';
	in->loop = false;
}

static const char *input_detail(const struct tiff_input *in)
{
	return in->msg[0] ? in->msg : "libtiff gave no detail";
}

/* What one directory holds and how its samples become RGB. */
struct tiff_layout {
	uint32_t width, height;
	uint16_t bps, spp, planar, photometric;
	int n_color;      /* colour samples: 1 gray or palette index, 3 RGB, 4 CMYK */
	int alpha;        /* sample index of the alpha channel, -1 when none */
	bool assoc_alpha; /* colour samples are premultiplied by alpha */
	bool min_is_white;
	bool has_palette;
	uint8_t palette[256 * 3];
};

static unsigned sample_at(const uint8_t *row, size_t i, unsigned bps)
{
	if (bps == 8)
		return row[i];
	if (bps == 16) {
		uint16_t v; /* libtiff has already swapped 16-bit samples to host order */
		memcpy(&v, row + 2 * i, 2);
		return v;
	}
	/* 1, 2 or 4 bits, packed from the most significant bit; a sample never straddles a byte. */
	size_t bit = i * bps;
	return (row[bit / 8] >> (8 - bps - bit % 8)) & ((1u << bps) - 1u);
}

/* Scales a sample to 8 bits, rounding to nearest (max maps to 255). */
static uint8_t sample_to8(unsigned v, unsigned bps)
{
	if (bps == 8)
		return (uint8_t)v;
	if (bps == 16)
		return (uint8_t)((v * 255u + 32767u) / 65535u);
	return (uint8_t)(v * 255u / ((1u << bps) - 1u));
}

/* Converts one row of interleaved samples to RGB. `chan` holds width * 4 bytes of scratch. */
static void layout_row_to_rgb(const struct tiff_layout *l, const uint8_t *row, uint8_t *rgb,
			      uint8_t *chan)
{
	size_t w = l->width;
	if (l->has_palette) {
		for (size_t x = 0; x < w; x++)
			memcpy(rgb + 3 * x, l->palette + 3 * sample_at(row, x, l->bps), 3);
		return;
	}
	int n_ch = l->n_color + (l->alpha >= 0);
	for (size_t x = 0; x < w; x++) {
		uint8_t *px = chan + x * (size_t)n_ch;
		for (int c = 0; c < l->n_color; c++)
			px[c] = sample_to8(sample_at(row, x * l->spp + (size_t)c, l->bps), l->bps);
		if (l->min_is_white)
			px[0] = (uint8_t)(255 - px[0]);
		if (l->alpha < 0)
			continue;
		unsigned a =
			sample_to8(sample_at(row, x * l->spp + (size_t)l->alpha, l->bps), l->bps);
		px[l->n_color] = (uint8_t)a;
		/* The shared compositing helpers take straight alpha: undo the premultiplication. */
		for (int c = 0; l->assoc_alpha && c < l->n_color; c++) {
			unsigned v = a ? (px[c] * 255u + a / 2) / a : 0;
			px[c] = (uint8_t)(v > 255 ? 255 : v);
		}
	}
	switch (n_ch) {
	case 1:
		ex_rgb_from_gray(rgb, chan, w);
		break;
	case 2:
		ex_rgb_from_gray_alpha(rgb, chan, w);
		break;
	case 3:
		memcpy(rgb, chan, w * 3);
		break;
	default:
		if (l->n_color == 4)
			ex_rgb_from_cmyk(rgb, chan, w, false);
		else
			ex_rgb_from_rgba(rgb, chan, w);
		break;
	}
}

/* Fills the palette from the colormap: 16-bit entries scaled to 8 bits, except that colormaps whose
 * entries all fit in 8 bits were written by tools that stored 8-bit values (libtiff's own RGBA
 * reader makes the same call), and are taken as they are. */
static int layout_palette(TIFF *tif, struct tiff_layout *l, const struct ex_source *src, int page,
			  vlm_err *err)
{
	const uint16_t *map[3];
	if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &map[0], &map[1], &map[2]))
		return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
				      "palette image without a ColorMap");
	size_t n = (size_t)1 << l->bps;
	bool wide = false;
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
			wide |= map[c][i] > 255;
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
			l->palette[3 * i + (size_t)c] =
				wide ? sample_to8(map[c][i], 16) : (uint8_t)map[c][i];
	l->has_palette = true;
	return 0;
}

/* Reads the alpha channel (if any) from ExtraSamples: the first associated or unassociated alpha
 * sample after the colour samples; unspecified extra samples are ignored. */
static void layout_alpha(TIFF *tif, struct tiff_layout *l)
{
	uint16_t n_extra = 0;
	const uint16_t *types = NULL;
	l->alpha = -1;
	if (!TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &types))
		return;
	for (uint16_t i = 0; i < n_extra && l->n_color + i < l->spp; i++) {
		if (types[i] == EXTRASAMPLE_ASSOCALPHA || types[i] == EXTRASAMPLE_UNASSALPHA) {
			l->alpha = l->n_color + i;
			l->assoc_alpha = types[i] == EXTRASAMPLE_ASSOCALPHA;
			return;
		}
	}
}

static const char *photometric_name(uint16_t p)
{
	switch (p) {
	case PHOTOMETRIC_MINISWHITE:
		return "MinIsWhite";
	case PHOTOMETRIC_MINISBLACK:
		return "MinIsBlack";
	case PHOTOMETRIC_RGB:
		return "RGB";
	case PHOTOMETRIC_PALETTE:
		return "palette";
	case PHOTOMETRIC_MASK:
		return "transparency mask";
	case PHOTOMETRIC_SEPARATED:
		return "separated";
	case PHOTOMETRIC_YCBCR:
		return "YCbCr";
	case PHOTOMETRIC_CIELAB:
		return "CIELab";
	case PHOTOMETRIC_ICCLAB:
		return "ICCLab";
	case PHOTOMETRIC_ITULAB:
		return "ITULab";
	case PHOTOMETRIC_LOGL:
		return "LogL";
	case PHOTOMETRIC_LOGLUV:
		return "LogLuv";
	default:
		return "unknown";
	}
}

/* Reads the directory's sample layout and checks that we can decode it; YCbCr with JPEG
 * compression is switched to libtiff's RGB output and described as RGB. */
static int layout_read(TIFF *tif, struct tiff_layout *l, const struct ex_source *src, int page,
		       vlm_err *err)
{
	uint16_t sample_format, ink_set;
	TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l->bps);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l->spp);
	TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l->planar);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sample_format);
	if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l->photometric))
		return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
				      "no PhotometricInterpretation tag");
	if (sample_format != SAMPLEFORMAT_UINT)
		return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
				      "%u-bit %s samples (only unsigned integers are supported)",
				      l->bps,
				      sample_format == SAMPLEFORMAT_IEEEFP ? "floating point"
				      : sample_format == SAMPLEFORMAT_INT  ? "signed"
									   : "complex or void");
	if (l->spp == 0 || l->spp > TIFF_MAX_SAMPLES)
		return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
				      "%u samples per pixel", l->spp);

	bool depth_ok;
	switch (l->photometric) {
	case PHOTOMETRIC_MINISWHITE:
	case PHOTOMETRIC_MINISBLACK:
		l->n_color = 1;
		l->min_is_white = l->photometric == PHOTOMETRIC_MINISWHITE;
		depth_ok = l->bps == 1 || l->bps == 2 || l->bps == 4 || l->bps == 8 || l->bps == 16;
		break;
	case PHOTOMETRIC_PALETTE:
		l->n_color = 1;
		depth_ok =
			(l->bps == 1 || l->bps == 2 || l->bps == 4 || l->bps == 8) && l->spp == 1;
		break;
	case PHOTOMETRIC_YCBCR:
		/* Only reached with JPEG compression (plain YCbCr goes through libtiff's RGBA reader):
		 * libjpeg converts to RGB, so the samples seen here are 8-bit RGB. libtiff converts
		 * contiguous samples only. */
		if (l->planar == PLANARCONFIG_SEPARATE)
			return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
					      "YCbCr JPEG in separate planes is not supported");
		if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
			return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
					      "cannot decode YCbCr JPEG as RGB: %s",
					      input_detail(TIFFClientdata(tif)));
		l->n_color = 3;
		depth_ok = l->bps == 8;
		break;
	case PHOTOMETRIC_RGB:
		l->n_color = 3;
		depth_ok = l->bps == 8 || l->bps == 16;
		break;
	case PHOTOMETRIC_SEPARATED:
		TIFFGetFieldDefaulted(tif, TIFFTAG_INKSET, &ink_set);
		if (ink_set != INKSET_CMYK)
			return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
					      "separated image with inks other than CMYK");
		l->n_color = 4;
		depth_ok = l->bps == 8 || l->bps == 16;
		break;
	default:
		return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
				      "photometric interpretation %u (%s) is not supported",
				      l->photometric, photometric_name(l->photometric));
	}
	if (!depth_ok || l->spp < l->n_color)
		return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
				      "%s with %u bits and %u samples per pixel is not supported",
				      photometric_name(l->photometric), l->bps, l->spp);
	if (l->planar == PLANARCONFIG_SEPARATE && l->spp > 1 && l->bps < 8)
		return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
				      "separate planes of %u-bit samples are not supported",
				      l->bps);
	layout_alpha(tif, l);
	if (l->alpha >= 0 && l->n_color == 4)
		return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
				      "CMYK with an alpha channel is not supported");
	if (l->photometric == PHOTOMETRIC_PALETTE)
		return layout_palette(tif, l, src, page, err);
	return 0;
}

/* One band of rows as decoded by libtiff: a strip, or a row of tiles laid side by side. Separate
 * planes are stored one after another; `mixed` interleaves them into one row. */
struct tiff_band {
	uint8_t *buf;
	uint8_t *tile;  /* one decoded tile (tiled images) */
	uint8_t *mixed; /* one interleaved row (separate planes) */
	uint8_t *chan;  /* width * 4 bytes of conversion scratch */
	uint64_t row_bytes, plane_bytes, tile_row_bytes, tile_bytes;
	uint32_t rows, tile_w;
	uint16_t n_planes;
	bool tiled;
};

static void band_done(struct tiff_band *b)
{
	free(b->buf);
	free(b->tile);
	free(b->mixed);
	free(b->chan);
}

/* The largest buffer a page may need: every sample of a maximal page at 16 bits, plus slack for
 * tiles overhanging the image edge. Also the cap on libtiff's own single allocations, so a header
 * declaring absurd strips or tiles is refused instead of allocated. */
static uint64_t tiff_max_alloc(const struct ex_limits *lim)
{
	return lim->max_page_pixels * 2u * TIFF_MAX_SAMPLES + (64u << 20);
}

static int band_init(TIFF *tif, const struct tiff_layout *l, struct tiff_band *b,
		     const struct ex_source *src, int page, vlm_err *err)
{
	b->n_planes = l->planar == PLANARCONFIG_SEPARATE ? l->spp : 1;
	b->tiled = TIFFIsTiled(tif);
	if (b->tiled) {
		uint32_t tile_h = 0;
		TIFFGetField(tif, TIFFTAG_TILEWIDTH, &b->tile_w);
		TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_h);
		b->tile_row_bytes = TIFFTileRowSize64(tif);
		b->tile_bytes = TIFFTileSize64(tif);
		if (b->tile_w == 0 || tile_h == 0 || b->tile_bytes == 0)
			return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
					      "invalid tile size %ux%u", b->tile_w, tile_h);
		/* Tiles sit side by side in the band; their rows must end on byte boundaries for the
		 * samples of one band row to be contiguous (the standard's 16-pixel tiles always do). */
		uint64_t spp_c = b->n_planes == 1 ? l->spp : 1;
		if ((uint64_t)b->tile_w * l->bps * spp_c % 8 != 0)
			return ex_ingest_fail(err, src, page, EX_REASON_UNSUPPORTED_VARIANT,
					      "tiles %u pixels wide of %u-bit samples", b->tile_w,
					      l->bps);
		uint64_t across = (l->width + (uint64_t)b->tile_w - 1) / b->tile_w;
		b->row_bytes = across * b->tile_row_bytes;
		b->rows = tile_h;
	} else {
		uint32_t rows_per_strip;
		TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
		b->rows = rows_per_strip == 0 || rows_per_strip > l->height ? l->height
									    : rows_per_strip;
		b->row_bytes = TIFFScanlineSize64(tif);
		if (b->row_bytes == 0)
			return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT, "%s",
					      input_detail(TIFFClientdata(tif)));
	}
	uint64_t cap = tiff_max_alloc(src->limits);
	if (b->rows > cap || b->row_bytes > cap / b->rows ||
	    b->row_bytes * b->rows > cap / b->n_planes || b->tile_bytes > cap)
		return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
				      "%s of %u rows x %llu bytes is too large for a %ux%u page",
				      b->tiled ? "tile row" : "strip", b->rows,
				      (unsigned long long)b->row_bytes, l->width, l->height);
	b->plane_bytes = b->row_bytes * b->rows;
	b->buf = malloc(b->plane_bytes * b->n_planes);
	b->tile = b->tiled ? malloc(b->tile_bytes) : NULL;
	b->mixed = b->n_planes > 1 ? malloc((size_t)l->width * l->spp * (l->bps / 8u)) : NULL;
	b->chan = malloc((size_t)l->width * 4);
	if (!b->buf || (b->tiled && !b->tile) || (b->n_planes > 1 && !b->mixed) || !b->chan)
		return ex_ingest_fail(err, src, page, EX_REASON_INTERNAL, "out of memory");
	return 0;
}

/* Decodes the band starting at row y0 (all planes) into b->buf. */
static int band_read(TIFF *tif, const struct tiff_layout *l, struct tiff_band *b, uint32_t y0,
		     uint32_t n_rows, const struct ex_source *src, int page, vlm_err *err)
{
	struct tiff_input *in = TIFFClientdata(tif);
	for (uint16_t s = 0; s < b->n_planes; s++) {
		uint8_t *plane = b->buf + s * b->plane_bytes;
		if (!b->tiled) {
			tmsize_t want = (tmsize_t)(n_rows * b->row_bytes);
			uint32_t strip = TIFFComputeStrip(tif, y0, s);
			if (TIFFReadEncodedStrip(tif, strip, plane, want) != want)
				return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
						      "strip %u: %s", strip, input_detail(in));
			continue;
		}
		for (uint32_t x = 0; x < l->width; x += b->tile_w) {
			tmsize_t got = TIFFReadTile(tif, b->tile, x, y0, 0, s);
			if (got < 0 || (uint64_t)got != b->tile_bytes)
				return ex_ingest_fail(err, src, page, EX_REASON_CORRUPT,
						      "tile at %u,%u: %s", x, y0, input_detail(in));
			uint8_t *dst = plane + (uint64_t)(x / b->tile_w) * b->tile_row_bytes;
			for (uint32_t r = 0; r < b->rows; r++)
				memcpy(dst + r * b->row_bytes, b->tile + r * b->tile_row_bytes,
				       b->tile_row_bytes);
		}
	}
	return 0;
}

/* Row r of the current band as interleaved samples. */
static const uint8_t *band_row(const struct tiff_layout *l, struct tiff_band *b, uint32_t r)
{
	const uint8_t *row = b->buf + r * b->row_bytes;
	if (b->n_planes == 1)
		return row;
	size_t bs = l->bps / 8u;
	for (size_t x = 0; x < l->width; x++)
		for (uint16_t s = 0; s < b->n_planes; s++)
			memcpy(b->mixed + (x * l->spp + s) * bs, row + s * b->plane_bytes + x * bs,
			       bs);
	return b->mixed;
}

static int decode_bands(TIFF *tif, struct ex_page *page, const struct ex_source *src, vlm_err *err)
{
	struct tiff_layout l = { .width = (uint32_t)page->width, .height = (uint32_t)page->height };
	struct tiff_band b = { 0 };
	int rc = layout_read(tif, &l, src, page->number, err);
	if (rc == 0)
		rc = band_init(tif, &l, &b, src, page->number, err);
	for (uint32_t y0 = 0; rc == 0 && y0 < l.height; y0 += b.rows) {
		uint32_t n_rows = l.height - y0 < b.rows ? l.height - y0 : b.rows;
		rc = band_read(tif, &l, &b, y0, n_rows, src, page->number, err);
		for (uint32_t r = 0; rc == 0 && r < n_rows; r++)
			layout_row_to_rgb(&l, band_row(&l, &b, r),
					  page->rgb + ((size_t)y0 + r) * l.width * 3, b.chan);
	}
	band_done(&b);
	return rc;
}

/* YCbCr without JPEG compression (chroma subsampled in blocks): libtiff's RGBA reader does the
 * upsampling and colour conversion. Its pixels are opaque (it has no alpha path for YCbCr). */
static int decode_ycbcr(TIFF *tif, struct ex_page *page, const struct ex_source *src, vlm_err *err)
{
	char emsg[1024];
	TIFFRGBAImage img;
	if (!TIFFRGBAImageOK(tif, emsg) || !TIFFRGBAImageBegin(&img, tif, 1, emsg))
		return ex_ingest_fail(err, src, page->number, EX_REASON_UNSUPPORTED_VARIANT,
				      "YCbCr: %s", emsg);
	/* Rows exactly as stored: the Orientation tag is applied afterwards, once, by the caller. */
	img.orientation = ORIENTATION_TOPLEFT;
	img.req_orientation = ORIENTATION_TOPLEFT;
	size_t n = (size_t)page->width * (size_t)page->height;
	uint32_t *raster = malloc(n * sizeof *raster);
	int rc = 0;
	if (!raster)
		rc = ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL, "out of memory");
	else if (!TIFFRGBAImageGet(&img, raster, (uint32_t)page->width, (uint32_t)page->height))
		rc = ex_ingest_fail(err, src, page->number, EX_REASON_CORRUPT, "%s",
				    input_detail(TIFFClientdata(tif)));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		page->rgb[3 * i] = (uint8_t)TIFFGetR(raster[i]);
		page->rgb[3 * i + 1] = (uint8_t)TIFFGetG(raster[i]);
		page->rgb[3 * i + 2] = (uint8_t)TIFFGetB(raster[i]);
	}
	TIFFRGBAImageEnd(&img);
	free(raster);
	return rc;
}

/* Pixels per inch from XResolution/YResolution; 0 when unknown (no resolution, or the unit is
 * "none"). An absent ResolutionUnit means inch, the TIFF 6.0 default. */
static void read_dpi(TIFF *tif, double *dpi_x, double *dpi_y)
{
	float xres, yres;
	uint16_t unit;
	*dpi_x = *dpi_y = 0;
	if (!TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xres) ||
	    !TIFFGetField(tif, TIFFTAG_YRESOLUTION, &yres) || !isfinite(xres) || !isfinite(yres) ||
	    xres <= 0 || yres <= 0)
		return;
	if (!TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &unit))
		unit = RESUNIT_INCH;
	double scale = unit == RESUNIT_INCH ? 1.0 : unit == RESUNIT_CENTIMETER ? 2.54 : 0.0;
	*dpi_x = xres * scale;
	*dpi_y = yres * scale;
}

/* Decodes the current directory as page `number`: the page is added (and checked against the
 * limits) from the header dimensions before any pixel is decoded. */
static int decode_page(TIFF *tif, const struct ex_source *src, struct ex_doc *doc, int number,
		       vlm_err *err)
{
	uint32_t width, height;
	uint16_t photometric = 0, compression = COMPRESSION_NONE, orientation;
	if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width) ||
	    !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height))
		return ex_ingest_fail(err, src, number, EX_REASON_CORRUPT, "no image dimensions");
	double dpi_x, dpi_y;
	read_dpi(tif, &dpi_x, &dpi_y);
	struct ex_page *page;
	int rc =
		ex_doc_page_new(doc, src, width > INT_MAX ? INT_MAX : (int)width,
				height > INT_MAX ? INT_MAX : (int)height, dpi_x, dpi_y, &page, err);
	if (rc < 0)
		return rc;
	TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
	TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
	if (!TIFFIsCODECConfigured(compression))
		return ex_ingest_fail(err, src, number, EX_REASON_UNSUPPORTED_VARIANT,
				      "compression %u is not supported", compression);
	if (photometric == PHOTOMETRIC_YCBCR && compression != COMPRESSION_JPEG)
		rc = decode_ycbcr(tif, page, src, err);
	else
		rc = decode_bands(tif, page, src, err);
	if (rc < 0)
		return rc;
	if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &orientation) &&
	    ex_page_orient(page, orientation, NULL) < 0)
		return ex_ingest_fail(err, src, number, EX_REASON_INTERNAL,
				      "out of memory applying orientation %u", orientation);
	return 0;
}

/* Counts the directories (libtiff stops at a loop or an unreadable link and says why), reserves
 * the pages, then decodes them in chain order. */
static int decode_all(TIFF *tif, struct tiff_input *in, struct ex_doc *doc, vlm_err *err)
{
	const struct ex_source *src = in->src;
	input_reset(in);
	tdir_t n = TIFFNumberOfDirectories(tif);
	if (in->loop)
		return ex_ingest_fail(err, src, 0, EX_REASON_IFD_LOOP,
				      "directory %u links back into the chain: %s", n,
				      input_detail(in));
	if (in->msg[0])
		return ex_ingest_fail(err, src, 0, EX_REASON_CORRUPT,
				      "directory chain broken after directory %u: %s", n, in->msg);
	int rc = ex_doc_reserve_pages(doc, src, n, err);
	for (tdir_t i = 0; rc == 0 && i < n; i++) {
		input_reset(in);
		if (i > 0 && !TIFFReadDirectory(tif))
			return ex_ingest_fail(err, src, (int)i + 1, EX_REASON_CORRUPT,
					      "cannot read directory: %s", input_detail(in));
		rc = decode_page(tif, src, doc, (int)i + 1, err);
	}
	return rc;
}

int ex_ingest_tiff(const struct ex_source *src, struct ex_doc *doc, vlm_err *err)
{
	struct tiff_input in = { .src = src };
	TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
	if (!opts)
		return ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL, "out of memory");
	TIFFOpenOptionsSetErrorHandlerExtR(opts, input_error, &in);
	TIFFOpenOptionsSetWarningHandlerExtR(opts, input_warning, &in);
	TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)tiff_max_alloc(src->limits));
	/* "m": no memory mapping, every read goes through input_read's bounds check. */
	TIFF *tif = TIFFClientOpenExt(src->path, "rm", &in, input_read, input_write, input_seek,
				      input_close, input_size, NULL, NULL, opts);
	TIFFOpenOptionsFree(opts);
	if (!tif)
		return ex_ingest_fail(err, src, 0, in.loop ? EX_REASON_IFD_LOOP : EX_REASON_CORRUPT,
				      "cannot read the header or first directory: %s",
				      input_detail(&in));
	int rc = decode_all(tif, &in, doc, err);
	TIFFClose(tif);
	return rc;
}
