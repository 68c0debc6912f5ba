/* PNG decoder (libpng, reading from memory): every colour type and bit depth, Adam7 interlacing,
 * to one 8-bit RGB page. Alpha (including palette and single-colour tRNS transparency) is
 * composited onto white; 16-bit samples are scaled to 8 bits with rounding (png_set_scale_16,
 * v -> round(v / 257)), not truncated. Resolution comes from pHYs, orientation from eXIf.
 * libpng never prints here: its errors longjmp back with their message, and its warnings are
 * raised to errors, because each marks damaged data (a bad ancillary CRC, a text chunk that
 * inflates past the limit below). The page, and so the pixel limit, is created from IHDR before
 * any row buffer exists. iCCP is skipped unread: we do not colour-manage, and skipping it means
 * no profile is ever inflated. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "exif.h"
#include "ingest.h"

/* Inflated size allowed for one ancillary chunk (zTXt, iTXt): far above any real comment, far
 * below what a decompression bomb asks for. */
#define CHUNK_INFLATE_MAX (8u << 20) /* named in error_hint */
/* Text and unknown chunks libpng keeps: a handful in a real file, thousands in a crafted one. */
#define CHUNK_CACHE_MAX 256u

struct png_reader {
	const struct ex_source *src;
	size_t pos;     /* next unread byte of src->data */
	uint8_t *stage; /* rows awaiting conversion to RGB; freed by ex_ingest_png */
	char msg[256];
};

/* libpng's error and warning callback both: records the message and jumps back to decode_png. */
static void reader_fail(png_structp png, png_const_charp msg)
{
	struct png_reader *st = png_get_error_ptr(png);
	snprintf(st->msg, sizeof st->msg, "%s", msg);
	png_longjmp(png, 1);
}

static void reader_read(png_structp png, png_bytep out, size_t n)
{
	struct png_reader *st = png_get_io_ptr(png);
	if (n > st->src->size - st->pos)
		png_error(png, "the file ends early (truncated)");
	memcpy(out, st->src->data + st->pos, n);
	st->pos += n;
}

/* Sets up libpng's transforms so every row comes out as 8-bit gray, gray+alpha, RGB or RGBA. */
static void set_8bit_transforms(png_structp png, png_infop info)
{
	int color_type = png_get_color_type(png, info);
	int depth = png_get_bit_depth(png, info);
	if (color_type == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (png_get_valid(png, info, PNG_INFO_tRNS))
		png_set_tRNS_to_alpha(png);
	if (depth == 16)
		png_set_scale_16(png);
}

/* libpng reports a text chunk that would inflate past CHUNK_INFLATE_MAX exactly as it reports
 * a damaged one ("zTXt: truncated"), so the message names both causes. */
static const char *error_hint(const char *msg)
{
	if (strncmp(msg, "zTXt:", 5) == 0 || strncmp(msg, "iTXt:", 5) == 0)
		return " (a damaged text chunk, or one inflating past the 8 MiB limit)";
	return "";
}

/* Decodes into a new page of `doc`. The setjmp target lives here rather than in the caller, which
 * owns the libpng structs and `st`, so nothing read after a longjmp is a local of this function. */
static int decode_png(const struct ex_source *src, struct ex_doc *doc, png_structp png,
		      png_infop info, struct png_reader *st, vlm_err *err)
{
	if (setjmp(png_jmpbuf(png)))
		return ex_ingest_fail(err, src, 0, EX_REASON_CORRUPT, "png: %s%s", st->msg,
				      error_hint(st->msg));
	png_set_read_fn(png, st, reader_read);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	/* libFuzzer builds only (INTAKE_FUZZ): almost every mutated input would otherwise stop at a
	 * chunk CRC or zlib checksum, and the decoder behind them would go unexplored. */
	png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
	png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
	/* The page limits are ours (ex_doc_page_new, right after IHDR), so libpng's own dimension
	 * limit is opened to the PNG maximum: an over-large image is then refused as too large,
	 * not as corrupt. */
	png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
	png_set_chunk_malloc_max(png, CHUNK_INFLATE_MAX);
	png_set_chunk_cache_max(png, CHUNK_CACHE_MAX);
	png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, (png_const_bytep) "iCCP", 1);
	png_read_info(png, info);

	double dpi_x = 0, dpi_y = 0;
	png_uint_32 ppm_x, ppm_y;
	int unit;
	if (png_get_pHYs(png, info, &ppm_x, &ppm_y, &unit) && unit == PNG_RESOLUTION_METER &&
	    ppm_x > 0 && ppm_y > 0) {
		dpi_x = round(ppm_x * 0.0254 * 100) / 100;
		dpi_y = round(ppm_y * 0.0254 * 100) / 100;
	}
	struct ex_exif exif = { .orientation = 1 };
	png_uint_32 exif_size;
	png_bytep exif_data;
	if (png_get_eXIf_1(png, info, &exif_size, &exif_data))
		ex_exif_parse(exif_data, exif_size, &exif);

	/* libpng reads IHDR dimensions as 31-bit values, so they fit in int. */
	png_uint_32 width = png_get_image_width(png, info);
	png_uint_32 height = png_get_image_height(png, info);
	struct ex_page *page;
	int rc = ex_doc_page_new(doc, src, (int)width, (int)height, dpi_x, dpi_y, &page, err);
	if (rc < 0)
		return rc;

	set_8bit_transforms(png, info);
	int passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);
	size_t w = width, h = height, channels = png_get_channels(png, info);
	if (png_get_rowbytes(png, info) != w * channels)
		return ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL,
				      "png: unexpected row layout after conversion");

	/* Gray and RGB rows are decoded straight into the page raster (gray is widened in place);
	 * rows with alpha go through `stage`: one row, or the whole image when Adam7 passes must
	 * build each row up over seven calls. */
	bool direct = channels == 1 || channels == 3;
	size_t stage_rows = passes > 1 ? h : 1;
	if (!direct && !(st->stage = malloc(stage_rows * w * channels)))
		return ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL,
				      "out of memory for %zux%zu pixels", w, h);
	for (int pass = 0; pass < passes; pass++) {
		for (size_t y = 0; y < h; y++) {
			uint8_t *rgb = page->rgb + y * w * 3;
			uint8_t *row =
				direct ? rgb : st->stage + (passes > 1 ? y : 0) * w * channels;
			png_read_row(png, row, NULL);
			if (pass < passes - 1) /* the row is complete only after the last pass */
				continue;
			if (channels == 1)
				ex_rgb_from_gray(rgb, row, w);
			else if (channels == 2)
				ex_rgb_from_gray_alpha(rgb, row, w);
			else if (channels == 4)
				ex_rgb_from_rgba(rgb, row, w);
		}
	}
	/* Reading to IEND checks the CRCs of the chunks after the image, and that it is whole. */
	png_read_end(png, NULL);

	rc = ex_page_orient(page, exif.orientation, err);
	if (rc < 0)
		return ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
				      "out of memory applying the EXIF orientation");
	return 0;
}

int ex_ingest_png(const struct ex_source *src, struct ex_doc *doc, vlm_err *err)
{
	struct png_reader st = { .src = src };
	png_structp png =
		png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, reader_fail, reader_fail);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) {
		png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
		return ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL, "png: out of memory");
	}
	int rc = decode_png(src, doc, png, info, &st, err);
	png_destroy_read_struct(&png, &info, NULL);
	free(st.stage);
	return rc;
}
