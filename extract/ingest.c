/* Ingest entry point: opens a file safely, decides its format from magic bytes, enforces the size,
 * page and pixel limits, and hands the in-memory bytes to one decoder. Owns struct ex_doc and the
 * pixel helpers the decoders share. Does not decode any format itself. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest.h"

/* cairo and the model's tiler both index rows with int; 65535 keeps every product in range. */
#define EX_MAX_DIMENSION 65535

static const char *const format_names[] = { "pdf", "tiff", "jpeg", "png" };
_Static_assert(sizeof format_names / sizeof format_names[0] == EX_FORMAT_COUNT, "format names");

static const char *const reason_names[] = {
	"none",
	"io",
	"not a regular file",
	"empty file",
	"unsupported format",
	"file too large",
	"too many pages",
	"page too large",
	"document too large",
	"corrupt",
	"encrypted",
	"no pages",
	"IFD loop",
	"unsupported variant",
	"internal error",
};
_Static_assert(sizeof reason_names / sizeof reason_names[0] == EX_REASON_COUNT, "reason names");

const char *ex_format_name(enum ex_format format)
{
	return (unsigned)format < EX_FORMAT_COUNT ? format_names[format] : "unknown";
}

const char *ex_reason_name(enum ex_ingest_reason reason)
{
	return (unsigned)reason < EX_REASON_COUNT ? reason_names[reason] : "unknown";
}

bool ex_reason_is_refusal(enum ex_ingest_reason reason)
{
	return reason != EX_REASON_NONE && reason != EX_REASON_INTERNAL;
}

void ex_limits_default(struct ex_limits *limits)
{
	*limits = (struct ex_limits){
		.max_file_bytes = 256ull << 20,
		.max_pages = 500,
		.max_page_pixels = 60000000ull,
		.max_total_pixels = 2000000000ull,
		.pdf_pixel_budget = 2000000ull,
		.pdf_max_dpi = 300.0,
	};
}

static int reason_errno(enum ex_ingest_reason reason)
{
	switch (reason) {
	case EX_REASON_NOT_REGULAR:
		return -EINVAL;
	case EX_REASON_UNSUPPORTED:
	case EX_REASON_UNSUPPORTED_VARIANT:
		return -ENOTSUP;
	case EX_REASON_FILE_TOO_LARGE:
	case EX_REASON_TOO_MANY_PAGES:
	case EX_REASON_PAGE_TOO_LARGE:
	case EX_REASON_TOTAL_TOO_LARGE:
		return -E2BIG;
	case EX_REASON_ENCRYPTED:
		return -EACCES;
	case EX_REASON_INTERNAL:
		return -ENOMEM;
	case EX_REASON_IO:
		return -EIO;
	default:
		return -EBADMSG;
	}
}

/* The path as messages show it: a file name may hold a newline, and an error is one line. */
#define SHOWN_PATH_SIZE 320
static const char *shown_path(char *buf, const struct ex_source *src)
{
	return vlm_err_escape(buf, SHOWN_PATH_SIZE, src->path);
}

int ex_ingest_fail(vlm_err *err, const struct ex_source *src, int page,
		   enum ex_ingest_reason reason, const char *fmt, ...)
{
	char detail[384], shown[SHOWN_PATH_SIZE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	/* Library messages are prose that may span lines (libtiff: "Improper JPEG sampling
	 * factors 3,1\nApparently should be 1,1."); the error stays one line. */
	vlm_err_flatten(detail);
	int code = reason_errno(reason);
	if (page > 0)
		return vlm_err_set_reason(err, code, reason, "ingest: '%s' page %d: %s: %s",
					  shown_path(shown, src), page, ex_reason_name(reason),
					  detail);
	return vlm_err_set_reason(err, code, reason, "ingest: '%s': %s: %s", shown_path(shown, src),
				  ex_reason_name(reason), detail);
}

int ex_doc_reserve_pages(struct ex_doc *doc, const struct ex_source *src, size_t n_pages,
			 vlm_err *err)
{
	if (n_pages > src->limits->max_pages)
		return ex_ingest_fail(err, src, 0, EX_REASON_TOO_MANY_PAGES,
				      "%zu pages, the limit is %u", n_pages,
				      src->limits->max_pages);
	if (n_pages <= doc->n_pages)
		return 0;
	struct ex_page *pages = realloc(doc->pages, n_pages * sizeof *pages);
	if (!pages)
		return ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL, "out of memory");
	doc->pages = pages;
	return 0;
}

static uint64_t doc_total_pixels(const struct ex_doc *doc)
{
	uint64_t total = 0;
	for (size_t i = 0; i < doc->n_pages; i++)
		total += (uint64_t)doc->pages[i].width * (uint64_t)doc->pages[i].height;
	return total;
}

int ex_doc_page_new(struct ex_doc *doc, const struct ex_source *src, int width, int height,
		    double dpi_x, double dpi_y, struct ex_page **page, vlm_err *err)
{
	const struct ex_limits *lim = src->limits;
	int number = (int)doc->n_pages + 1;
	if (doc->n_pages >= lim->max_pages)
		return ex_ingest_fail(err, src, 0, EX_REASON_TOO_MANY_PAGES, "more than %u pages",
				      lim->max_pages);
	if (width <= 0 || height <= 0)
		return ex_ingest_fail(err, src, number, EX_REASON_CORRUPT,
				      "invalid dimensions %dx%d", width, height);
	uint64_t pixels = (uint64_t)width * (uint64_t)height;
	if (width > EX_MAX_DIMENSION || height > EX_MAX_DIMENSION || pixels > lim->max_page_pixels)
		return ex_ingest_fail(err, src, number, EX_REASON_PAGE_TOO_LARGE,
				      "%dx%d pixels, the limit is %llu pixels and %d per side",
				      width, height, (unsigned long long)lim->max_page_pixels,
				      EX_MAX_DIMENSION);
	if (doc_total_pixels(doc) + pixels > lim->max_total_pixels)
		return ex_ingest_fail(err, src, number, EX_REASON_TOTAL_TOO_LARGE,
				      "document exceeds %llu pixels in all",
				      (unsigned long long)lim->max_total_pixels);
	int rc = ex_doc_reserve_pages(doc, src, doc->n_pages + 1, err);
	if (rc < 0)
		return rc;
	uint8_t *rgb = calloc(pixels, 3);
	if (!rgb)
		return ex_ingest_fail(err, src, number, EX_REASON_INTERNAL,
				      "out of memory for %dx%d pixels", width, height);
	struct ex_page *p = &doc->pages[doc->n_pages++];
	*p = (struct ex_page){ .number = number,
			       .width = width,
			       .height = height,
			       .dpi_x = dpi_x,
			       .dpi_y = dpi_y,
			       .rgb = rgb };
	*page = p;
	return 0;
}

static void page_done(struct ex_page *page)
{
	free(page->rgb);
	free(page->text);
	for (size_t i = 0; i < page->n_words; i++)
		free(page->words[i].text);
	free(page->words);
}

void ex_doc_free(struct ex_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n_pages; i++)
		page_done(&doc->pages[i]);
	free(doc->pages);
	free(doc->path);
	free(doc);
}

int ex_page_orient(struct ex_page *page, int orientation, vlm_err *err)
{
	if (orientation < 2 || orientation > 8)
		return 0;
	size_t w = (size_t)page->width, h = (size_t)page->height;
	uint8_t *out = malloc(w * h * 3);
	if (!out)
		return vlm_err_set(err, -ENOMEM, "ingest: page %d: out of memory rotating",
				   page->number);
	bool swap = orientation >= 5;
	size_t ow = swap ? h : w;
	for (size_t sy = 0; sy < h; sy++) {
		for (size_t sx = 0; sx < w; sx++) {
			size_t dx, dy;
			switch (orientation) {
			case 2:
				dx = w - 1 - sx;
				dy = sy;
				break;
			case 3:
				dx = w - 1 - sx;
				dy = h - 1 - sy;
				break;
			case 4:
				dx = sx;
				dy = h - 1 - sy;
				break;
			case 5:
				dx = sy;
				dy = sx;
				break;
			case 6:
				dx = h - 1 - sy;
				dy = sx;
				break;
			case 7:
				dx = h - 1 - sy;
				dy = w - 1 - sx;
				break;
			default:
				dx = sy;
				dy = w - 1 - sx;
				break; /* 8 */
			}
			memcpy(out + (dy * ow + dx) * 3, page->rgb + (sy * w + sx) * 3, 3);
		}
	}
	free(page->rgb);
	page->rgb = out;
	if (swap) {
		page->width = (int)h;
		page->height = (int)w;
		double t = page->dpi_x;
		page->dpi_x = page->dpi_y;
		page->dpi_y = t;
	}
	return 0;
}

void ex_rgb_from_gray(uint8_t *rgb, const uint8_t *gray, size_t n)
{
	/* Walk backwards so the conversion may run in place (gray at the start of the rgb buffer). */
	for (size_t i = n; i-- > 0;)
		rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
}

static uint8_t over_white(unsigned v, unsigned a)
{
	return (uint8_t)((v * a + 255u * (255u - a) + 127u) / 255u);
}

void ex_rgb_from_gray_alpha(uint8_t *rgb, const uint8_t *ga, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t g = over_white(ga[2 * i], ga[2 * i + 1]);
		rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g;
	}
}

void ex_rgb_from_rgba(uint8_t *rgb, const uint8_t *rgba, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
			rgb[3 * i + c] = over_white(rgba[4 * i + c], rgba[4 * i + 3]);
}

void ex_rgb_from_cmyk(uint8_t *rgb, const uint8_t *cmyk, size_t n, bool inverted)
{
	for (size_t i = 0; i < n; i++) {
		unsigned c = cmyk[4 * i], m = cmyk[4 * i + 1], y = cmyk[4 * i + 2],
			 k = cmyk[4 * i + 3];
		if (inverted) { /* Adobe JPEG stores 255 - ink */
			c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
		}
		rgb[3 * i] = (uint8_t)(((255 - c) * (255 - k) + 127) / 255);
		rgb[3 * i + 1] = (uint8_t)(((255 - m) * (255 - k) + 127) / 255);
		rgb[3 * i + 2] = (uint8_t)(((255 - y) * (255 - k) + 127) / 255);
	}
}

static bool sniff(const uint8_t *d, size_t n, enum ex_format *format)
{
	static const uint8_t png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	if (n >= 5 && memcmp(d, "%PDF-", 5) == 0)
		*format = EX_FORMAT_PDF;
	else if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0 ||
			    memcmp(d, "II+\0", 4) == 0 || memcmp(d, "MM\0+", 4) == 0))
		*format = EX_FORMAT_TIFF;
	else if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
		*format = EX_FORMAT_JPEG;
	else if (n >= 8 && memcmp(d, png, 8) == 0)
		*format = EX_FORMAT_PNG;
	else
		return false;
	return true;
}

/* Describes the first bytes of a refused file so the log says what it was. */
static const char *guess_other(const uint8_t *d, size_t n)
{
	if (n >= 4 && memcmp(d, "PK\3\4", 4) == 0)
		return "ZIP archive";
	if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
		return "GIF image";
	if (n >= 5 &&
	    (memmem(d, n < 512 ? n : 512, "<svg", 4) || memmem(d, n < 512 ? n : 512, "<?xml", 5)))
		return "XML or SVG";
	if (n >= 5 && (memmem(d, n < 512 ? n : 512, "<html", 5) ||
		       memmem(d, n < 512 ? n : 512, "<!DOCTYPE", 9)))
		return "HTML";
	return "not PDF, TIFF, JPEG or PNG";
}

/* Reads the whole regular file at `path` into memory, refusing anything that is not one. */
static int read_file(const struct ex_source *src, uint8_t **data, size_t *size, vlm_err *err)
{
	char shown[SHOWN_PATH_SIZE];
	int fd = open(src->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			return ex_ingest_fail(err, src, 0, EX_REASON_NOT_REGULAR,
					      "is a symbolic link");
		vlm_err_set_reason(err, -e, EX_REASON_IO, "ingest: '%s': io: cannot open: %s",
				   shown_path(shown, src), strerror(e));
		return -e;
	}
	int rc = 0;
	struct stat st;
	uint8_t *buf = NULL;
	if (fstat(fd, &st) < 0) {
		rc = vlm_err_set_reason(err, -errno, EX_REASON_IO, "ingest: '%s': io: fstat: %s",
					shown_path(shown, src), strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		const char *what = S_ISDIR(st.st_mode)    ? "a directory"
				   : S_ISFIFO(st.st_mode) ? "a FIFO"
				   : S_ISSOCK(st.st_mode) ? "a socket"
							  : "a device";
		rc = ex_ingest_fail(err, src, 0, EX_REASON_NOT_REGULAR, "is %s", what);
		goto out;
	}
	if (st.st_size == 0) {
		rc = ex_ingest_fail(err, src, 0, EX_REASON_EMPTY, "the file has no bytes");
		goto out;
	}
	if ((uint64_t)st.st_size > src->limits->max_file_bytes) {
		rc = ex_ingest_fail(err, src, 0, EX_REASON_FILE_TOO_LARGE,
				    "%lld bytes, the limit is %llu", (long long)st.st_size,
				    (unsigned long long)src->limits->max_file_bytes);
		goto out;
	}
	size_t n = (size_t)st.st_size;
	buf = malloc(n);
	if (!buf) {
		rc = ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL, "out of memory for %zu bytes",
				    n);
		goto out;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = vlm_err_set_reason(err, -errno, EX_REASON_IO,
						"ingest: '%s': io: read: %s",
						shown_path(shown, src), strerror(errno));
			goto out;
		}
		if (r == 0) {
			rc = ex_ingest_fail(err, src, 0, EX_REASON_IO,
					    "file shrank while reading (%zu of %zu bytes)", got, n);
			goto out;
		}
		got += (size_t)r;
	}
	*data = buf;
	*size = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* Sniffs src->data and hands it to its decoder; the one path both entry points share. */
static int doc_decode(const struct ex_source *src, struct ex_doc **out, vlm_err *err)
{
	int rc = 0;
	struct ex_doc *doc = calloc(1, sizeof *doc);
	if (!doc || !(doc->path = strdup(src->path))) {
		rc = ex_ingest_fail(err, src, 0, EX_REASON_INTERNAL, "out of memory");
		goto out;
	}
	if (!sniff(src->data, src->size, &doc->format)) {
		rc = ex_ingest_fail(err, src, 0, EX_REASON_UNSUPPORTED, "%s",
				    guess_other(src->data, src->size));
		goto out;
	}
	switch (doc->format) {
	case EX_FORMAT_PDF:
		rc = ex_ingest_pdf(src, doc, err);
		break;
	case EX_FORMAT_TIFF:
		rc = ex_ingest_tiff(src, doc, err);
		break;
	case EX_FORMAT_JPEG:
		rc = ex_ingest_jpeg(src, doc, err);
		break;
	default:
		rc = ex_ingest_png(src, doc, err);
		break;
	}
	if (rc == 0 && doc->n_pages == 0)
		rc = ex_ingest_fail(err, src, 0, EX_REASON_NO_PAGES, "the document has no pages");
out:
	if (rc < 0) {
		ex_doc_free(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

int ex_doc_load(const char *path, const struct ex_limits *limits, struct ex_doc **out, vlm_err *err)
{
	struct ex_limits defaults;
	if (!limits) {
		ex_limits_default(&defaults);
		limits = &defaults;
	}
	*out = NULL;
	struct ex_source src = { .path = path, .limits = limits };
	uint8_t *data = NULL;
	int rc = read_file(&src, &data, &src.size, err);
	if (rc < 0)
		return rc;
	src.data = data;
	rc = doc_decode(&src, out, err);
	free(data);
	return rc;
}

int ex_doc_load_mem(const char *name, const void *data, size_t size, const struct ex_limits *limits,
		    struct ex_doc **out, vlm_err *err)
{
	struct ex_limits defaults;
	if (!limits) {
		ex_limits_default(&defaults);
		limits = &defaults;
	}
	*out = NULL;
	struct ex_source src = { .path = name, .data = data, .size = size, .limits = limits };
	if (size == 0)
		return ex_ingest_fail(err, &src, 0, EX_REASON_EMPTY, "the document has no bytes");
	if ((uint64_t)size > limits->max_file_bytes)
		return ex_ingest_fail(err, &src, 0, EX_REASON_FILE_TOO_LARGE,
				      "%zu bytes, the limit is %llu", size,
				      (unsigned long long)limits->max_file_bytes);
	return doc_decode(&src, out, err);
}
