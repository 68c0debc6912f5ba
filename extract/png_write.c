/* ex_page_write_png: one page as an 8-bit RGB PNG, with pHYs when the page's resolution is known.
 * The file is written to "PATH.tmp", flushed to disk and renamed over PATH, so PATH is either the
 * old file or the whole new one, never a partial write; on failure the temporary file is removed.
 * Does not create directories. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "ex.h"

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

/* Writes `page` to the already open `fp` and flushes it to disk; closes fp in every case. */
static int write_file(const struct ex_page *page, const char *path, FILE *fp, vlm_err *err)
{
	struct writer_err out = {.path = path};
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &out, writer_fail,
						  writer_fail);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	int rc = info ? encode_png(page, fp, png, info, &out, err)
		      : vlm_err_set(err, -ENOMEM, "png_write: '%s': out of memory", path);
	png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
	if (rc == 0 && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
		rc = vlm_err_set(err, -errno, "png_write: '%s': cannot write: %s", path,
				 strerror(errno));
	if (fclose(fp) != 0 && rc == 0)
		rc = vlm_err_set(err, -errno, "png_write: '%s': cannot close: %s", path,
				 strerror(errno));
	return rc;
}

int ex_page_write_png(const struct ex_page *page, const char *path, vlm_err *err)
{
	if (!page->rgb || page->width <= 0 || page->height <= 0)
		return vlm_err_set(err, -EINVAL, "png_write: '%s': page %d has no pixels", path,
				   page->number);
	size_t n = strlen(path) + sizeof ".tmp";
	char *tmp = malloc(n);
	if (!tmp)
		return vlm_err_set(err, -ENOMEM, "png_write: '%s': out of memory", path);
	snprintf(tmp, n, "%s.tmp", path);

	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	FILE *fp = fd < 0 ? NULL : fdopen(fd, "wb");
	if (!fp) {
		rc = vlm_err_set(err, -errno, "png_write: '%s': cannot create: %s", tmp,
				 strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	rc = write_file(page, path, fp, err);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = vlm_err_set(err, -errno, "png_write: '%s': cannot rename '%s' over it: %s",
				 path, tmp, strerror(errno));
out:
	if (rc < 0 && fd >= 0)
		unlink(tmp);
	free(tmp);
	return rc;
}
