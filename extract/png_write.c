/* ex_page_write_png: one page as an 8-bit RGB PNG, with pHYs when the page's resolution is known.
 * Written through ex_write_atomic, so PATH is either the old file or the whole new one, never a
 * partial write. Does not create directories. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <png.h>

#include "ex.h"
#include "fsutil.h"

struct writer_err {
	const char *path;
	char msg[256];
};

static void writer_fail(png_structp png, png_const_charp msg)
{
	struct writer_err *out = png_get_error_ptr(png);
	snprintf(out->msg, sizeof out->msg, "%s", msg);
	png_longjmp(png, 1);
}

/* Encodes the page to `fp`; the setjmp target lives here so the caller, which owns the libpng
 * structs and the file, reads no local of this function after a longjmp. */
static int encode_png(const struct ex_page *page, FILE *fp, png_structp png, png_infop info,
		      struct writer_err *out, vlm_err *err)
{
	if (setjmp(png_jmpbuf(png)))
		return vlm_err_set(err, -EIO, "png_write: '%s': %s", out->path, out->msg);
	png_init_io(png, fp);
	png_set_IHDR(png, info, (png_uint_32)page->width, (png_uint_32)page->height, 8,
		     PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	if (page->dpi_x > 0 && page->dpi_y > 0)
		png_set_pHYs(png, info, (png_uint_32)lround(page->dpi_x / 0.0254),
			     (png_uint_32)lround(page->dpi_y / 0.0254), PNG_RESOLUTION_METER);
	png_write_info(png, info);
	for (int y = 0; y < page->height; y++)
		png_write_row(png, page->rgb + (size_t)y * (size_t)page->width * 3);
	png_write_end(png, info);
	return 0;
}

struct png_job {
	const struct ex_page *page;
	const char *path;
};

/* ex_fill_fn: the page as PNG to the temporary file. */
static int fill_png(FILE *fp, void *user, vlm_err *err)
{
	const struct png_job *job = user;
	struct writer_err out = { .path = job->path };
	png_structp png =
		png_create_write_struct(PNG_LIBPNG_VER_STRING, &out, writer_fail, writer_fail);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	int rc = info ? encode_png(job->page, fp, png, info, &out, err)
		      : vlm_err_set(err, -ENOMEM, "png_write: '%s': out of memory", job->path);
	png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
	return rc;
}

int ex_page_write_png(const struct ex_page *page, const char *path, vlm_err *err)
{
	if (!page->rgb || page->width <= 0 || page->height <= 0)
		return vlm_err_set(err, -EINVAL, "png_write: '%s': page %d has no pixels", path,
				   page->number);
	struct png_job job = { page, path };
	return ex_write_atomic(path, fill_png, &job, err);
}
