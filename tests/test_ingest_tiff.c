/* Tests the TIFF decoder (extract/ingest_tiff.c) through the public ex_doc_load().
 *
 * Every variant is written with libtiff's own writer into a mkdtemp directory, with samples
 * computed from (x, y, channel) by gen(); the expected RGB of each pixel is derived here from the
 * same samples with the TIFF 6.0 definitions (ideal real values, before any rounding). Lossless
 * variants must match to within 0.5 (one correct rounding) unless a case states otherwise.
 * Broken files expect their specific reason and a message naming the file. While ex_doc_load runs,
 * libtiff's global handlers (the ones that print) count calls, which must stay zero. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "check.h"
#include "ex.h"

static char tmp_dir[] = "/tmp/intake-test-tiff-XXXXXX";
static int loading;        /* inside ex_doc_load: libtiff must stay silent */
static int global_reports; /* libtiff global handler calls while loading */

static void lib_report(const char *module, const char *fmt, va_list ap)
{
	if (loading) {
		global_reports++;
		return;
	}
	fprintf(stderr, "libtiff (writing the fixture): %s: ", module ? module : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* One image to write. Zero fields take the defaults noted. */
struct spec {
	uint32_t w, h;
	uint16_t bps, spp, photometric;
	uint16_t compression; /* 0: none */
	uint16_t planar;      /* 0: contiguous */
	uint16_t predictor;   /* 0: none */
	uint16_t extra;       /* one extra sample of this type (EXTRASAMPLE_*) when has_extra */
	bool has_extra;
	bool smooth;    /* smooth content (for JPEG) instead of hashed noise */
	bool jpeg_rgb;  /* YCbCr JPEG written from RGB (JPEGCOLORMODE_RGB) */
	bool ycbcr_1x1; /* plain YCbCr without subsampling */
	uint16_t sample_format;
	uint32_t tile;           /* tile side, 0 for strips */
	uint32_t rows_per_strip; /* 0: 7 */
	uint16_t orientation;    /* 0: no tag */
	uint16_t res_unit;       /* 0: no ResolutionUnit tag */
	float xres, yres;        /* 0: no resolution tags */
	const uint16_t *cmap;    /* palette: 3 * 2^bps entries, red then green then blue */
	unsigned seed;
};

static unsigned max_of(const struct spec *s)
{
	return s->bps >= 16 ? 65535u : (1u << s->bps) - 1u;
}

/* The stored value of sample c of pixel (x, y). */
static unsigned gen(const struct spec *s, uint32_t x, uint32_t y, unsigned c)
{
	if (s->bps > 16)
		return 0;
	if (s->smooth) {
		double v = 128.0 + 90.0 * sin(x / 20.0 + c) * cos(y / 24.0 + s->seed);
		return (unsigned)(v / 255.0 * max_of(s) + 0.5);
	}
	uint32_t h = x * 73856093u ^ y * 19349663u ^ (c + 1) * 83492791u ^ s->seed * 2654435761u;
	h ^= h >> 13;
	h *= 0x5bd1e995u;
	h ^= h >> 15;
	unsigned v = h & max_of(s);
	/* Premultiplied colour never exceeds its alpha (the last sample). */
	if (s->has_extra && s->extra == EXTRASAMPLE_ASSOCALPHA && c + 1u < s->spp)
		v %= gen(s, x, y, s->spp - 1u) + 1u;
	return v;
}

static double unit(const struct spec *s, uint32_t x, uint32_t y, unsigned c)
{
	return gen(s, x, y, c) / (double)max_of(s);
}

/* The ideal displayed colour of stored pixel (x, y), each channel in 0..255. */
static void ideal(const struct spec *s, uint32_t x, uint32_t y, double rgb[3])
{
	switch (s->photometric) {
	case PHOTOMETRIC_MINISBLACK:
	case PHOTOMETRIC_MINISWHITE: {
		double g = unit(s, x, y, 0);
		if (s->photometric == PHOTOMETRIC_MINISWHITE)
			g = 1.0 - g;
		if (s->has_extra) { /* straight alpha over white */
			double a = unit(s, x, y, 1);
			g = g * a + (1.0 - a);
		}
		rgb[0] = rgb[1] = rgb[2] = 255.0 * g;
		return;
	}
	case PHOTOMETRIC_PALETTE: {
		unsigned i = gen(s, x, y, 0), n = 1u << s->bps;
		bool wide = false;
		for (unsigned k = 0; k < 3 * n; k++)
			wide |= s->cmap[k] > 255;
		for (int c = 0; c < 3; c++)
			rgb[c] = wide ? s->cmap[c * n + i] * 255.0 / 65535.0 : s->cmap[c * n + i];
		return;
	}
	case PHOTOMETRIC_SEPARATED: {
		double k = unit(s, x, y, 3);
		for (int c = 0; c < 3; c++)
			rgb[c] = 255.0 * (1.0 - unit(s, x, y, (unsigned)c)) * (1.0 - k);
		return;
	}
	case PHOTOMETRIC_YCBCR:
		if (s->ycbcr_1x1) { /* ITU-R BT.601, full range (libtiff's default reference) */
			double yy = gen(s, x, y, 0), cb = gen(s, x, y, 1) - 128.0,
			       cr = gen(s, x, y, 2) - 128.0;
			double v[3] = { yy + 1.402 * cr, yy - 0.344136 * cb - 0.714136 * cr,
					yy + 1.772 * cb };
			for (int c = 0; c < 3; c++)
				rgb[c] = v[c] < 0 ? 0 : v[c] > 255 ? 255 : v[c];
			return;
		}
		break; /* JPEG written from RGB samples: as RGB */
	default:
		break;
	}
	for (int c = 0; c < 3; c++) {
		double v = unit(s, x, y, (unsigned)c);
		if (s->has_extra) {
			double a = unit(s, x, y, 3);
			v = s->extra == EXTRASAMPLE_ASSOCALPHA ? v + (1.0 - a) : v * a + (1.0 - a);
		}
		rgb[c] = 255.0 * v;
	}
}

static void put_sample(uint8_t *row, size_t i, unsigned bps, unsigned v)
{
	if (bps == 16) {
		uint16_t v16 = (uint16_t)v;
		memcpy(row + 2 * i, &v16, 2);
	} else if (bps == 8) {
		row[i] = (uint8_t)v;
	} else if (bps < 8) {
		size_t bit = i * bps;
		row[bit / 8] |= (uint8_t)(v << (8 - bps - bit % 8));
	}
}

/* Packs `w` pixels of row y starting at x0 (plane `plane`, or all samples when plane < 0). */
static void pack(const struct spec *s, uint8_t *row, uint32_t x0, uint32_t w, uint32_t y, int plane)
{
	for (uint32_t x = 0; x < w; x++) {
		if (x0 + x >= s->w || y >= s->h)
			continue;
		if (plane >= 0) {
			put_sample(row, x, s->bps, gen(s, x0 + x, y, (unsigned)plane));
			continue;
		}
		for (unsigned c = 0; c < s->spp; c++)
			put_sample(row, (size_t)x * s->spp + c, s->bps, gen(s, x0 + x, y, c));
	}
}

static bool write_dir(TIFF *tif, const struct spec *s)
{
	bool separate = s->planar == PLANARCONFIG_SEPARATE;
	TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, s->w);
	TIFFSetField(tif, TIFFTAG_IMAGELENGTH, s->h);
	TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, s->bps);
	TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, s->spp);
	TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, s->photometric);
	TIFFSetField(tif, TIFFTAG_COMPRESSION, s->compression ? s->compression : COMPRESSION_NONE);
	TIFFSetField(tif, TIFFTAG_PLANARCONFIG,
		     separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
	if (s->predictor)
		TIFFSetField(tif, TIFFTAG_PREDICTOR, s->predictor);
	if (s->has_extra) {
		uint16_t types[1] = { s->extra };
		TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, types);
	}
	if (s->sample_format)
		TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, s->sample_format);
	if (s->cmap) {
		size_t n = (size_t)1 << s->bps;
		TIFFSetField(tif, TIFFTAG_COLORMAP, s->cmap, s->cmap + n, s->cmap + 2 * n);
	}
	if (s->jpeg_rgb) {
		TIFFSetField(tif, TIFFTAG_JPEGQUALITY, 95);
		TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
	}
	if (s->ycbcr_1x1)
		TIFFSetField(tif, TIFFTAG_YCBCRSUBSAMPLING, 1, 1);
	if (s->orientation)
		TIFFSetField(tif, TIFFTAG_ORIENTATION, s->orientation);
	if (s->xres > 0) {
		TIFFSetField(tif, TIFFTAG_XRESOLUTION, (double)s->xres);
		TIFFSetField(tif, TIFFTAG_YRESOLUTION, (double)s->yres);
	}
	if (s->res_unit)
		TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, s->res_unit);
	int n_planes = separate ? s->spp : 1;
	bool ok = true;
	if (s->tile) {
		TIFFSetField(tif, TIFFTAG_TILEWIDTH, s->tile);
		TIFFSetField(tif, TIFFTAG_TILELENGTH, s->tile);
		tmsize_t row_bytes = TIFFTileRowSize(tif), size = TIFFTileSize(tif);
		uint8_t *buf = malloc((size_t)size);
		for (int p = 0; p < n_planes; p++)
			for (uint32_t ty = 0; ty < s->h; ty += s->tile)
				for (uint32_t tx = 0; tx < s->w; tx += s->tile) {
					memset(buf, 0, (size_t)size);
					for (uint32_t r = 0; r < s->tile; r++)
						pack(s, buf + r * row_bytes, tx, s->tile, ty + r,
						     separate ? p : -1);
					ok &= TIFFWriteTile(tif, buf, tx, ty, 0, (uint16_t)p) ==
					      size;
				}
		free(buf);
	} else {
		TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, s->rows_per_strip ? s->rows_per_strip : 7);
		tmsize_t size = TIFFScanlineSize(tif);
		uint8_t *row = malloc((size_t)size);
		for (int p = 0; p < n_planes; p++)
			for (uint32_t y = 0; y < s->h; y++) {
				memset(row, 0, (size_t)size);
				pack(s, row, 0, s->w, y, separate ? p : -1);
				ok &= TIFFWriteScanline(tif, row, y, (uint16_t)p) == 1;
			}
		free(row);
	}
	return ok && TIFFWriteDirectory(tif);
}

/* Writes the pages to tmp_dir/name with libtiff open mode `mode` ("w", "wb", "w8"). */
static const char *write_tiff(const char *name, const char *mode, const struct spec *pages,
			      size_t n)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
	TIFF *tif = TIFFOpen(path, mode);
	bool ok = tif != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = write_dir(tif, &pages[i]);
	if (tif)
		TIFFClose(tif);
	if (!ok)
		fprintf(stderr, "cannot write fixture %s\n", path);
	CHECK(ok);
	return path;
}

static struct ex_doc *load(const char *path, const struct ex_limits *limits, vlm_err *err)
{
	struct ex_doc *doc = NULL;
	*err = (vlm_err){ 0 };
	loading = 1;
	global_reports = 0;
	int rc = ex_doc_load(path, limits, &doc, err);
	loading = 0;
	CHECK_INT(global_reports, 0);
	if (rc < 0)
		CHECK(doc == NULL);
	return doc;
}

/* Stored coordinates of displayed pixel (dx, dy) under TIFF Orientation o of a w x h stored image
 * (TIFF 6.0: the 0th row represents the visual top (1-4) or side (5-8), the 0th column the visual
 * left, right, top or bottom). */
static void stored_of(int o, uint32_t w, uint32_t h, uint32_t dx, uint32_t dy, uint32_t *sx,
		      uint32_t *sy)
{
	switch (o) {
	case 2:
		*sx = w - 1 - dx;
		*sy = dy;
		break; /* row 0 top, column 0 right */
	case 3:
		*sx = w - 1 - dx;
		*sy = h - 1 - dy;
		break; /* row 0 bottom, column 0 right */
	case 4:
		*sx = dx;
		*sy = h - 1 - dy;
		break; /* row 0 bottom, column 0 left */
	case 5:
		*sx = dy;
		*sy = dx;
		break; /* row 0 left, column 0 top */
	case 6:
		*sx = dy;
		*sy = h - 1 - dx;
		break; /* row 0 right, column 0 top */
	case 7:
		*sx = w - 1 - dy;
		*sy = h - 1 - dx;
		break; /* row 0 right, column 0 bottom */
	case 8:
		*sx = w - 1 - dy;
		*sy = dx;
		break; /* row 0 left, column 0 bottom */
	default:
		*sx = dx;
		*sy = dy;
		break;
	}
}

/* Compares a decoded page with the spec's ideal colours; returns the largest error seen. */
static double check_page(const char *what, const struct ex_page *p, const struct spec *s,
			 double tol)
{
	int o = s->orientation;
	bool swap = o >= 5 && o <= 8;
	CHECK_INT(p->width, swap ? s->h : s->w);
	CHECK_INT(p->height, swap ? s->w : s->h);
	if (p->width != (int)(swap ? s->h : s->w) || p->height != (int)(swap ? s->w : s->h))
		return 1e9;
	double worst = 0;
	for (uint32_t dy = 0; dy < (uint32_t)p->height; dy++)
		for (uint32_t dx = 0; dx < (uint32_t)p->width; dx++) {
			uint32_t sx, sy;
			stored_of(o, s->w, s->h, dx, dy, &sx, &sy);
			double want[3];
			ideal(s, sx, sy, want);
			const uint8_t *got = p->rgb + ((size_t)dy * p->width + dx) * 3;
			for (int c = 0; c < 3; c++) {
				double e = fabs(got[c] - want[c]);
				if (e > tol && worst <= tol)
					fprintf(stderr,
						"%s: pixel %u,%u channel %d: got %u, want %.2f\n",
						what, dx, dy, c, got[c], want[c]);
				worst = e > worst ? e : worst;
			}
		}
	if (worst > tol)
		fprintf(stderr, "%s: max error %.2f > %.2f\n", what, worst, tol);
	CHECK(worst <= tol);
	return worst;
}

/* Writes one page, loads it and checks it. */
static void roundtrip(const char *name, const char *mode, const struct spec *s, double tol)
{
	const char *path = write_tiff(name, mode, s, 1);
	vlm_err err;
	struct ex_doc *doc = load(path, NULL, &err);
	if (!doc) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		CHECK(doc != NULL);
		return;
	}
	CHECK_INT(doc->format, EX_FORMAT_TIFF);
	CHECK_INT(doc->n_pages, 1);
	CHECK_INT(doc->pages[0].number, 1);
	check_page(name, &doc->pages[0], s, tol);
	ex_doc_free(doc);
}

static uint16_t cmap8[3 * 256], cmap4[3 * 16], cmap_narrow[3 * 256];

static void test_variants(void)
{
	/* Two-tone colormaps: 16-bit entries, including values that are not multiples of 257. */
	for (unsigned i = 0; i < 256; i++) {
		cmap8[i] = (uint16_t)(i * 257);
		cmap8[256 + i] = (uint16_t)((i * 7919u) & 0xffff);
		cmap8[512 + i] = (uint16_t)(65535 - i * 131);
		cmap_narrow[i] = (uint16_t)i;
		cmap_narrow[256 + i] = (uint16_t)(255 - i);
		cmap_narrow[512 + i] = (uint16_t)((i * 37) & 0xff);
	}
	for (unsigned i = 0; i < 16; i++) {
		cmap4[i] = (uint16_t)(i * 4369);
		cmap4[16 + i] = (uint16_t)(40000 + i * 1000);
		cmap4[32 + i] = (uint16_t)(i * 3001);
	}
	const uint16_t W = PHOTOMETRIC_MINISWHITE, B = PHOTOMETRIC_MINISBLACK;
	const uint16_t RGB = PHOTOMETRIC_RGB, SEP = PLANARCONFIG_SEPARATE;

	/* Gray: 8 and 16 bits, both polarities, packed depths with odd widths, big-endian. */
	roundtrip("gray8.tif", "w",
		  &(struct spec){ .w = 23, .h = 17, .bps = 8, .spp = 1, .photometric = B }, 0.5);
	roundtrip("gray8_white_lzw.tif", "w",
		  &(struct spec){ .w = 23,
				  .h = 17,
				  .bps = 8,
				  .spp = 1,
				  .photometric = W,
				  .compression = COMPRESSION_LZW,
				  .seed = 1 },
		  0.5);
	roundtrip("gray4_packbits.tif", "w",
		  &(struct spec){ .w = 13,
				  .h = 9,
				  .bps = 4,
				  .spp = 1,
				  .photometric = B,
				  .compression = COMPRESSION_PACKBITS,
				  .seed = 2 },
		  0.5);
	roundtrip(
		"gray2.tif", "w",
		&(struct spec){ .w = 11, .h = 5, .bps = 2, .spp = 1, .photometric = W, .seed = 3 },
		0.5);
	roundtrip("gray16_deflate.tif", "w",
		  &(struct spec){ .w = 31,
				  .h = 12,
				  .bps = 16,
				  .spp = 1,
				  .photometric = B,
				  .compression = COMPRESSION_ADOBE_DEFLATE,
				  .predictor = PREDICTOR_HORIZONTAL,
				  .seed = 4 },
		  0.5);
	roundtrip(
		"gray16_be.tif", "wb",
		&(struct spec){ .w = 9, .h = 8, .bps = 16, .spp = 1, .photometric = W, .seed = 5 },
		0.5);
	/* Gray with straight alpha, composited over white. */
	roundtrip("gray_alpha.tif", "w",
		  &(struct spec){ .w = 15,
				  .h = 6,
				  .bps = 8,
				  .spp = 2,
				  .photometric = B,
				  .has_extra = true,
				  .extra = EXTRASAMPLE_UNASSALPHA,
				  .seed = 6 },
		  0.5);

	/* Bilevel: uncompressed and CCITT G3/G4, MinIsWhite and MinIsBlack, odd width. */
	static const struct {
		const char *name;
		uint16_t comp, photo;
	} bilevel[] = {
		{ "bw_none_black.tif", COMPRESSION_NONE, PHOTOMETRIC_MINISBLACK },
		{ "bw_g3_white.tif", COMPRESSION_CCITTFAX3, PHOTOMETRIC_MINISWHITE },
		{ "bw_g3_black.tif", COMPRESSION_CCITTFAX3, PHOTOMETRIC_MINISBLACK },
		{ "bw_g4_white.tif", COMPRESSION_CCITTFAX4, PHOTOMETRIC_MINISWHITE },
		{ "bw_g4_black.tif", COMPRESSION_CCITTFAX4, PHOTOMETRIC_MINISBLACK },
	};
	for (size_t i = 0; i < sizeof bilevel / sizeof bilevel[0]; i++)
		roundtrip(bilevel[i].name, "w",
			  &(struct spec){ .w = 37,
					  .h = 21,
					  .bps = 1,
					  .spp = 1,
					  .photometric = bilevel[i].photo,
					  .compression = bilevel[i].comp,
					  .seed = 7 + (unsigned)i },
			  0);

	/* RGB: LZW with predictor, PackBits, 16-bit deflate big-endian, tiles, separate planes. */
	roundtrip("rgb8_lzw.tif", "w",
		  &(struct spec){ .w = 29,
				  .h = 19,
				  .bps = 8,
				  .spp = 3,
				  .photometric = RGB,
				  .compression = COMPRESSION_LZW,
				  .predictor = PREDICTOR_HORIZONTAL,
				  .seed = 20 },
		  0.5);
	roundtrip("rgb8_packbits.tif", "w",
		  &(struct spec){ .w = 29,
				  .h = 19,
				  .bps = 8,
				  .spp = 3,
				  .photometric = RGB,
				  .compression = COMPRESSION_PACKBITS,
				  .seed = 21 },
		  0.5);
	roundtrip("rgb16_deflate_be.tif", "wb",
		  &(struct spec){ .w = 21,
				  .h = 14,
				  .bps = 16,
				  .spp = 3,
				  .photometric = RGB,
				  .compression = COMPRESSION_ADOBE_DEFLATE,
				  .seed = 22 },
		  0.5);
	roundtrip("rgb8_tiled.tif", "w",
		  &(struct spec){ .w = 40,
				  .h = 27,
				  .bps = 8,
				  .spp = 3,
				  .photometric = RGB,
				  .compression = COMPRESSION_ADOBE_DEFLATE,
				  .tile = 16,
				  .seed = 23 },
		  0.5);
	roundtrip("rgb8_separate.tif", "w",
		  &(struct spec){ .w = 19,
				  .h = 23,
				  .bps = 8,
				  .spp = 3,
				  .photometric = RGB,
				  .planar = SEP,
				  .compression = COMPRESSION_LZW,
				  .seed = 24 },
		  0.5);
	roundtrip("rgb16_separate_tiled.tif", "w",
		  &(struct spec){ .w = 35,
				  .h = 18,
				  .bps = 16,
				  .spp = 3,
				  .photometric = RGB,
				  .planar = SEP,
				  .tile = 16,
				  .seed = 25 },
		  0.5);
	roundtrip("bw_tiled.tif", "w",
		  &(struct spec){ .w = 45,
				  .h = 20,
				  .bps = 1,
				  .spp = 1,
				  .photometric = W,
				  .tile = 16,
				  .seed = 26 },
		  0);

	/* RGBA over white: straight alpha at 8 bits; at 16 bits colour and alpha are each rounded
	 * to 8 bits before compositing (error up to 1.5); premultiplied alpha is un-premultiplied
	 * to 8 bits first (error up to 1.5). */
	roundtrip("rgba8.tif", "w",
		  &(struct spec){ .w = 17,
				  .h = 13,
				  .bps = 8,
				  .spp = 4,
				  .photometric = RGB,
				  .has_extra = true,
				  .extra = EXTRASAMPLE_UNASSALPHA,
				  .seed = 30 },
		  0.5);
	roundtrip("rgba16.tif", "w",
		  &(struct spec){ .w = 17,
				  .h = 13,
				  .bps = 16,
				  .spp = 4,
				  .photometric = RGB,
				  .has_extra = true,
				  .extra = EXTRASAMPLE_UNASSALPHA,
				  .seed = 31 },
		  1.5);
	roundtrip("rgba8_assoc.tif", "w",
		  &(struct spec){ .w = 17,
				  .h = 13,
				  .bps = 8,
				  .spp = 4,
				  .photometric = RGB,
				  .has_extra = true,
				  .extra = EXTRASAMPLE_ASSOCALPHA,
				  .seed = 32 },
		  1.5);
	roundtrip("rgba8_separate.tif", "w",
		  &(struct spec){ .w = 17,
				  .h = 13,
				  .bps = 8,
				  .spp = 4,
				  .photometric = RGB,
				  .planar = SEP,
				  .has_extra = true,
				  .extra = EXTRASAMPLE_UNASSALPHA,
				  .seed = 33 },
		  0.5);

	/* Palette: 8 and 4 bits with 16-bit entries, and an old-style colormap of 8-bit values. */
	roundtrip("palette8.tif", "w",
		  &(struct spec){ .w = 25,
				  .h = 10,
				  .bps = 8,
				  .spp = 1,
				  .photometric = PHOTOMETRIC_PALETTE,
				  .cmap = cmap8,
				  .compression = COMPRESSION_LZW,
				  .seed = 40 },
		  0.5);
	roundtrip("palette4.tif", "w",
		  &(struct spec){ .w = 25,
				  .h = 10,
				  .bps = 4,
				  .spp = 1,
				  .photometric = PHOTOMETRIC_PALETTE,
				  .cmap = cmap4,
				  .seed = 41 },
		  0.5);
	roundtrip("palette8_narrow.tif", "w",
		  &(struct spec){ .w = 25,
				  .h = 10,
				  .bps = 8,
				  .spp = 1,
				  .photometric = PHOTOMETRIC_PALETTE,
				  .cmap = cmap_narrow,
				  .seed = 42 },
		  0);

	/* CMYK: 8 bits exact; 16 bits quantised to 8 before the conversion (error up to 1.5). */
	roundtrip("cmyk8.tif", "w",
		  &(struct spec){ .w = 14,
				  .h = 11,
				  .bps = 8,
				  .spp = 4,
				  .photometric = PHOTOMETRIC_SEPARATED,
				  .seed = 50 },
		  0.5);
	roundtrip("cmyk16.tif", "w",
		  &(struct spec){ .w = 14,
				  .h = 11,
				  .bps = 16,
				  .spp = 4,
				  .photometric = PHOTOMETRIC_SEPARATED,
				  .seed = 51 },
		  1.5);

	/* Plain YCbCr (no subsampling) through libtiff's RGBA reader: its fixed-point BT.601
	 * conversion is within 2 of the real-valued formula. */
	roundtrip("ycbcr.tif", "w",
		  &(struct spec){ .w = 16,
				  .h = 8,
				  .bps = 8,
				  .spp = 3,
				  .photometric = PHOTOMETRIC_YCBCR,
				  .ycbcr_1x1 = true,
				  .seed = 60 },
		  2);

	/* JPEG is lossy: on smooth content at quality 95 (default 2x2 chroma subsampling for
	 * YCbCr) every channel must be within 8 of the source. */
	roundtrip("jpeg_ycbcr.tif", "w",
		  &(struct spec){ .w = 48,
				  .h = 40,
				  .bps = 8,
				  .spp = 3,
				  .photometric = PHOTOMETRIC_YCBCR,
				  .compression = COMPRESSION_JPEG,
				  .jpeg_rgb = true,
				  .smooth = true,
				  .rows_per_strip = 16,
				  .seed = 70 },
		  8);
	/* Whole tiles: the writer pads partial tiles with black, which JPEG blurs into the edge. */
	roundtrip("jpeg_ycbcr_tiled.tif", "w",
		  &(struct spec){ .w = 48,
				  .h = 32,
				  .bps = 8,
				  .spp = 3,
				  .photometric = PHOTOMETRIC_YCBCR,
				  .compression = COMPRESSION_JPEG,
				  .jpeg_rgb = true,
				  .smooth = true,
				  .tile = 16,
				  .seed = 73 },
		  8);
	roundtrip("jpeg_rgb.tif", "w",
		  &(struct spec){ .w = 48,
				  .h = 40,
				  .bps = 8,
				  .spp = 3,
				  .photometric = RGB,
				  .compression = COMPRESSION_JPEG,
				  .smooth = true,
				  .rows_per_strip = 16,
				  .seed = 71 },
		  8);
	roundtrip("jpeg_gray_tiled.tif", "w",
		  &(struct spec){ .w = 40,
				  .h = 40,
				  .bps = 8,
				  .spp = 1,
				  .photometric = B,
				  .compression = COMPRESSION_JPEG,
				  .smooth = true,
				  .tile = 16,
				  .seed = 72 },
		  8);
}

static void test_multipage_and_bigtiff(void)
{
	const struct spec pages[3] = {
		{ .w = 30,
		  .h = 20,
		  .bps = 8,
		  .spp = 3,
		  .photometric = PHOTOMETRIC_RGB,
		  .compression = COMPRESSION_LZW,
		  .seed = 80,
		  .xres = 200,
		  .yres = 200,
		  .res_unit = RESUNIT_INCH },
		{ .w = 17,
		  .h = 41,
		  .bps = 16,
		  .spp = 1,
		  .photometric = PHOTOMETRIC_MINISBLACK,
		  .seed = 81 },
		{ .w = 64,
		  .h = 8,
		  .bps = 1,
		  .spp = 1,
		  .photometric = PHOTOMETRIC_MINISWHITE,
		  .compression = COMPRESSION_CCITTFAX4,
		  .seed = 82,
		  .orientation = 6 },
	};
	static const char *const modes[][2] = { { "multi.tif", "w" },
						{ "multi_big.tif", "w8" },
						{ "multi_big_be.tif", "w8b" } };
	for (size_t m = 0; m < 3; m++) {
		const char *path = write_tiff(modes[m][0], modes[m][1], pages, 3);
		vlm_err err;
		struct ex_doc *doc = load(path, NULL, &err);
		CHECK(doc != NULL);
		if (!doc) {
			fprintf(stderr, "%s: %s\n", modes[m][0], err.msg);
			continue;
		}
		CHECK_INT(doc->n_pages, 3);
		for (size_t i = 0; i < doc->n_pages && i < 3; i++) {
			CHECK_INT(doc->pages[i].number, (int)i + 1);
			check_page(modes[m][0], &doc->pages[i], &pages[i],
				   pages[i].bps == 1 ? 0 : 0.5);
		}
		CHECK_NEAR(doc->pages[0].dpi_x, 200, 1e-3);
		CHECK_NEAR(doc->pages[1].dpi_x, 0, 0);
		ex_doc_free(doc);
	}
	/* BigTIFF really was written (magic 43). */
	FILE *f = fopen(write_tiff("big_magic.tif", "w8", pages, 1), "rb");
	uint8_t head[4] = { 0 };
	CHECK(f && fread(head, 1, 4, f) == 4);
	if (f)
		fclose(f);
	CHECK_INT(head[2], 43);
}

static void test_orientation(void)
{
	for (uint16_t o = 1; o <= 8; o++) {
		struct spec s = { .w = 5,
				  .h = 3,
				  .bps = 8,
				  .spp = 3,
				  .photometric = PHOTOMETRIC_RGB,
				  .orientation = o,
				  .xres = 100,
				  .yres = 200,
				  .res_unit = RESUNIT_INCH,
				  .seed = 90 };
		char name[32];
		snprintf(name, sizeof name, "orient%u.tif", o);
		const char *path = write_tiff(name, "w", &s, 1);
		vlm_err err;
		struct ex_doc *doc = load(path, NULL, &err);
		CHECK(doc != NULL);
		if (!doc)
			continue;
		check_page(name, &doc->pages[0], &s, 0.5);
		CHECK_NEAR(doc->pages[0].dpi_x, o >= 5 ? 200 : 100, 1e-3);
		CHECK_NEAR(doc->pages[0].dpi_y, o >= 5 ? 100 : 200, 1e-3);
		ex_doc_free(doc);
	}
}

static void test_resolution(void)
{
	static const struct {
		const char *name;
		float xres, yres;
		uint16_t unit;
		double dpi_x, dpi_y;
	} cases[] = {
		{ "res_inch.tif", 300, 150, RESUNIT_INCH, 300, 150 },
		{ "res_cm.tif", 100, 50, RESUNIT_CENTIMETER, 254, 127 },
		{ "res_none.tif", 72, 72, RESUNIT_NONE, 0, 0 },
		{ "res_absent.tif", 0, 0, 0, 0, 0 },
		/* TIFF 6.0: ResolutionUnit defaults to inch when the tag is missing. */
		{ "res_no_unit.tif", 240, 240, 0, 240, 240 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct spec s = { .w = 4,
				  .h = 4,
				  .bps = 8,
				  .spp = 1,
				  .photometric = PHOTOMETRIC_MINISBLACK,
				  .xres = cases[i].xres,
				  .yres = cases[i].yres,
				  .res_unit = cases[i].unit };
		vlm_err err;
		struct ex_doc *doc = load(write_tiff(cases[i].name, "w", &s, 1), NULL, &err);
		CHECK(doc != NULL);
		if (!doc)
			continue;
		CHECK_NEAR(doc->pages[0].dpi_x, cases[i].dpi_x, 1e-3);
		CHECK_NEAR(doc->pages[0].dpi_y, cases[i].dpi_y, 1e-3);
		ex_doc_free(doc);
	}
}

/* Loads `path` expecting failure with `reason`, a message naming the file and `needle`. */
static void expect_refusal(const char *path, const struct ex_limits *limits,
			   enum ex_ingest_reason reason, const char *needle)
{
	vlm_err err;
	struct ex_doc *doc = load(path, limits, &err);
	CHECK(doc == NULL);
	ex_doc_free(doc);
	if (err.reason != (int)reason || getenv("TEST_VERBOSE"))
		fprintf(stderr, "%s: %s\n", path, err.msg);
	CHECK_INT(err.reason, reason);
	CHECK(err.code < 0);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, needle);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat st;
	if (f && fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size))) {
		*n = fread(buf, 1, (size_t)st.st_size, f);
	}
	if (f)
		fclose(f);
	CHECK(buf != NULL);
	return buf;
}

static void spit(const char *path, const uint8_t *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	CHECK(f && fwrite(buf, 1, n, f) == n);
	if (f)
		fclose(f);
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Byte offset of directory `i` of a classic little-endian file, following the chain. */
static uint32_t ifd_offset(const uint8_t *d, size_t n, unsigned i)
{
	uint32_t off = le32(d + 4);
	while (i-- > 0 && off + 2 <= n)
		off = le32(d + off + 2 + 12u * (d[off] | d[off + 1] << 8));
	return off;
}

/* Rewrites tag `tag` of the first directory as one LONG holding `value`. */
static bool patch_long(uint8_t *d, size_t n, uint16_t tag, uint32_t value)
{
	uint32_t off = ifd_offset(d, n, 0);
	unsigned count = d[off] | d[off + 1] << 8;
	for (unsigned i = 0; i < count && off + 14 + 12u * i <= n; i++) {
		uint8_t *e = d + off + 2 + 12u * i;
		if ((e[0] | e[1] << 8) != tag)
			continue;
		const uint8_t entry[10] = { 4,
					    0,
					    1,
					    0,
					    0,
					    0,
					    (uint8_t)value,
					    (uint8_t)(value >> 8),
					    (uint8_t)(value >> 16),
					    (uint8_t)(value >> 24) };
		memcpy(e + 2, entry, sizeof entry);
		return true;
	}
	return false;
}

static void test_broken(void)
{
	const struct spec rgb = {
		.w = 64, .h = 64, .bps = 8, .spp = 3, .photometric = PHOTOMETRIC_RGB, .seed = 100
	};
	const struct spec three[3] = { rgb, rgb, rgb };
	char path[300];
	size_t n = 0;

	/* Truncated in the middle of page 2's strips: page 1 links to a directory past the end. */
	snprintf(path, sizeof path, "%s", write_tiff("truncated.tif", "w", three, 2));
	uint8_t *d = slurp(path, &n);
	uint32_t first = ifd_offset(d, n, 0), second = ifd_offset(d, n, 1);
	CHECK(first < second && second < n);
	spit(path, d, first + (second - first) / 2);
	expect_refusal(path, NULL, EX_REASON_CORRUPT, "corrupt");
	/* Truncated before the first directory. */
	spit(path, d, first / 2);
	expect_refusal(path, NULL, EX_REASON_CORRUPT, "corrupt");
	free(d);

	/* Valid magic, first directory offset far beyond the file. */
	snprintf(path, sizeof path, "%s/bad_header.tif", tmp_dir);
	uint8_t head[64] = { 'I', 'I', 42, 0, 0xf0, 0xff, 0xff, 0x7f };
	spit(path, head, sizeof head);
	expect_refusal(path, NULL, EX_REASON_CORRUPT, "corrupt");

	/* IFD loop: the last of three directories links back to the first. */
	snprintf(path, sizeof path, "%s", write_tiff("loop.tif", "w", three, 3));
	d = slurp(path, &n);
	uint32_t last = ifd_offset(d, n, 2);
	uint32_t link = last + 2 + 12u * (d[last] | d[last + 1] << 8);
	CHECK(link + 4 <= n && le32(d + link) == 0);
	memcpy(d + link, d + 4, 4);
	spit(path, d, n);
	expect_refusal(path, NULL, EX_REASON_IFD_LOOP, "loop");
	free(d);
	/* A single directory linking to itself. */
	snprintf(path, sizeof path, "%s", write_tiff("self_loop.tif", "w", three, 1));
	d = slurp(path, &n);
	first = ifd_offset(d, n, 0);
	link = first + 2 + 12u * (d[first] | d[first + 1] << 8);
	CHECK(link + 4 <= n && le32(d + link) == 0);
	memcpy(d + link, d + 4, 4);
	spit(path, d, n);
	expect_refusal(path, NULL, EX_REASON_IFD_LOOP, "loop");
	free(d);

	/* Corrupt compressed data: page 2's LZW strip overwritten with noise. */
	struct spec lzw[2] = { rgb, rgb };
	lzw[1].compression = COMPRESSION_LZW;
	lzw[1].rows_per_strip = 64;
	snprintf(path, sizeof path, "%s", write_tiff("bad_lzw.tif", "w", lzw, 2));
	TIFF *tif = TIFFOpen(path, "r");
	uint64_t *offsets = NULL, *counts = NULL, strip_off = 0, strip_len = 0;
	if (tif && TIFFSetDirectory(tif, 1) && TIFFGetField(tif, TIFFTAG_STRIPOFFSETS, &offsets) &&
	    TIFFGetField(tif, TIFFTAG_STRIPBYTECOUNTS, &counts)) {
		strip_off = offsets[0];
		strip_len = counts[0];
	}
	if (tif)
		TIFFClose(tif);
	d = slurp(path, &n);
	CHECK(strip_len > 16 && strip_off + strip_len <= n);
	for (uint64_t i = 4; i < strip_len && strip_off + i < n; i++)
		d[strip_off + i] = (uint8_t)(0xff ^ (i * 37));
	spit(path, d, n);
	free(d);
	expect_refusal(path, NULL, EX_REASON_CORRUPT, "page 2");

	/* A strip shorter than its rows: 100 of the 256 bytes of a 16x16 gray page. */
	snprintf(path, sizeof path, "%s/short_strip.tif", tmp_dir);
	tif = TIFFOpen(path, "w");
	CHECK(tif != NULL);
	if (tif) {
		uint8_t strip[100] = { 0 };
		TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 16);
		TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 16);
		TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
		TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
		TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
		TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 16);
		CHECK(TIFFWriteRawStrip(tif, 0, strip, sizeof strip) == sizeof strip);
		TIFFClose(tif);
		expect_refusal(path, NULL, EX_REASON_CORRUPT, "page 1");
	}

	/* Bomb headers: a 1x1 deflate image whose ImageWidth/ImageLength are patched to huge sizes,
	 * refused from the header alone (a tiny file, no pixel data behind the claim). */
	static const uint32_t bombs[][2] = { { 100000, 100000 }, { 50000, 50000 } };
	const struct spec one = { .w = 1,
				  .h = 1,
				  .bps = 8,
				  .spp = 3,
				  .photometric = PHOTOMETRIC_RGB,
				  .compression = COMPRESSION_ADOBE_DEFLATE,
				  .rows_per_strip = UINT32_MAX };
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s",
			 write_tiff(i ? "bomb1.tif" : "bomb0.tif", "w", &one, 1));
		d = slurp(path, &n);
		CHECK(n < 4096);
		CHECK(patch_long(d, n, TIFFTAG_IMAGEWIDTH, bombs[i][0]));
		CHECK(patch_long(d, n, TIFFTAG_IMAGELENGTH, bombs[i][1]));
		spit(path, d, n);
		free(d);
		expect_refusal(path, NULL, EX_REASON_PAGE_TOO_LARGE, "page 1");
	}

	/* Page limits: 4 pages against max_pages 3; 3 pages of 64x64 against 10000 pixels. */
	struct ex_limits lim;
	ex_limits_default(&lim);
	lim.max_pages = 3;
	const struct spec four[4] = { rgb, rgb, rgb, rgb };
	expect_refusal(write_tiff("four.tif", "w", four, 4), &lim, EX_REASON_TOO_MANY_PAGES,
		       "4 pages");
	ex_limits_default(&lim);
	lim.max_total_pixels = 10000;
	expect_refusal(write_tiff("total.tif", "w", three, 3), &lim, EX_REASON_TOTAL_TOO_LARGE,
		       "page 3");

	/* Variants we do not decode are named. */
	expect_refusal(write_tiff("float.tif", "w",
				  &(struct spec){ .w = 4,
						  .h = 4,
						  .bps = 32,
						  .spp = 1,
						  .photometric = PHOTOMETRIC_MINISBLACK,
						  .sample_format = SAMPLEFORMAT_IEEEFP },
				  1),
		       NULL, EX_REASON_UNSUPPORTED_VARIANT, "floating point");
	expect_refusal(write_tiff("lab.tif", "w",
				  &(struct spec){ .w = 4,
						  .h = 4,
						  .bps = 8,
						  .spp = 3,
						  .photometric = PHOTOMETRIC_CIELAB },
				  1),
		       NULL, EX_REASON_UNSUPPORTED_VARIANT, "CIELab");
	/* An unknown compression scheme (patched in after writing). */
	snprintf(path, sizeof path, "%s",
		 write_tiff("codec.tif", "w",
			    &(struct spec){ .w = 4,
					    .h = 4,
					    .bps = 8,
					    .spp = 1,
					    .photometric = PHOTOMETRIC_MINISBLACK },
			    1));
	d = slurp(path, &n);
	CHECK(patch_long(d, n, TIFFTAG_COMPRESSION, 60000));
	spit(path, d, n);
	free(d);
	expect_refusal(path, NULL, EX_REASON_UNSUPPORTED_VARIANT, "compression 60000");
}

/* Removes the fixtures: the directory holds only files this test wrote. */
static int remove_fixtures(void)
{
	DIR *dir = opendir(tmp_dir);
	if (!dir)
		return -errno;
	struct dirent *e;
	char path[512];
	int rc = 0;
	while ((e = readdir(dir))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
		if (unlink(path) < 0)
			rc = -errno;
	}
	closedir(dir);
	if (rmdir(tmp_dir) < 0)
		rc = -errno;
	return rc;
}

int main(void)
{
	TIFFSetErrorHandler(lib_report);
	TIFFSetWarningHandler(lib_report);
	if (!mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_variants();
	test_multipage_and_bigtiff();
	test_orientation();
	test_resolution();
	test_broken();
	CHECK_INT(remove_fixtures(), 0);
	return CHECK_DONE();
}
