/* PNG decoder and writer tests. Every input is generated here with libpng's writer (or built
 * chunk by chunk for the broken ones) from known samples; the expected RGB is derived in this file
 * from the PNG specification: 16-bit samples become round(v / 257), low-bit gray is scaled to
 * 0..255, and alpha is composited over white as round((v * a + 255 * (255 - a)) / 255) computed
 * in floating point. Decoding must match exactly. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <sys/stat.h>

#include "check.h"
#include "ex.h"
#include "testpng.h"
#include "testrefuse.h"

struct png_spec {
	int width, height, depth, color_type;
	bool interlaced;
	const png_color *palette; /* PLTE entries, for PNG_COLOR_TYPE_PALETTE */
	int n_palette;
	const uint8_t *trans; /* tRNS alpha per palette entry */
	int n_trans;
	const png_color_16 *trans_color; /* tRNS colour key, for gray and RGB */
	uint32_t ppm_x, ppm_y;           /* pHYs in pixels per metre; 0 for none */
	const uint8_t *exif;             /* eXIf payload */
	uint32_t n_exif;
};

static int spec_channels(const struct png_spec *s)
{
	switch (s->color_type) {
	case PNG_COLOR_TYPE_GRAY_ALPHA:
		return 2;
	case PNG_COLOR_TYPE_RGB:
		return 3;
	case PNG_COLOR_TYPE_RGB_ALPHA:
		return 4;
	default:
		return 1;
	}
}

static void write_to_bytes(png_structp png, png_bytep data, size_t n)
{
	bytes_append(png_get_io_ptr(png), data, n);
}

static void flush_nothing(png_structp png)
{
	(void)png;
}

/* Encodes `samples` (width * height * channels values, each < 2^depth) as a PNG in memory. */
static struct bytes make_png(const struct png_spec *s, const uint16_t *samples)
{
	struct bytes out = { 0 };
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	if (setjmp(png_jmpbuf(png)))
		abort();
	png_set_write_fn(png, &out, write_to_bytes, flush_nothing);
	png_set_IHDR(png, info, (png_uint_32)s->width, (png_uint_32)s->height, s->depth,
		     s->color_type, s->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (s->palette)
		png_set_PLTE(png, info, s->palette, s->n_palette);
	if (s->trans || s->trans_color)
		png_set_tRNS(png, info, s->trans, s->n_trans, s->trans_color);
	if (s->ppm_x)
		png_set_pHYs(png, info, s->ppm_x, s->ppm_y, PNG_RESOLUTION_METER);
	if (s->exif)
		png_set_eXIf_1(png, info, s->n_exif, (png_bytep)s->exif);
	png_write_info(png, info);

	int ch = spec_channels(s);
	size_t row_bytes = ((size_t)s->width * (size_t)ch * (size_t)s->depth + 7) / 8;
	uint8_t *rows = calloc((size_t)s->height, row_bytes);
	png_bytep *ptrs = calloc((size_t)s->height, sizeof *ptrs);
	for (int y = 0; y < s->height; y++) {
		uint8_t *row = rows + (size_t)y * row_bytes;
		ptrs[y] = row;
		for (int i = 0; i < s->width * ch; i++) {
			unsigned v = samples[(size_t)y * (size_t)s->width * (size_t)ch + (size_t)i];
			if (s->depth == 16) {
				row[2 * i] = (uint8_t)(v >> 8);
				row[2 * i + 1] = (uint8_t)v;
			} else if (s->depth == 8) {
				row[i] = (uint8_t)v;
			} else { /* packed, leftmost sample in the high bits */
				int bit = i * s->depth;
				row[bit / 8] |= (uint8_t)(v << (8 - s->depth - bit % 8));
			}
		}
	}
	png_write_image(png, ptrs);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	free(ptrs);
	free(rows);
	return out;
}

static uint8_t over_white(double v, double a)
{
	return (uint8_t)lround((v * a + 255.0 * (255.0 - a)) / 255.0);
}

static uint8_t from16(unsigned v)
{
	return (uint8_t)lround(v / 257.0);
}

/* Loads `bytes` as scratch file `name` and checks size, resolution and every pixel. */
static void check_png(const char *name, const struct bytes *file, int width, int height,
		      double dpi_x, double dpi_y, const uint8_t *want)
{
	char path[SCRATCH_PATH_SIZE];
	struct ex_doc *doc = NULL;
	vlm_err err = { 0 };
	int rc = ex_doc_load(scratch_write(path, name, file->data, file->size), NULL, &doc, &err);
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		return;
	}
	CHECK_INT(doc->format, EX_FORMAT_PNG);
	CHECK_INT(doc->n_pages, 1);
	const struct ex_page *p = &doc->pages[0];
	CHECK_INT(p->number, 1);
	CHECK_INT(p->width, width);
	CHECK_INT(p->height, height);
	CHECK_NEAR(p->dpi_x, dpi_x, 1e-9);
	CHECK_NEAR(p->dpi_y, dpi_y, 1e-9);
	if (p->width == width && p->height == height) {
		size_t n = (size_t)width * (size_t)height * 3, bad = 0;
		for (size_t i = 0; i < n; i++) {
			if (p->rgb[i] != want[i] && bad++ < 3)
				fprintf(stderr, "%s: byte %zu (pixel %zu): got %u, want %u\n", name,
					i, i / 3, p->rgb[i], want[i]);
		}
		CHECK_INT(bad, 0);
	}
	ex_doc_free(doc);
}

static void test_palette_trns(void)
{
	enum { W = 13, H = 7 };
	png_color pal[16];
	uint8_t trans[5] = { 0, 64, 128, 200, 255 }; /* entries 5..15 are opaque */
	for (int i = 0; i < 16; i++)
		pal[i] =
			(png_color){ (uint8_t)(i * 17), (uint8_t)(255 - i * 13), (uint8_t)(i * 7) };
	uint16_t idx[W * H];
	uint8_t want[W * H * 3];
	for (int i = 0; i < W * H; i++) {
		int k = (i % W + 3 * (i / W)) % 16;
		idx[i] = (uint16_t)k;
		double a = k < 5 ? trans[k] : 255;
		want[3 * i] = over_white(pal[k].red, a);
		want[3 * i + 1] = over_white(pal[k].green, a);
		want[3 * i + 2] = over_white(pal[k].blue, a);
	}
	struct png_spec s = { .width = W,
			      .height = H,
			      .depth = 4,
			      .color_type = PNG_COLOR_TYPE_PALETTE,
			      .palette = pal,
			      .n_palette = 16,
			      .trans = trans,
			      .n_trans = 5 };
	struct bytes f = make_png(&s, idx);
	check_png("palette.png", &f, W, H, 0, 0, want);
	bytes_free(&f);
}

static void test_gray(int depth, int width, int height, bool interlaced)
{
	size_t n = (size_t)width * (size_t)height;
	uint16_t *v = malloc(n * sizeof *v);
	uint8_t *want = malloc(n * 3);
	unsigned max = (1u << depth) - 1;
	for (size_t i = 0; i < n; i++) {
		/* At 16 bits pixel i holds i, so 256 x 256 pixels hold every value once. */
		v[i] = depth == 16 ? (uint16_t)i
				   : (uint16_t)((i * 40503u + i / (size_t)width) & max);
		uint8_t g = depth == 16 ? from16(v[i]) : (uint8_t)lround(v[i] * 255.0 / max);
		want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = g;
	}
	struct png_spec s = { .width = width,
			      .height = height,
			      .depth = depth,
			      .color_type = PNG_COLOR_TYPE_GRAY,
			      .interlaced = interlaced };
	struct bytes f = make_png(&s, v);
	char name[64];
	snprintf(name, sizeof name, "gray%d%s.png", depth, interlaced ? "i" : "");
	check_png(name, &f, width, height, 0, 0, want);
	bytes_free(&f);
	free(v);
	free(want);
}

static void test_gray_alpha(void)
{
	enum { W = 16, H = 16 };
	uint16_t v[W * H * 2];
	uint8_t want[W * H * 3];
	for (int i = 0; i < W * H; i++) {
		v[2 * i] = (uint16_t)(i % W * 16);
		v[2 * i + 1] = (uint16_t)(i / W * 17);
		uint8_t g = over_white(v[2 * i], v[2 * i + 1]);
		want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = g;
	}
	struct png_spec s = {
		.width = W, .height = H, .depth = 8, .color_type = PNG_COLOR_TYPE_GRAY_ALPHA
	};
	struct bytes f = make_png(&s, v);
	check_png("gray_alpha.png", &f, W, H, 0, 0, want);
	bytes_free(&f);
}

/* A tRNS colour key makes exactly the pixels of that colour transparent, so they turn white. */
static void test_color_key(bool rgb)
{
	enum { W = 8, H = 4 };
	uint16_t v[W * H * 3];
	uint8_t want[W * H * 3];
	png_color_16 key = { .red = 10, .green = 20, .blue = 30, .gray = 10 };
	int ch = rgb ? 3 : 1;
	for (int i = 0; i < W * H; i++) {
		bool keyed = i % 3 == 0;
		for (int c = 0; c < ch; c++)
			v[i * ch + c] = keyed ? (uint16_t)(10 * (c + 1)) : (uint16_t)(100 + i + c);
		for (int c = 0; c < 3; c++)
			want[i * 3 + c] = keyed ? 255 : (uint8_t)(100 + i + (rgb ? c : 0));
	}
	struct png_spec s = { .width = W,
			      .height = H,
			      .depth = 8,
			      .color_type = rgb ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
			      .trans_color = &key };
	struct bytes f = make_png(&s, v);
	check_png(rgb ? "rgb_key.png" : "gray_key.png", &f, W, H, 0, 0, want);
	bytes_free(&f);
}

/* RGB or RGBA at 8 or 16 bits, optionally interlaced, with smooth but distinct channels. */
static void test_color(bool alpha, int depth, int width, int height, bool interlaced)
{
	int ch = alpha ? 4 : 3;
	size_t n = (size_t)width * (size_t)height;
	uint16_t *v = malloc(n * (size_t)ch * sizeof *v);
	uint8_t *want = malloc(n * 3);
	unsigned max = (1u << depth) - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned x = (unsigned)(i % (size_t)width), y = (unsigned)(i / (size_t)width);
		unsigned s[4] = { x * 2053u + y, y * 4099u + 7 * x, (x * y * 977u) ^ 0x5a5a,
				  (x + y) * 1031u };
		double a = 255;
		if (alpha) {
			v[i * 4 + 3] = (uint16_t)(s[3] & max);
			a = depth == 16 ? from16(v[i * 4 + 3]) : v[i * 4 + 3];
		}
		for (int c = 0; c < 3; c++) {
			v[i * (size_t)ch + (size_t)c] = (uint16_t)(s[c] & max);
			double c8 = depth == 16 ? from16(s[c] & max) : (s[c] & max);
			want[3 * i + (size_t)c] = over_white(c8, a);
		}
	}
	struct png_spec s = { .width = width,
			      .height = height,
			      .depth = depth,
			      .color_type = alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
			      .interlaced = interlaced };
	struct bytes f = make_png(&s, v);
	char name[64];
	snprintf(name, sizeof name, "%s%d%s.png", alpha ? "rgba" : "rgb", depth,
		 interlaced ? "i" : "");
	check_png(name, &f, width, height, 0, 0, want);
	bytes_free(&f);
	free(v);
	free(want);
}

/* A small RGB image whose pixel i is (i, 2i, 3i) mod 256, with optional pHYs and eXIf. */
static struct bytes make_small_rgb(int width, int height, uint32_t ppm_x, uint32_t ppm_y,
				   const uint8_t *exif, uint32_t n_exif, uint8_t *want)
{
	size_t n = (size_t)width * (size_t)height;
	uint16_t *v = malloc(n * 3 * sizeof *v);
	for (size_t i = 0; i < n * 3; i++) {
		v[i] = (uint16_t)((i / 3 * (i % 3 + 1)) & 255);
		if (want)
			want[i] = (uint8_t)v[i];
	}
	struct png_spec s = { .width = width,
			      .height = height,
			      .depth = 8,
			      .color_type = PNG_COLOR_TYPE_RGB,
			      .ppm_x = ppm_x,
			      .ppm_y = ppm_y,
			      .exif = exif,
			      .n_exif = n_exif };
	struct bytes f = make_png(&s, v);
	free(v);
	return f;
}

static void test_phys(void)
{
	uint8_t want[9 * 5 * 3];
	/* 11811 px/m * 0.0254 = 299.9994 -> 300.00 dpi; 5906 px/m -> 150.0124 -> 150.01 dpi. */
	struct bytes f = make_small_rgb(9, 5, 11811, 5906, NULL, 0, want);
	check_png("phys.png", &f, 9, 5, 300.0, 150.01, want);
	bytes_free(&f);
}

/* eXIf with orientation 6 (rotate 90 degrees clockwise to display), big-endian: the displayed
 * pixel (u, v) is the stored pixel (v, H - 1 - u), and the image becomes H wide. */
static void test_exif_orientation(void)
{
	enum { W = 5, H = 3 };
	static const uint8_t exif[] = { 'M',  'M',  0, 42, 0, 0, 0, 8, 0, 1, /* one entry */
					0x01, 0x12, 0, 3,  0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0 };
	uint8_t stored[W * H * 3], want[W * H * 3];
	struct bytes f = make_small_rgb(W, H, 0, 0, exif, sizeof exif, stored);
	for (int v = 0; v < W; v++)
		for (int u = 0; u < H; u++)
			memcpy(want + (v * H + u) * 3, stored + ((H - 1 - u) * W + v) * 3, 3);
	check_png("exif6.png", &f, H, W, 0, 0, want);
	bytes_free(&f);
}

static void test_writer_round_trip(void)
{
	enum { W = 23, H = 11 };
	uint8_t rgb[W * H * 3];
	uint32_t seed = 12345;
	for (size_t i = 0; i < sizeof rgb; i++) {
		seed = seed * 1103515245u + 12345u;
		rgb[i] = (uint8_t)(seed >> 16);
	}
	struct ex_page page = {
		.number = 1, .width = W, .height = H, .dpi_x = 300, .dpi_y = 200, .rgb = rgb
	};
	char path[SCRATCH_PATH_SIZE];
	scratch_path(path, "written.png");
	scratch_write(path, "written.png", "old", 3); /* replaced atomically */
	vlm_err err = { 0 };
	CHECK_INT(ex_page_write_png(&page, path, &err), 0);
	CHECK_INT(scratch_count_suffix(".tmp"), 0);
	struct ex_doc *doc = NULL;
	CHECK_INT(ex_doc_load(path, NULL, &doc, &err), 0);
	if (doc) {
		CHECK_INT(doc->pages[0].width, W);
		CHECK_INT(doc->pages[0].height, H);
		/* pHYs stores whole pixels per metre; the reader rounds back to 2 decimals. */
		CHECK_NEAR(doc->pages[0].dpi_x, 300.0, 1e-9);
		CHECK_NEAR(doc->pages[0].dpi_y, 200.0, 1e-9);
		CHECK(memcmp(doc->pages[0].rgb, rgb, sizeof rgb) == 0);
		ex_doc_free(doc);
	}

	/* A directory in the way: the rename fails and the temporary file is removed. */
	char dir[SCRATCH_PATH_SIZE];
	mkdir(scratch_path(dir, "a-directory"), 0700);
	err = (vlm_err){ 0 };
	CHECK(ex_page_write_png(&page, dir, &err) < 0);
	CHECK_CONTAINS(err.msg, dir);
	CHECK_INT(scratch_count_suffix(".tmp"), 0);

	/* A missing parent directory: nothing is created. */
	err = (vlm_err){ 0 };
	CHECK_INT(ex_page_write_png(&page, scratch_path(path, "missing/x.png"), &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "missing/x.png");
}

/* Byte offset of the first chunk of `type` in a PNG (its length field). */
static size_t find_chunk(const struct bytes *f, const char *type)
{
	for (size_t off = 8; off + 8 <= f->size;) {
		uint32_t n = (uint32_t)f->data[off] << 24 | (uint32_t)f->data[off + 1] << 16 |
			     (uint32_t)f->data[off + 2] << 8 | f->data[off + 3];
		if (memcmp(f->data + off + 4, type, 4) == 0)
			return off;
		off += 12 + n;
	}
	abort();
}

/* A copy of PNG `f` with a chunk inserted after the signature and IHDR (33 bytes). */
static struct bytes with_chunk_after_ihdr(const struct bytes *f, const char *type,
					  const struct bytes *data)
{
	struct bytes out = { 0 };
	bytes_append(&out, f->data, 33);
	put_chunk(&out, type, data->data, (uint32_t)data->size);
	bytes_append(&out, f->data + 33, f->size - 33);
	return out;
}

/* An iCCP profile is skipped unread (no colour management), so even one that would inflate to
 * 256 MiB costs nothing and the image decodes. */
static void test_iccp_skipped(const struct bytes *bomb_stream)
{
	uint8_t want[12 * 6 * 3];
	struct bytes good = make_small_rgb(12, 6, 0, 0, NULL, 0, want);
	struct bytes iccp = { 0 };
	bytes_append(&iccp, "Profile\0\0", 9); /* name, NUL, compression method 0 */
	bytes_append(&iccp, bomb_stream->data, bomb_stream->size);
	struct bytes f = with_chunk_after_ihdr(&good, "iCCP", &iccp);
	check_png("iccp.png", &f, 12, 6, 0, 0, want);
	bytes_free(&f);
	bytes_free(&iccp);
	bytes_free(&good);
}

static void test_broken(const struct bytes *bomb_stream)
{
	struct bytes good = make_small_rgb(40, 30, 0, 0, NULL, 0, NULL);

	struct bytes cut = { 0 };
	bytes_append(&cut, good.data, good.size / 2);
	expect_refused("truncated.png", &cut, -EBADMSG, EX_REASON_CORRUPT, "truncated");
	bytes_free(&cut);

	struct bytes bad_crc = { 0 };
	bytes_append(&bad_crc, good.data, good.size);
	size_t idat = find_chunk(&good, "IDAT");
	uint32_t idat_len = (uint32_t)good.data[idat] << 24 | (uint32_t)good.data[idat + 1] << 16 |
			    (uint32_t)good.data[idat + 2] << 8 | good.data[idat + 3];
	bad_crc.data[idat + 8 + idat_len + 3] ^= 0x01; /* last byte of the IDAT CRC */
	expect_refused("bad_crc.png", &bad_crc, -EBADMSG, EX_REASON_CORRUPT, "CRC");
	bytes_free(&bad_crc);

	/* IHDR 100000 x 100000, then a token IDAT: refused from the header, nothing decoded. */
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	static const uint8_t ihdr[13] = { 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0 };
	struct bytes huge = { 0 };
	bytes_append(&huge, sig, 8);
	put_chunk(&huge, "IHDR", ihdr, 13);
	put_chunk(&huge, "IDAT", "\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
	put_chunk(&huge, "IEND", NULL, 0);
	expect_refused("huge.png", &huge, -E2BIG, EX_REASON_PAGE_TOO_LARGE, "100000x100000");
	bytes_free(&huge);

	/* A zTXt chunk of about 250 KiB that inflates to 256 MiB of zeros, before the IDAT. */
	struct bytes ztxt = { 0 };
	bytes_append(&ztxt, "Comment\0\0", 9); /* keyword, NUL, compression method 0 */
	bytes_append(&ztxt, bomb_stream->data, bomb_stream->size);
	struct bytes bomb = with_chunk_after_ihdr(&good, "zTXt", &ztxt);
	expect_refused("bomb.png", &bomb, -EBADMSG, EX_REASON_CORRUPT, "zTXt");
	expect_refused("bomb.png", &bomb, -EBADMSG, EX_REASON_CORRUPT, "8 MiB");
	bytes_free(&bomb);
	bytes_free(&ztxt);
	bytes_free(&good);
}

int main(void)
{
	scratch_init();
	test_palette_trns();
	test_gray(1, 17, 5, false);
	test_gray(8, 16, 16, false);
	test_gray(16, 256, 256, false); /* every 16-bit value once */
	test_gray(8, 37, 23, true);
	test_gray_alpha();
	test_color_key(false);
	test_color_key(true);
	test_color(false, 8, 20, 10, false);
	test_color(true, 8, 16, 16, false);
	test_color(false, 16, 32, 8, false);
	test_color(true, 16, 9, 9, false);
	test_color(true, 8, 37, 23, true);
	test_phys();
	test_exif_orientation();
	test_writer_round_trip();
	struct bytes bomb_stream = { 0 }; /* 256 MiB of zeros, deflated */
	append_zeros_deflated(&bomb_stream, 256);
	test_broken(&bomb_stream);
	test_iccp_skipped(&bomb_stream);
	bytes_free(&bomb_stream);
	scratch_done();
	return CHECK_DONE();
}
