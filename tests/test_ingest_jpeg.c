/* JPEG decoder tests. Every input is generated here with libjpeg's encoder from known smooth
 * content at quality 95; APP1 EXIF segments are built byte by byte. JPEG is lossy, so pixels are
 * compared with a tolerance: mean absolute error <= 3 and maximum <= 24 per sample (chroma is
 * subsampled 2x2 on these gradients). The expected colours are derived here: gray as is, CMYK ink
 * (c, m, y, k) as 255 * (1 - c/255) * (1 - k/255) per channel. EXIF orientations are checked
 * exactly, against the orientation-1 decode of the same entropy-coded data, transformed by the
 * EXIF definitions written out below. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include <jpeglib.h>

#include "check.h"
#include "ex.h"
#include "testfiles.h"
#include "testrefuse.h"

struct jpeg_spec {
	int width, height;
	J_COLOR_SPACE in_space;   /* JCS_GRAYSCALE, JCS_RGB or JCS_CMYK */
	J_COLOR_SPACE jpeg_space; /* JCS_GRAYSCALE, JCS_YCbCr, JCS_CMYK or JCS_YCCK */
	bool progressive, no_jfif;
	int density_unit; /* JFIF: 0 none, 1 dots per inch, 2 dots per cm */
	int x_density, y_density;
	const uint8_t *app1; /* a whole APP1 payload ("Exif\0\0" + TIFF) */
	size_t n_app1;
	const jpeg_scan_info *scans;
	int n_scans;
};

static int components(J_COLOR_SPACE cs)
{
	return cs == JCS_GRAYSCALE ? 1 : cs == JCS_CMYK ? 4 : 3;
}

static struct bytes make_jpeg(const struct jpeg_spec *s, const uint8_t *pixels)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	unsigned char *mem = NULL;
	unsigned long n_mem = 0;
	jpeg_mem_dest(&c, &mem, &n_mem);
	c.image_width = (JDIMENSION)s->width;
	c.image_height = (JDIMENSION)s->height;
	c.in_color_space = s->in_space;
	c.input_components = components(s->in_space);
	jpeg_set_defaults(&c);
	jpeg_set_colorspace(&c, s->jpeg_space); /* CMYK and YCCK get the Adobe marker */
	jpeg_set_quality(&c, 95, TRUE);
	if (s->no_jfif)
		c.write_JFIF_header = FALSE;
	c.density_unit = (UINT8)s->density_unit;
	c.X_density = (UINT16)(s->x_density ? s->x_density : 1);
	c.Y_density = (UINT16)(s->y_density ? s->y_density : 1);
	if (s->progressive)
		jpeg_simple_progression(&c);
	if (s->scans) {
		c.scan_info = s->scans;
		c.num_scans = s->n_scans;
	}
	jpeg_start_compress(&c, TRUE);
	if (s->app1)
		jpeg_write_marker(&c, JPEG_APP0 + 1, s->app1, (unsigned)s->n_app1);
	size_t stride = (size_t)s->width * (size_t)c.input_components;
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(pixels + c.next_scanline * stride);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	struct bytes out = { 0 };
	bytes_append(&out, mem, n_mem);
	free(mem);
	return out;
}

/* Loads `file` as scratch file `name`; returns the document (NULL, with a failed check, if the
 * load failed). */
static struct ex_doc *load(const char *name, const struct bytes *file)
{
	char path[SCRATCH_PATH_SIZE];
	struct ex_doc *doc = NULL;
	vlm_err err = { 0 };
	int rc = ex_doc_load(scratch_write(path, name, file->data, file->size), NULL, &doc, &err);
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		return NULL;
	}
	CHECK_INT(doc->format, EX_FORMAT_JPEG);
	CHECK_INT(doc->n_pages, 1);
	return doc;
}

/* Decodes `file` and checks its size, resolution and pixels against `want` within tolerance. */
static void check_jpeg(const char *name, const struct bytes *file, int width, int height,
		       double dpi_x, double dpi_y, const uint8_t *want)
{
	struct ex_doc *doc = load(name, file);
	if (!doc)
		return;
	const struct ex_page *p = &doc->pages[0];
	CHECK_INT(p->width, width);
	CHECK_INT(p->height, height);
	CHECK_NEAR(p->dpi_x, dpi_x, 1e-9);
	CHECK_NEAR(p->dpi_y, dpi_y, 1e-9);
	if (want && p->width == width && p->height == height) {
		size_t n = (size_t)width * (size_t)height * 3;
		double sum = 0;
		int max = 0;
		for (size_t i = 0; i < n; i++) {
			int d = abs((int)p->rgb[i] - (int)want[i]);
			sum += d;
			max = d > max ? d : max;
		}
		if (sum / (double)n > 3 || max > 24)
			fprintf(stderr, "%s: mean error %.3f, max %d\n", name, sum / (double)n,
				max);
		CHECK(sum / (double)n <= 3);
		CHECK(max <= 24);
	}
	ex_doc_free(doc);
}

enum { W = 64, H = 48 };

/* Smooth RGB content with distinct, asymmetric channels. */
static uint8_t rgb_at(int x, int y, int c)
{
	return (uint8_t)(c == 0 ? 40 + x * 3 : c == 1 ? 30 + y * 4 : 128 + x - y);
}

static void test_gray(void)
{
	uint8_t gray[W * H], want[W * H * 3];
	for (int i = 0; i < W * H; i++) {
		gray[i] = (uint8_t)(20 + (i % W) * 2 + (i / W) * 2);
		want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = gray[i];
	}
	struct jpeg_spec s = {
		.width = W, .height = H, .in_space = JCS_GRAYSCALE, .jpeg_space = JCS_GRAYSCALE
	};
	struct bytes f = make_jpeg(&s, gray);
	check_jpeg("gray.jpg", &f, W, H, 0, 0, want);
	bytes_free(&f);
}

static void test_rgb(bool progressive)
{
	uint8_t rgb[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		rgb[i] = rgb_at(i / 3 % W, i / 3 / W, i % 3);
	struct jpeg_spec s = { .width = W,
			       .height = H,
			       .in_space = JCS_RGB,
			       .jpeg_space = JCS_YCbCr,
			       .progressive = progressive };
	struct bytes f = make_jpeg(&s, rgb);
	check_jpeg(progressive ? "progressive.jpg" : "baseline.jpg", &f, W, H, 0, 0, rgb);
	bytes_free(&f);
}

/* Adobe CMYK stores 255 - ink; YCCK is the same data transformed by the encoder. */
static void test_cmyk(J_COLOR_SPACE jpeg_space)
{
	uint8_t stored[W * H * 4], want[W * H * 3];
	for (int i = 0; i < W * H; i++) {
		int x = i % W, y = i / W;
		double ink[4] = { x * 3, y * 4, 100, x + y };
		for (int c = 0; c < 4; c++)
			stored[4 * i + c] = (uint8_t)(255 - ink[c]);
		for (int c = 0; c < 3; c++)
			want[3 * i + c] =
				(uint8_t)lround(255 * (1 - ink[c] / 255) * (1 - ink[3] / 255));
	}
	struct jpeg_spec s = {
		.width = W, .height = H, .in_space = JCS_CMYK, .jpeg_space = jpeg_space
	};
	struct bytes f = make_jpeg(&s, stored);
	check_jpeg(jpeg_space == JCS_YCCK ? "ycck.jpg" : "cmyk.jpg", &f, W, H, 0, 0, want);
	bytes_free(&f);
}

static void test_jfif_density(void)
{
	uint8_t rgb[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		rgb[i] = rgb_at(i / 3 % W, i / 3 / W, i % 3);
	struct jpeg_spec s = { .width = W,
			       .height = H,
			       .in_space = JCS_RGB,
			       .jpeg_space = JCS_YCbCr,
			       .density_unit = 1,
			       .x_density = 300,
			       .y_density = 150 };
	struct bytes f = make_jpeg(&s, rgb);
	check_jpeg("dpi.jpg", &f, W, H, 300, 150, NULL);
	bytes_free(&f);
	/* 118 and 59 dots per cm are 299.72 and 149.86 dots per inch. */
	s.density_unit = 2, s.x_density = 118, s.y_density = 59;
	f = make_jpeg(&s, rgb);
	check_jpeg("dpcm.jpg", &f, W, H, 299.72, 149.86, NULL);
	bytes_free(&f);
	/* Unit 0 is an aspect ratio only: resolution unknown. */
	s.density_unit = 0;
	f = make_jpeg(&s, rgb);
	check_jpeg("aspect.jpg", &f, W, H, 0, 0, NULL);
	bytes_free(&f);
}

/* What the test EXIF block holds; zero fields are left out. The last three fields damage it. */
struct exif_spec {
	bool big_endian;
	int orientation;
	uint32_t xres[2], yres[2]; /* numerator, denominator */
	int unit;                  /* ResolutionUnit: 2 inch, 3 cm */
	uint32_t bad_ifd_offset;
	uint16_t bad_n_entries;
	uint32_t bad_rational_offset;
};

static void put16(uint8_t *p, unsigned v, bool be)
{
	p[be ? 0 : 1] = (uint8_t)(v >> 8);
	p[be ? 1 : 0] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v, bool be)
{
	for (int i = 0; i < 4; i++)
		p[be ? i : 3 - i] = (uint8_t)(v >> (24 - 8 * i));
}

/* Writes an APP1 payload: "Exif\0\0", a TIFF header, IFD0 with the requested entries in tag
 * order, then the RATIONAL values. Returns its size (out holds at least 128 bytes). */
static size_t build_exif(uint8_t *out, const struct exif_spec *e)
{
	bool be = e->big_endian;
	memcpy(out, "Exif\0\0", 6);
	uint8_t *t = out + 6;
	memcpy(t, be ? "MM\0*" : "II*\0", 4);
	put32(t + 4, e->bad_ifd_offset ? e->bad_ifd_offset : 8, be);
	int n = (e->orientation > 0) + 2 * (e->xres[1] > 0) + (e->unit > 0);
	uint32_t values = 8 + 2 + 12 * (uint32_t)n + 4, next_value = values;
	put16(t + 8, e->bad_n_entries ? e->bad_n_entries : (unsigned)n, be);
	uint8_t *entry = t + 10;
	if (e->orientation > 0) {
		put16(entry, 0x0112, be), put16(entry + 2, 3, be), put32(entry + 4, 1, be);
		put32(entry + 8, 0, be);
		put16(entry + 8, (unsigned)e->orientation, be);
		entry += 12;
	}
	if (e->xres[1] > 0) {
		const uint32_t *res[2] = { e->xres, e->yres };
		for (int i = 0; i < 2; i++) {
			put16(entry, 0x011a + (unsigned)i, be), put16(entry + 2, 5, be);
			put32(entry + 4, 1, be);
			put32(entry + 8,
			      e->bad_rational_offset ? e->bad_rational_offset : next_value, be);
			put32(t + next_value, res[i][0], be);
			put32(t + next_value + 4, res[i][1], be);
			next_value += 8;
			entry += 12;
		}
	}
	if (e->unit > 0) {
		put16(entry, 0x0128, be), put16(entry + 2, 3, be), put32(entry + 4, 1, be);
		put32(entry + 8, 0, be);
		put16(entry + 8, (unsigned)e->unit, be);
		entry += 12;
	}
	put32(entry, 0, be); /* no IFD1 */
	return 6 + next_value;
}

/* The stored pixel shown at (u, v) under EXIF orientation o, for a stored image w x h. Written
 * from the tag's definition (2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
 * 7 transverse, 8 rotate 90 counter-clockwise), independently of ex_page_orient's table. */
static void exif_source(int o, int w, int h, int u, int v, int *sx, int *sy)
{
	switch (o) {
	case 2:
		*sx = w - 1 - u, *sy = v;
		break;
	case 3:
		*sx = w - 1 - u, *sy = h - 1 - v;
		break;
	case 4:
		*sx = u, *sy = h - 1 - v;
		break;
	case 5:
		*sx = v, *sy = u;
		break;
	case 6:
		*sx = v, *sy = h - 1 - u;
		break;
	case 7:
		*sx = w - 1 - v, *sy = h - 1 - u;
		break;
	case 8:
		*sx = w - 1 - v, *sy = u;
		break;
	default:
		*sx = u, *sy = v;
		break;
	}
}

static void test_orientations(void)
{
	enum { OW = 48, OH = 32 };
	uint8_t rgb[OW * OH * 3];
	for (int i = 0; i < OW * OH * 3; i++)
		rgb[i] = rgb_at(i / 3 % OW, i / 3 / OW, i % 3);
	for (int be = 0; be < 2; be++) {
		uint8_t app1[128];
		struct exif_spec e = { .big_endian = be, .orientation = 1 };
		struct jpeg_spec s = { .width = OW,
				       .height = OH,
				       .in_space = JCS_RGB,
				       .jpeg_space = JCS_YCbCr,
				       .density_unit = 1,
				       .x_density = 300,
				       .y_density = 150,
				       .app1 = app1 };
		s.n_app1 = build_exif(app1, &e);
		struct bytes f = make_jpeg(&s, rgb);
		struct ex_doc *ref = load("orient1.jpg", &f);
		bytes_free(&f);
		if (!ref)
			return;
		const struct ex_page *r = &ref->pages[0];
		for (int o = 1; o <= 8; o++) {
			e.orientation = o;
			s.n_app1 = build_exif(app1, &e);
			f = make_jpeg(&s, rgb);
			struct ex_doc *doc = load("orient.jpg", &f);
			bytes_free(&f);
			if (!doc)
				continue;
			const struct ex_page *p = &doc->pages[0];
			bool swap = o >= 5;
			CHECK_INT(p->width, swap ? OH : OW);
			CHECK_INT(p->height, swap ? OW : OH);
			CHECK_NEAR(p->dpi_x, swap ? 150 : 300, 0);
			CHECK_NEAR(p->dpi_y, swap ? 300 : 150, 0);
			int bad = 0;
			for (int v = 0; v < p->height && p->width == (swap ? OH : OW); v++) {
				for (int u = 0; u < p->width; u++) {
					int sx, sy;
					exif_source(o, OW, OH, u, v, &sx, &sy);
					size_t got = (size_t)v * (size_t)p->width + (size_t)u;
					size_t src = (size_t)sy * OW + (size_t)sx;
					bad += memcmp(p->rgb + got * 3, r->rgb + src * 3, 3) != 0;
				}
			}
			if (bad)
				fprintf(stderr, "orientation %d (%s): %d pixels misplaced\n", o,
					be ? "MM" : "II", bad);
			CHECK_INT(bad, 0);
			ex_doc_free(doc);
		}
		ex_doc_free(ref);
	}
}

/* Decodes a small RGB JPEG carrying `e` (and JFIF density `jfif_dpi` when > 0); checks its size
 * and resolution. */
static void check_exif_case(const char *name, const struct exif_spec *e, int jfif_dpi, int width,
			    int height, double dpi_x, double dpi_y)
{
	enum { EW = 16, EH = 8 };
	uint8_t rgb[EW * EH * 3], app1[128];
	for (int i = 0; i < EW * EH * 3; i++)
		rgb[i] = rgb_at(i / 3 % EW, i / 3 / EW, i % 3);
	struct jpeg_spec s = { .width = EW,
			       .height = EH,
			       .in_space = JCS_RGB,
			       .jpeg_space = JCS_YCbCr,
			       .no_jfif = jfif_dpi <= 0,
			       .density_unit = 1,
			       .x_density = jfif_dpi,
			       .y_density = jfif_dpi,
			       .app1 = app1 };
	s.n_app1 = build_exif(app1, e);
	struct bytes f = make_jpeg(&s, rgb);
	check_jpeg(name, &f, width, height, dpi_x, dpi_y, NULL);
	bytes_free(&f);
}

static void test_exif_resolution(void)
{
	/* Without JFIF, EXIF gives the resolution: 200/1 and 600/2 per inch. */
	struct exif_spec e = { .xres = { 200, 1 }, .yres = { 600, 2 }, .unit = 2 };
	check_exif_case("exif_dpi.jpg", &e, 0, 16, 8, 200, 300);
	/* No ResolutionUnit means inches (the TIFF default). */
	e.unit = 0, e.big_endian = true;
	check_exif_case("exif_default_unit.jpg", &e, 0, 16, 8, 200, 300);
	/* Per cm: 100 -> 254 dpi, 59 -> 149.86 dpi. */
	e = (struct exif_spec){ .xres = { 100, 1 }, .yres = { 59, 1 }, .unit = 3 };
	check_exif_case("exif_dpcm.jpg", &e, 0, 16, 8, 254, 149.86);
	/* A JFIF density takes precedence. */
	check_exif_case("jfif_wins.jpg", &e, 96, 16, 8, 96, 96);
}

/* Damaged EXIF never refuses the image: the damaged field is ignored, the rest still applies. */
static void test_exif_damaged(void)
{
	struct exif_spec e = { .orientation = 6, .bad_ifd_offset = 0xfffffff0u };
	check_exif_case("exif_bad_ifd.jpg", &e, 0, 16, 8, 0, 0);
	e = (struct exif_spec){ .big_endian = true, .orientation = 6, .bad_n_entries = 0xffff };
	check_exif_case("exif_bad_count.jpg", &e, 0, 16, 8, 0, 0);
	e = (struct exif_spec){ .orientation = 6,
				.xres = { 300, 1 },
				.yres = { 300, 1 },
				.bad_rational_offset = 0xfffffffcu };
	check_exif_case("exif_bad_rational.jpg", &e, 0, 8, 16, 0, 0);
	e = (struct exif_spec){ .orientation = 9 };
	check_exif_case("exif_bad_orientation.jpg", &e, 0, 16, 8, 0, 0);
}

/* Offset of the first marker FF `code` (SOF0 C0, SOS DA), walking the segments after SOI. */
static size_t find_marker(const struct bytes *f, uint8_t code)
{
	for (size_t off = 2; off + 4 <= f->size;) {
		if (f->data[off] != 0xff)
			break;
		if (f->data[off + 1] == code)
			return off;
		off += 2 + ((size_t)f->data[off + 2] << 8 | f->data[off + 3]);
	}
	abort();
}

static void test_broken(void)
{
	uint8_t rgb[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		rgb[i] = rgb_at(i / 3 % W, i / 3 / W, i % 3);
	struct jpeg_spec s = {
		.width = W, .height = H, .in_space = JCS_RGB, .jpeg_space = JCS_YCbCr
	};
	struct bytes good = make_jpeg(&s, rgb);
	size_t sof = find_marker(&good, 0xc0), sos = find_marker(&good, 0xda);

	/* Cut halfway through the entropy-coded data: libjpeg only warns, and would pad the rest
	 * of the image with grey. */
	struct bytes cut = { 0 };
	bytes_append(&cut, good.data, sos + (good.size - sos) / 2);
	expect_refused("truncated.jpg", &cut, -EBADMSG, EX_REASON_CORRUPT, "Premature end");
	bytes_free(&cut);

	/* A SOF0 segment whose length field is impossible. */
	struct bytes bad = { 0 };
	bytes_append(&bad, good.data, good.size);
	bad.data[sof + 2] = 0, bad.data[sof + 3] = 3;
	expect_refused("bad_header.jpg", &bad, -EBADMSG, EX_REASON_CORRUPT, "jpeg: ");

	/* SOF0 claiming 60000 x 60000: refused from the header, before any image buffer. */
	memcpy(bad.data, good.data, good.size);
	bad.data[sof + 5] = 0xea, bad.data[sof + 6] = 0x60; /* height */
	bad.data[sof + 7] = 0xea, bad.data[sof + 8] = 0x60; /* width */
	expect_refused("huge.jpg", &bad, -E2BIG, EX_REASON_PAGE_TOO_LARGE, "60000x60000");
	bytes_free(&bad);
	bytes_free(&good);
}

/* A valid progressive script of 2080 scans: DC, then every AC coefficient of every component
 * alone, first at Al = 10 and refined bit by bit to 0. Refused by the scan limit. */
static void test_too_many_scans(void)
{
	enum { SW = 16, SH = 16, N_SCANS = 1 + 3 * 63 * 11 };
	static jpeg_scan_info scans[N_SCANS];
	int n = 0;
	scans[n++] = (jpeg_scan_info){ .comps_in_scan = 3, .component_index = { 0, 1, 2 } };
	for (int c = 0; c < 3; c++) {
		for (int k = 1; k <= 63; k++) {
			scans[n++] = (jpeg_scan_info){ 1, { c }, k, k, 0, 10 };
			for (int al = 9; al >= 0; al--)
				scans[n++] = (jpeg_scan_info){ 1, { c }, k, k, al + 1, al };
		}
	}
	uint8_t rgb[SW * SH * 3];
	for (int i = 0; i < SW * SH * 3; i++)
		rgb[i] = rgb_at(i / 3 % SW, i / 3 / SW, i % 3);
	struct jpeg_spec s = { .width = SW,
			       .height = SH,
			       .in_space = JCS_RGB,
			       .jpeg_space = JCS_YCbCr,
			       .scans = scans,
			       .n_scans = n };
	struct bytes f = make_jpeg(&s, rgb);
	expect_refused("scans.jpg", &f, -EBADMSG, EX_REASON_CORRUPT,
		       "more than 1000 progressive scans");
	bytes_free(&f);
}

int main(void)
{
	scratch_init();
	test_gray();
	test_rgb(false);
	test_rgb(true);
	test_cmyk(JCS_CMYK);
	test_cmyk(JCS_YCCK);
	test_jfif_density();
	test_orientations();
	test_exif_resolution();
	test_exif_damaged();
	test_broken();
	test_too_many_scans();
	scratch_done();
	return CHECK_DONE();
}
