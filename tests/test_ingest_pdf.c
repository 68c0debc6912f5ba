/* Tests for the PDF decoder through ex_doc_load: page sizes and DPI under the default and a custom
 * pixel budget, pixel colours of known drawings, the text layer and its word boxes, /Rotate, and
 * one specific refusal reason per kind of broken input. Inputs are generated into a temporary
 * directory: multi-page documents with cairo's PDF surface, and hand-written PDFs (Helvetica text
 * objects need no font file) whose xref offsets are computed here. Expected sizes and positions
 * are derived by hand in the comments, from the page sizes and the Helvetica AFM widths. */
#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "check.h"
#include "ex.h"

static char tmpdir[64];
static char paths[16][128];
static int n_paths;

/* A path in the temporary directory, remembered for removal at the end. */
static const char *tmp_path(const char *name)
{
	char *p = paths[n_paths++];
	snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
	return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
}

/* ---- a hand-written PDF: numbered objects, then an xref table with their byte offsets ---- */

struct pdfw {
	char buf[8192];
	size_t len;
	size_t offs[16];
	int n_objs;
};

static void pw_printf(struct pdfw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pw_printf(struct pdfw *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->buf + w->len, sizeof w->buf - w->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof w->buf - w->len) {
		fprintf(stderr, "test pdf buffer too small\n");
		exit(1);
	}
	w->len += (size_t)n;
}

static void pw_begin(struct pdfw *w)
{
	w->len = 0;
	w->n_objs = 0;
	pw_printf(w, "%%PDF-1.4\n");
}

/* Appends object n_objs + 1 with the given body. */
static void pw_obj(struct pdfw *w, const char *body)
{
	w->offs[w->n_objs++] = w->len;
	pw_printf(w, "%d 0 obj\n%s\nendobj\n", w->n_objs, body);
}

static void pw_stream(struct pdfw *w, const char *content)
{
	w->offs[w->n_objs++] = w->len;
	pw_printf(w, "%d 0 obj\n<< /Length %zu >>\nstream\n%s\nendstream\nendobj\n", w->n_objs,
		  strlen(content), content);
}

/* Object 1 is always the catalog. */
static void pw_end(struct pdfw *w, const char *trailer_extra)
{
	size_t xref = w->len;
	pw_printf(w, "xref\n0 %d\n0000000000 65535 f \n", w->n_objs + 1);
	for (int i = 0; i < w->n_objs; i++)
		pw_printf(w, "%010zu 00000 n \n", w->offs[i]);
	pw_printf(w, "trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%zu\n%%%%EOF\n",
		  w->n_objs + 1, trailer_extra, xref);
}

/* One 200 x 100 pt page turned by /Rotate: a red 20 x 20 pt square in the unrotated page's
 * bottom-left corner, and "Hello World" in 12 pt Helvetica with its baseline at (30, 40) in PDF
 * coordinates (y up), i.e. 60 pt from the top. `count` is the page tree's /Count. */
static void pw_one_page(struct pdfw *w, int rotate, int count)
{
	char obj[256];
	pw_begin(w);
	pw_obj(w, "<< /Type /Catalog /Pages 2 0 R >>");
	snprintf(obj, sizeof obj, "<< /Type /Pages /Kids [3 0 R] /Count %d >>", count);
	pw_obj(w, obj);
	snprintf(obj, sizeof obj,
		 "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Rotate %d /Contents 4 0 R "
		 "/Resources << /Font << /F1 5 0 R >> >> >>",
		 rotate);
	pw_obj(w, obj);
	pw_stream(w, "1 0 0 rg 0 0 20 20 re f BT /F1 12 Tf 30 40 Td (Hello World) Tj ET");
	pw_obj(w, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
}

static const char *write_pw(struct pdfw *w, const char *name)
{
	const char *path = tmp_path(name);
	write_bytes(path, w->buf, w->len);
	return path;
}

/* ---- a three-page document drawn with cairo, each page a solid block on white ---- */

struct block {
	double page_w, page_h; /* points */
	double x0, y0, x1, y1; /* points, origin top-left */
	uint8_t r, g, b;
};

static const struct block blocks[3] = {
	{ 612, 792, 100, 100, 300, 200, 255, 0, 0 }, /* US Letter, red */
	{ 300, 200, 50, 20, 150, 120, 0, 0, 255 },   /* landscape, blue */
	{ 200, 300, 20, 200, 80, 280, 0, 255, 0 },   /* portrait, green */
};

static const char *write_blocks_pdf(void)
{
	const char *path = tmp_path("blocks.pdf");
	cairo_surface_t *s = cairo_pdf_surface_create(path, blocks[0].page_w, blocks[0].page_h);
	cairo_t *cr = cairo_create(s);
	for (int i = 0; i < 3; i++) {
		const struct block *b = &blocks[i];
		cairo_pdf_surface_set_size(s, b->page_w, b->page_h);
		cairo_set_source_rgb(cr, b->r / 255.0, b->g / 255.0, b->b / 255.0);
		cairo_rectangle(cr, b->x0, b->y0, b->x1 - b->x0, b->y1 - b->y0);
		cairo_fill(cr);
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(s);
	CHECK_INT(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
	cairo_surface_destroy(s);
	return path;
}

static void check_rgb(const struct ex_page *p, int x, int y, uint8_t r, uint8_t g, uint8_t b,
		      int line)
{
	if (x < 0 || y < 0 || x >= p->width || y >= p->height) {
		fprintf(stderr, "line %d: (%d,%d) outside %dx%d\n", line, x, y, p->width,
			p->height);
		check_failures++;
		return;
	}
	const uint8_t *px = p->rgb + ((size_t)y * (size_t)p->width + (size_t)x) * 3;
	if (px[0] != r || px[1] != g || px[2] != b) {
		fprintf(stderr, "line %d: page %d pixel (%d,%d) is %u,%u,%u, want %u,%u,%u\n", line,
			p->number, x, y, px[0], px[1], px[2], r, g, b);
		check_failures++;
	}
}
#define CHECK_RGB(p, x, y, r, g, b) check_rgb(p, x, y, r, g, b, __LINE__)

/* Samples the block's centre and points 10 pt outside each of its sides, at `dpi`. */
static void check_block(const struct ex_page *p, const struct block *b, double dpi)
{
	double s = dpi / 72.0;
	double cx = (b->x0 + b->x1) / 2, cy = (b->y0 + b->y1) / 2;
	CHECK_RGB(p, (int)(cx * s), (int)(cy * s), b->r, b->g, b->b);
	CHECK_RGB(p, (int)((b->x0 + 2) * s), (int)((b->y0 + 2) * s), b->r, b->g, b->b);
	CHECK_RGB(p, (int)((b->x1 - 2) * s), (int)((b->y1 - 2) * s), b->r, b->g, b->b);
	CHECK_RGB(p, (int)((b->x0 - 10) * s), (int)(cy * s), 255, 255, 255);
	CHECK_RGB(p, (int)((b->x1 + 10) * s), (int)(cy * s), 255, 255, 255);
	CHECK_RGB(p, (int)(cx * s), (int)((b->y0 - 10) * s), 255, 255, 255);
	CHECK_RGB(p, (int)(cx * s), (int)((b->y1 + 10) * s), 255, 255, 255);
	CHECK_RGB(p, p->width - 1, p->height - 1, 255, 255, 255);
}

static void check_page(const struct ex_page *p, int number, int w, int h, double dpi)
{
	CHECK_INT(p->number, number);
	CHECK_INT(p->width, w);
	CHECK_INT(p->height, h);
	CHECK_NEAR(p->dpi_x, dpi, 0.001);
	CHECK_NEAR(p->dpi_y, dpi, 0.001);
}

/* dpi = min(max_dpi, 72 sqrt(budget / (w_pt h_pt))), pixels = floor(points * dpi / 72). */
static void test_blocks_default_budget(const char *path)
{
	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	CHECK_INT(ex_doc_load(path, NULL, &doc, &err), 0);
	if (!doc) {
		fprintf(stderr, "%s\n", err.msg);
		check_failures++;
		return;
	}
	CHECK_INT(doc->format, EX_FORMAT_PDF);
	CHECK_INT(doc->n_pages, 3);
	/* Letter: 72 sqrt(2e6 / 484704) = 146.2545 dpi; 612 pt -> 1243.16 px, 792 pt -> 1608.80 */
	check_page(&doc->pages[0], 1, 1243, 1608, 146.2545);
	/* 300 x 200 pt wants 415.7 dpi, capped at 300: 1250 x 833.3 px */
	check_page(&doc->pages[1], 2, 1250, 833, 300);
	check_page(&doc->pages[2], 3, 833, 1250, 300);
	check_block(&doc->pages[0], &blocks[0], 146.2545);
	check_block(&doc->pages[1], &blocks[1], 300);
	check_block(&doc->pages[2], &blocks[2], 300);
	/* Pure vector drawing: a text layer with no words. */
	CHECK_STR(doc->pages[0].text, "");
	CHECK_INT(doc->pages[0].n_words, 0);
	ex_doc_free(doc);
}

static void test_blocks_custom_budget(const char *path)
{
	struct ex_limits lim;
	ex_limits_default(&lim);
	lim.pdf_pixel_budget = 500000;
	lim.pdf_max_dpi = 100;
	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	CHECK_INT(ex_doc_load(path, &lim, &doc, &err), 0);
	if (!doc)
		return;
	CHECK_INT(doc->n_pages, 3);
	/* Letter: 72 sqrt(5e5 / 484704) = 73.1272 dpi: 621.58 x 804.40 px */
	check_page(&doc->pages[0], 1, 621, 804, 73.1272);
	/* 300 x 200 pt wants 207.8 dpi, capped at 100: 416.7 x 277.8 px */
	check_page(&doc->pages[1], 2, 416, 277, 100);
	check_page(&doc->pages[2], 3, 277, 416, 100);
	check_block(&doc->pages[0], &blocks[0], 73.1272);
	check_block(&doc->pages[1], &blocks[1], 100);
	check_block(&doc->pages[2], &blocks[2], 100);
	ex_doc_free(doc);
}

/* Expected word boxes in points of the upright page, origin top-left, for the text of
 * pw_one_page. Helvetica AFM widths (per 1000 em): H 722 e 556 l 222 o 556 space 278 W 944 r 333
 * d 556, at 12 pt: "Hello" spans 30 .. 57.336, "World" 60.672 .. 92.004; the baseline is 60 pt from
 * the top of the unrotated page, the glyph box reaches less than 12 pt above and 6 pt below it. */
struct span {
	double x0, x1; /* along the text, unrotated x */
};
static const struct span hello = { 30, 57.336 }, world = { 60.672, 92.004 };

/* Checks a word against its expected place. In the unrotated frame (W x H = 200 x 100 pt) a
 * point (x, y) appears after /Rotate 90 at (H - y, x), after 180 at (W - x, H - y), after 270 at
 * (y, W - x). */
static void check_word(const struct ex_page *p, size_t i, const char *text, struct span sp,
		       int rotate)
{
	if (i >= p->n_words) {
		fprintf(stderr, "page has %zu words, want word %zu '%s'\n", p->n_words, i, text);
		check_failures++;
		return;
	}
	const struct ex_word *w = &p->words[i];
	double s = p->dpi_x / 72.0, base = 60, tol = 0.5 * s;
	CHECK_STR(w->text, text);
	switch (rotate) {
	case 0:
		CHECK_NEAR(w->x0, sp.x0 * s, tol);
		CHECK_NEAR(w->x1, sp.x1 * s, tol);
		CHECK(w->y0 > (base - 12) * s && w->y0 < base * s);
		CHECK(w->y1 > base * s && w->y1 < (base + 6) * s);
		break;
	case 90:
		CHECK_NEAR(w->y0, sp.x0 * s, tol);
		CHECK_NEAR(w->y1, sp.x1 * s, tol);
		CHECK(w->x0 > (100 - base - 6) * s && w->x0 < (100 - base) * s);
		CHECK(w->x1 > (100 - base) * s && w->x1 < (100 - base + 12) * s);
		break;
	case 270:
		CHECK_NEAR(w->y0, (200 - sp.x1) * s, tol);
		CHECK_NEAR(w->y1, (200 - sp.x0) * s, tol);
		CHECK(w->x0 > (base - 12) * s && w->x0 < base * s);
		CHECK(w->x1 > base * s && w->x1 < (base + 6) * s);
		break;
	default:
		CHECK(!"rotation not covered");
	}
}

/* Default budget: 200 x 100 pt wants 720 dpi, capped at 300: 833 x 416 px, turned for 90/270. The
 * red square (83 px) sits bottom-left unrotated, top-left after 90, bottom-right after 270. */
static void test_rotation(int rotate)
{
	struct pdfw w;
	char name[32];
	snprintf(name, sizeof name, "rotate%d.pdf", rotate);
	pw_one_page(&w, rotate, 1);
	pw_end(&w, "");
	const char *path = write_pw(&w, name);
	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	CHECK_INT(ex_doc_load(path, NULL, &doc, &err), 0);
	if (!doc) {
		fprintf(stderr, "%s\n", err.msg);
		check_failures++;
		return;
	}
	CHECK_INT(doc->n_pages, 1);
	const struct ex_page *p = &doc->pages[0];
	bool turned = rotate == 90 || rotate == 270;
	check_page(p, 1, turned ? 416 : 833, turned ? 833 : 416, 300);
	int W = p->width, H = p->height, m = 20; /* m: a sample 20 px (4.8 pt) inside a corner */
	bool tl = rotate == 90, br = rotate == 270, bl = rotate == 0;
	uint8_t v;
	v = tl ? 0 : 255;
	CHECK_RGB(p, m, m, 255, v, v);
	v = br ? 0 : 255;
	CHECK_RGB(p, W - m, H - m, 255, v, v);
	v = bl ? 0 : 255;
	CHECK_RGB(p, m, H - m, 255, v, v);
	CHECK_RGB(p, W - m, m, 255, 255, 255);
	CHECK_STR(p->text, "Hello World");
	CHECK_INT(p->n_words, 2);
	check_word(p, 0, "Hello", hello, rotate);
	check_word(p, 1, "World", world, rotate);
	ex_doc_free(doc);
}

/* Loads `path` expecting a refusal with `reason`, errno `code` and a message naming the file and
 * containing `detail`. */
static void expect_refusal(const char *path, const struct ex_limits *lim, int code,
			   enum ex_ingest_reason reason, const char *detail, int line)
{
	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	int rc = ex_doc_load(path, lim, &doc, &err);
	if (rc != code || err.reason != (int)reason || doc != NULL) {
		fprintf(stderr, "line %d: %s: rc %d reason %d (%s), want rc %d reason %d\n", line,
			path, rc, err.reason, err.msg, code, (int)reason);
		check_failures++;
	}
	CHECK_INT(err.code, code);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, detail);
	ex_doc_free(doc);
}
#define EXPECT_REFUSAL(path, lim, code, reason, detail) \
	expect_refusal(path, lim, code, reason, detail, __LINE__)

static void test_broken_inputs(const char *blocks_path)
{
	struct pdfw w;

	pw_begin(&w);
	pw_obj(&w, "<< /Type /Catalog /Pages 2 0 R >>");
	pw_obj(&w, "<< /Type /Pages /Kids [] /Count 0 >>");
	pw_end(&w, "");
	EXPECT_REFUSAL(write_pw(&w, "zero.pdf"), NULL, -EBADMSG, EX_REASON_NO_PAGES, "no pages");

	/* Standard security handler, RC4 40-bit: the empty user password does not match /U. */
	pw_one_page(&w, 0, 1);
	pw_obj(&w, "<< /Filter /Standard /V 1 /R 2 /P -4 "
		   "/O <0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef> "
		   "/U <fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210> >>");
	pw_end(&w, "/Encrypt 6 0 R /ID [<00112233445566778899aabbccddeeff> "
		   "<00112233445566778899aabbccddeeff>] ");
	EXPECT_REFUSAL(write_pw(&w, "encrypted.pdf"), NULL, -EACCES, EX_REASON_ENCRYPTED,
		       "encrypted");

	static const char garbage[] = "%PDF-1.4\n\x93\x01 this is not a PDF body at all \xff\xfe\n";
	const char *path = tmp_path("garbage.pdf");
	write_bytes(path, garbage, sizeof garbage - 1);
	EXPECT_REFUSAL(path, NULL, -EBADMSG, EX_REASON_CORRUPT, "corrupt");

	/* Cut inside the page tree: no xref, no trailer, and the catalog's /Pages target is gone. */
	pw_one_page(&w, 0, 1);
	pw_end(&w, "");
	path = tmp_path("truncated.pdf");
	write_bytes(path, w.buf, w.offs[1] + 10);
	EXPECT_REFUSAL(path, NULL, -EBADMSG, EX_REASON_CORRUPT, "corrupt");

	/* The page tree promises two pages and holds one: page 2 cannot be loaded. */
	pw_one_page(&w, 0, 2);
	pw_end(&w, "");
	EXPECT_REFUSAL(write_pw(&w, "missing_page.pdf"), NULL, -EBADMSG, EX_REASON_CORRUPT,
		       "page 2");

	struct ex_limits lim;
	ex_limits_default(&lim);
	lim.max_pages = 2;
	EXPECT_REFUSAL(blocks_path, &lim, -E2BIG, EX_REASON_TOO_MANY_PAGES, "3 pages");

	/* Page 1 at the default budget is 1243 x 1608 px = 2.0 MP. */
	ex_limits_default(&lim);
	lim.max_page_pixels = 1000000;
	EXPECT_REFUSAL(blocks_path, &lim, -E2BIG, EX_REASON_PAGE_TOO_LARGE, "page 1");
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ingest_pdf.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	const char *blocks_path = write_blocks_pdf();
	test_blocks_default_budget(blocks_path);
	test_blocks_custom_budget(blocks_path);
	test_rotation(0);
	test_rotation(90);
	test_rotation(270);
	test_broken_inputs(blocks_path);
	for (int i = 0; i < n_paths; i++)
		unlink(paths[i]);
	rmdir(tmpdir);
	return CHECK_DONE();
}
