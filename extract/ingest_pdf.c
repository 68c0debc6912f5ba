/* PDF decoder: renders every page with poppler-glib + cairo, in-process and from the bytes already in
 * memory, at the DPI that fits the page into limits.pdf_pixel_budget (capped at pdf_max_dpi), and
 * keeps the text layer with one box per word in raster pixels.
 *
 * Poppler honours /Rotate itself: poppler_page_get_size, poppler_page_render and the text layout are
 * all in the upright frame a viewer shows, so nothing here rotates. Poppler's syntax warnings go to
 * g_log (domain "Poppler", level INFO), which GLib drops unless G_MESSAGES_DEBUG asks for them.
 * State lives for one call only (one BGRx scratch surface shared by the pages of one document), so
 * concurrent calls on different documents share nothing of ours. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>
#include <poppler.h>

#include "ingest.h"

/* cairo's RGB24 raster for the page being rendered, grown as pages need and reused between them. */
struct pdf_scratch {
	uint8_t *xrgb;
	size_t cap;
};

static double pdf_page_dpi(const struct ex_limits *lim, double w_pt, double h_pt)
{
	double dpi = 72.0 * sqrt((double)lim->pdf_pixel_budget / (w_pt * h_pt));
	return dpi < lim->pdf_max_dpi ? dpi : lim->pdf_max_dpi;
}

/* Points to whole pixels, rounded down so the page stays within the budget; the epsilon keeps an
 * exact product (612 pt at 150 dpi = 1275 px) from losing a pixel to floating-point error. Values
 * too large for int saturate and are refused by ex_doc_page_new. */
static int pdf_px(double pt, double dpi)
{
	double px = floor(pt * dpi / 72.0 + 1e-6);
	if (!(px >= 1.0))
		return 1;
	return px >= (double)INT_MAX ? INT_MAX : (int)px;
}

/* cairo's RGB24 keeps each pixel in one native-endian uint32 as 0x00RRGGBB. memcpy is the aliasing-
 * safe load; compilers turn it and the byte stores into a straight (vectorisable) loop. */
static void pdf_rgb_from_xrgb(uint8_t *restrict rgb, const uint8_t *restrict xrgb, size_t stride,
			      size_t width, size_t height)
{
	for (size_t y = 0; y < height; y++) {
		const uint8_t *in = xrgb + y * stride;
		uint8_t *out = rgb + y * width * 3;
		for (size_t x = 0; x < width; x++) {
			uint32_t p;
			memcpy(&p, in + 4 * x, 4);
			out[3 * x] = (uint8_t)(p >> 16);
			out[3 * x + 1] = (uint8_t)(p >> 8);
			out[3 * x + 2] = (uint8_t)p;
		}
	}
}

static int pdf_page_render(const struct ex_source *src, PopplerPage *pp, struct ex_page *page,
			   struct pdf_scratch *scratch, vlm_err *err)
{
	int stride = cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, page->width);
	if (stride <= 0)
		return ex_ingest_fail(err, src, page->number, EX_REASON_PAGE_TOO_LARGE,
				      "%d pixels wide is too wide for cairo", page->width);
	size_t need = (size_t)stride * (size_t)page->height;
	if (need > scratch->cap) {
		free(scratch->xrgb);
		scratch->xrgb = malloc(need);
		scratch->cap = scratch->xrgb ? need : 0;
		if (!scratch->xrgb)
			return ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
					      "out of memory for a %dx%d render surface",
					      page->width, page->height);
	}
	/* The page is drawn onto white paper, as a viewer shows it. */
	memset(scratch->xrgb, 0xff, need);
	cairo_surface_t *surface = cairo_image_surface_create_for_data(
		scratch->xrgb, CAIRO_FORMAT_RGB24, page->width, page->height, stride);
	cairo_t *cr = cairo_create(surface);
	cairo_scale(cr, page->dpi_x / 72.0, page->dpi_y / 72.0);
	poppler_page_render(pp, cr);
	cairo_status_t status = cairo_status(cr);
	cairo_destroy(cr);
	cairo_surface_flush(surface);
	cairo_surface_destroy(surface);
	if (status == CAIRO_STATUS_NO_MEMORY)
		return ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
				      "out of memory while rendering");
	if (status != CAIRO_STATUS_SUCCESS)
		return ex_ingest_fail(err, src, page->number, EX_REASON_CORRUPT,
				      "rendering failed: %s", cairo_status_to_string(status));
	pdf_rgb_from_xrgb(page->rgb, scratch->xrgb, (size_t)stride, (size_t)page->width,
			  (size_t)page->height);
	return 0;
}

/* Splits the page text into words at whitespace. rects[i] is the box, in points of the upright
 * page with the origin top-left, of the i-th character of `text` (poppler's contract between
 * poppler_page_get_text and poppler_page_get_text_layout); a word's box is the union of its
 * characters' boxes, scaled to pixels. Characters without a box end the words. */
static int pdf_page_words(const struct ex_source *src, struct ex_page *page, const char *text,
			  const char *end, const PopplerRectangle *rects, size_t n_rects,
			  vlm_err *err)
{
	/* Every word but the last is followed by a space, so words <= (characters + 1) / 2. */
	size_t cap = (n_rects + 1) / 2;
	if (cap == 0)
		return 0;
	page->words = calloc(cap, sizeof *page->words);
	if (!page->words)
		return ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
				      "out of memory for %zu words", cap);
	double sx = page->dpi_x / 72.0, sy = page->dpi_y / 72.0;
	const char *p = text;
	size_t ci = 0; /* character index of p */
	while (p < end && ci < n_rects) {
		if (g_unichar_isspace(g_utf8_get_char(p))) {
			p = g_utf8_next_char(p);
			ci++;
			continue;
		}
		const char *start = p;
		PopplerRectangle box = rects[ci];
		while (p < end && ci < n_rects && !g_unichar_isspace(g_utf8_get_char(p))) {
			const PopplerRectangle *r = &rects[ci];
			box.x1 = fmin(box.x1, r->x1);
			box.y1 = fmin(box.y1, r->y1);
			box.x2 = fmax(box.x2, r->x2);
			box.y2 = fmax(box.y2, r->y2);
			p = g_utf8_next_char(p);
			ci++;
		}
		char *word = strndup(start, (size_t)(p - start));
		if (!word)
			return ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
					      "out of memory for a word");
		page->words[page->n_words++] = (struct ex_word){
			.text = word,
			.x0 = box.x1 * sx,
			.y0 = box.y1 * sy,
			.x1 = box.x2 * sx,
			.y1 = box.y2 * sy,
		};
	}
	return 0;
}

/* Fills page->text and page->words. Only the valid UTF-8 prefix of poppler's text is kept, so
 * readers of page->text and the word walk above never step past a malformed sequence. */
static int pdf_page_text(const struct ex_source *src, PopplerPage *pp, struct ex_page *page,
			 vlm_err *err)
{
	char *text = poppler_page_get_text(pp);
	if (!text)
		return 0;
	const char *end = NULL;
	g_utf8_validate(text, -1, &end);
	PopplerRectangle *rects = NULL;
	guint n_rects = 0;
	int rc = 0;
	page->text = strndup(text, (size_t)(end - text));
	if (!page->text) {
		rc = ex_ingest_fail(err, src, page->number, EX_REASON_INTERNAL,
				    "out of memory for the text layer");
		goto out;
	}
	if (poppler_page_get_text_layout(pp, &rects, &n_rects))
		rc = pdf_page_words(src, page, text, end, rects, n_rects, err);
out:
	g_free(rects);
	g_free(text);
	return rc;
}

static int pdf_page_load(const struct ex_source *src, struct ex_doc *doc, PopplerPage *pp,
			 int number, struct pdf_scratch *scratch, vlm_err *err)
{
	double w_pt = 0, h_pt = 0;
	poppler_page_get_size(pp, &w_pt, &h_pt);
	if (!(w_pt > 0 && h_pt > 0 && isfinite(w_pt * h_pt)))
		return ex_ingest_fail(err, src, number, EX_REASON_CORRUPT,
				      "invalid page size %gx%g pt", w_pt, h_pt);
	double dpi = pdf_page_dpi(src->limits, w_pt, h_pt);
	struct ex_page *page = NULL;
	int rc = ex_doc_page_new(doc, src, pdf_px(w_pt, dpi), pdf_px(h_pt, dpi), dpi, dpi, &page,
				 err);
	if (rc == 0)
		rc = pdf_page_render(src, pp, page, scratch, err);
	if (rc == 0)
		rc = pdf_page_text(src, pp, page, err);
	return rc;
}

static int pdf_open_fail(const struct ex_source *src, const GError *gerr, vlm_err *err)
{
	const char *why = gerr ? gerr->message : "poppler cannot open it";
	if (gerr && gerr->domain == POPPLER_ERROR && gerr->code == POPPLER_ERROR_ENCRYPTED)
		return ex_ingest_fail(err, src, 0, EX_REASON_ENCRYPTED,
				      "a password is needed to open it (%s)", why);
	return ex_ingest_fail(err, src, 0, EX_REASON_CORRUPT, "%s", why);
}

int ex_ingest_pdf(const struct ex_source *src, struct ex_doc *doc, vlm_err *err)
{
	/* Static bytes: src->data outlives the document, which is unreferenced before returning. */
	GBytes *bytes = g_bytes_new_static(src->data, src->size);
	GError *gerr = NULL;
	struct pdf_scratch scratch = { 0 };
	int rc = 0;
	PopplerDocument *pdf = poppler_document_new_from_bytes(bytes, NULL, &gerr);
	if (!pdf) {
		rc = pdf_open_fail(src, gerr, err);
		goto out;
	}
	int n_pages = poppler_document_get_n_pages(pdf);
	if (n_pages <= 0) {
		rc = ex_ingest_fail(err, src, 0, EX_REASON_NO_PAGES, "the document has no pages");
		goto out;
	}
	rc = ex_doc_reserve_pages(doc, src, (size_t)n_pages, err);
	for (int i = 0; i < n_pages && rc == 0; i++) {
		PopplerPage *pp = poppler_document_get_page(pdf, i);
		if (!pp) {
			rc = ex_ingest_fail(err, src, i + 1, EX_REASON_CORRUPT,
					    "poppler cannot read the page object");
			break;
		}
		rc = pdf_page_load(src, doc, pp, i + 1, &scratch, err);
		g_object_unref(pp);
	}
out:
	free(scratch.xrgb);
	if (pdf)
		g_object_unref(pdf);
	if (gerr)
		g_error_free(gerr);
	g_bytes_unref(bytes);
	return rc;
}
