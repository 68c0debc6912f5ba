/* Internal interface between ingest.c (sniffing, safe open, limits, the document) and the
 * per-format decoders ingest_pdf.c, ingest_tiff.c, ingest_jpeg.c, ingest_png.c.
 *
 * A decoder reads only from src->data (the whole file, already in memory and size-checked), calls
 * ex_doc_page_new() for each page *before* decoding its pixels (that is where page and pixel limits
 * are enforced, from header dimensions), and reports failures with ex_ingest_fail(). On failure the
 * caller frees the half-built document, so decoders need not undo the pages they added. */
#ifndef EX_INGEST_H
#define EX_INGEST_H

#include "ex.h"

struct ex_source {
	const char *path;
	const uint8_t *data;
	size_t size;
	const struct ex_limits *limits;
};

/* Checks `n_pages` against limits.max_pages (decoders that know the count up front call this
 * before any page is decoded) and reserves room for them. */
int ex_doc_reserve_pages(struct ex_doc *doc, const struct ex_source *src, size_t n_pages,
			 vlm_err *err);

/* Checks width x height against the per-page and total pixel limits, then appends a page with a
 * zeroed (black) RGB raster of that size. *page stays valid until the next call. */
int ex_doc_page_new(struct ex_doc *doc, const struct ex_source *src, int width, int height,
		    double dpi_x, double dpi_y, struct ex_page **page, vlm_err *err);

/* Fills err with "ingest: 'PATH'[ page N]: REASON: DETAIL" and returns the errno that goes with
 * the reason. page <= 0 means the error is not about one page. */
int ex_ingest_fail(vlm_err *err, const struct ex_source *src, int page,
		   enum ex_ingest_reason reason, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Applies a TIFF/EXIF orientation (1..8) to the page raster in place (may swap width and height
 * and the DPI pair). Values outside 1..8 are treated as 1. */
int ex_page_orient(struct ex_page *page, int orientation, vlm_err *err);

/* Pixel conversions shared by the decoders; `n` is a pixel count. */
void ex_rgb_from_gray(uint8_t *rgb, const uint8_t *gray, size_t n);
void ex_rgb_from_gray_alpha(uint8_t *rgb, const uint8_t *ga, size_t n); /* onto white */
void ex_rgb_from_rgba(uint8_t *rgb, const uint8_t *rgba, size_t n);     /* onto white */
/* CMYK as stored by TIFF (0 = no ink) or Adobe's inverted JPEG CMYK (inverted=true). */
void ex_rgb_from_cmyk(uint8_t *rgb, const uint8_t *cmyk, size_t n, bool inverted);

int ex_ingest_pdf(const struct ex_source *src, struct ex_doc *doc, vlm_err *err);
int ex_ingest_tiff(const struct ex_source *src, struct ex_doc *doc, vlm_err *err);
int ex_ingest_jpeg(const struct ex_source *src, struct ex_doc *doc, vlm_err *err);
int ex_ingest_png(const struct ex_source *src, struct ex_doc *doc, vlm_err *err);

#endif
