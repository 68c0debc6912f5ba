/* JPEG decoder (libjpeg-turbo through the libjpeg API): gray, YCbCr/RGB, CMYK and YCCK, baseline
 * and progressive, to one 8-bit RGB page, with its EXIF orientation applied and its resolution
 * taken from the JFIF density or else from EXIF.
 * libjpeg never prints or exits here: its errors longjmp back with their message, and so do its
 * warnings, because a libjpeg warning means damaged data that it would otherwise paint grey. The
 * page (and so the pixel limit) is created from the header alone, before libjpeg allocates any
 * image buffer. Does not read ICC profiles: pixels are passed on as decoded. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "exif.h"
#include "ingest.h"

/* A real progressive file has about ten scans; thousands only make decoding slow (a known way
 * to make libjpeg burn CPU on a small file). */
#define MAX_SCANS 1000

struct decoder_err {
	struct jpeg_error_mgr pub; /* first, so libjpeg's err pointer is also ours */
	struct jpeg_progress_mgr progress;
	jmp_buf jump;
	enum ex_ingest_reason reason;
	char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo)
{
	struct decoder_err *st = (struct decoder_err *)cinfo->err;
	(*cinfo->err->format_message)(cinfo, st->msg);
	switch (cinfo->err->msg_code) {
	case JERR_OUT_OF_MEMORY:
		st->reason = EX_REASON_INTERNAL;
		break;
	case JERR_BAD_PRECISION:
		st->reason = EX_REASON_UNSUPPORTED_VARIANT;
		break;
	default:
		st->reason = EX_REASON_CORRUPT;
		break;
	}
	longjmp(st->jump, 1);
}

/* level < 0 is a warning, the rest are trace messages we do not want. An unknown JFIF version
 * says nothing about the pixels, so it alone is let through. */
static void on_message(j_common_ptr cinfo, int level)
{
	if (level < 0 && cinfo->err->msg_code != JWRN_JFIF_MAJOR)
		on_error(cinfo);
}

static void on_progress(j_common_ptr cinfo)
{
	j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
	if (dinfo->input_scan_number > MAX_SCANS) {
		struct decoder_err *st = (struct decoder_err *)cinfo->err;
		snprintf(st->msg, sizeof st->msg, "more than %d progressive scans", MAX_SCANS);
		st->reason = EX_REASON_CORRUPT;
		longjmp(st->jump, 1);
	}
}

/* The resolution from the JFIF density (unit 1: dots per inch, 2: dots per cm), else from the
 * first APP1 EXIF block, else 0 (unknown); and the EXIF orientation (1 when none). */
static void read_metadata(const struct jpeg_decompress_struct *cinfo, double *dpi_x, double *dpi_y,
			  int *orientation)
{
	struct ex_exif exif = { .orientation = 1 };
	for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
		if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 &&
		    memcmp(m->data, "Exif\0\0", 6) == 0 &&
		    ex_exif_parse(m->data + 6, m->data_length - 6, &exif))
			break;
	}
	*orientation = exif.orientation;
	*dpi_x = exif.dpi_x;
	*dpi_y = exif.dpi_y;
	double per_inch = cinfo->density_unit == 1 ? 1.0 : cinfo->density_unit == 2 ? 2.54 : 0.0;
	if (cinfo->saw_JFIF_marker && per_inch > 0 && cinfo->X_density > 0 &&
	    cinfo->Y_density > 0) {
		*dpi_x = round(cinfo->X_density * per_inch * 100) / 100;
		*dpi_y = round(cinfo->Y_density * per_inch * 100) / 100;
	}
}

/* Decodes into a new page of `doc`. The setjmp target lives here rather than in the caller, which
 * owns `cinfo` and its error manager, so nothing the caller reads after a longjmp is a local of
 * the function that called setjmp. */
static int decode_jpeg(const struct ex_source *src, struct ex_doc *doc,
		       struct jpeg_decompress_struct *cinfo, vlm_err *err)
{
	struct decoder_err *st = (struct decoder_err *)cinfo->err;
	if (setjmp(st->jump))
		return ex_ingest_fail(err, src, 0, st->reason, "jpeg: %s", st->msg);
	jpeg_create_decompress(cinfo); /* keeps cinfo->err, clears the rest */
	cinfo->progress = &st->progress;
	jpeg_mem_src(cinfo, src->data, src->size);
	jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xffff);
	jpeg_read_header(cinfo, TRUE);

	bool cmyk = false;
	switch (cinfo->jpeg_color_space) {
	case JCS_GRAYSCALE:
		cinfo->out_color_space = JCS_GRAYSCALE;
		break;
	case JCS_YCbCr:
	case JCS_RGB:
		cinfo->out_color_space = JCS_RGB;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		cinfo->out_color_space = JCS_CMYK;
		cmyk = true;
		break;
	default:
		return ex_ingest_fail(err, src, 0, EX_REASON_UNSUPPORTED_VARIANT,
				      "jpeg colour space %d with %d components",
				      (int)cinfo->jpeg_color_space, cinfo->num_components);
	}

	double dpi_x, dpi_y;
	int orientation;
	read_metadata(cinfo, &dpi_x, &dpi_y, &orientation);
	/* A SOF holds 16-bit dimensions, so the casts cannot overflow. */
	struct ex_page *page;
	int rc = ex_doc_page_new(doc, src, (int)cinfo->image_width, (int)cinfo->image_height, dpi_x,
				 dpi_y, &page, err);
	if (rc < 0)
		return rc;

	jpeg_start_decompress(cinfo);
	size_t w = (size_t)page->width;
	/* CMYK rows need a 4-byte staging row; libjpeg's pool frees it even after a longjmp. */
	JSAMPARRAY stage = NULL;
	if (cmyk)
		stage = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE,
						    (JDIMENSION)(w * 4), 1);
	while (cinfo->output_scanline < cinfo->output_height) {
		size_t y = cinfo->output_scanline;
		JSAMPROW row = page->rgb + y * w * 3;
		jpeg_read_scanlines(cinfo, cmyk ? stage : &row, 1);
		if (cmyk) /* Adobe writers (the only common CMYK source) store 255 - ink */
			ex_rgb_from_cmyk(row, stage[0], w, cinfo->saw_Adobe_marker);
		else if (cinfo->output_components == 1)
			ex_rgb_from_gray(row, row, w);
	}
	jpeg_finish_decompress(cinfo);

	rc = ex_page_orient(page, orientation, err);
	if (rc < 0)
		return ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
				      "out of memory applying the EXIF orientation");
	return 0;
}

int ex_ingest_jpeg(const struct ex_source *src, struct ex_doc *doc, vlm_err *err)
{
	/* Zeroed so that destroying it is safe even if creating it failed. */
	struct jpeg_decompress_struct cinfo = { 0 };
	struct decoder_err st = { .reason = EX_REASON_CORRUPT };
	cinfo.err = jpeg_std_error(&st.pub);
	st.pub.error_exit = on_error;
	st.pub.emit_message = on_message;
	st.progress.progress_monitor = on_progress;
	int rc = decode_jpeg(src, doc, &cinfo, err);
	jpeg_destroy_decompress(&cinfo);
	return rc;
}
