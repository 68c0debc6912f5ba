/* The hostile-input corpus: files built to exhaust memory or time, or to be mistaken for what they
 * are not, each loaded by ex_doc_load in a child process of its own, so that the child's peak
 * resident memory (wait4's ru_maxrss) and wall time can be measured per input and bounded. Each
 * input has one defined outcome: refused with a given reason, or processed within limits.
 *
 * The decoder tests (test_ingest*.c) check each refusal's message in detail; this test adds what
 * they do not: the cost of every bomb, the bombs they lack (a 100,000-page PDF tree, deeply nested
 * PDF objects, 10,000 TIFF directories, a hand-written 65500 x 65500 JPEG header), polyglots,
 * device nodes and hostile file names. It prints one line per input with its figures; the README's
 * table comes from that output. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"
#include "ex.h"
#include "testpng.h"

/* Time bound for every input, generous for ASan on a loaded CI machine (the table shows the
 * real figures); memory bounds are per input. */
#define MAX_SECONDS 10.0

/* ---- little writers ---------------------------------------------------------------------- */

static void put16le(struct bytes *b, unsigned v)
{
	uint8_t p[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	bytes_append(b, p, 2);
}

static void put32le(struct bytes *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	bytes_append(b, p, 4);
}

static void put16be(struct bytes *b, unsigned v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	bytes_append(b, p, 2);
}

static void bytes_printf(struct bytes *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bytes_printf(struct bytes *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof line)
		abort();
	bytes_append(b, line, (size_t)n);
}

/* ---- TIFF: a chain of minimal 8-bit grey directories, each with one strip ---------------- */

#define TIFF_IFD_BYTES (2 + 9 * 12 + 4)

/* Directory i of `n` at offset 8 + i * TIFF_IFD_BYTES, all pointing at one pixel after them;
 * the last links to directory `last_next` (-1: none). */
static struct bytes tiff_chain(int n, uint32_t width, uint32_t height, int last_next)
{
	struct bytes b = { 0 };
	bytes_append(&b, "II*\0", 4);
	put32le(&b, 8);
	uint32_t pixel = 8 + (uint32_t)n * TIFF_IFD_BYTES;
	static const uint16_t tags[9] = { 256, 257, 258, 259, 262, 273, 277, 278, 279 };
	for (int i = 0; i < n; i++) {
		const uint32_t values[9] = { width, height, 8, 1, 1, pixel, 1, height, 1 };
		put16le(&b, 9);
		for (int t = 0; t < 9; t++) {
			bool lng = tags[t] == 256 || tags[t] == 257 || tags[t] == 273 ||
				   tags[t] == 278 || tags[t] == 279;
			put16le(&b, tags[t]);
			put16le(&b, lng ? 4 : 3); /* LONG or SHORT */
			put32le(&b, 1);
			put32le(&b, values[t]);
		}
		int next = i + 1 < n ? i + 1 : last_next;
		put32le(&b, next < 0 ? 0 : 8 + (uint32_t)next * TIFF_IFD_BYTES);
	}
	bytes_append(&b, "\x80", 1);
	return b;
}

/* ---- PNG: signature, IHDR, one IDAT, IEND ------------------------------------------------ */

static struct bytes png_gray(uint32_t width, uint32_t height, const char *extra_type,
			     const struct bytes *extra)
{
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	uint8_t ihdr[13] = { (uint8_t)(width >> 24),
			     (uint8_t)(width >> 16),
			     (uint8_t)(width >> 8),
			     (uint8_t)width,
			     (uint8_t)(height >> 24),
			     (uint8_t)(height >> 16),
			     (uint8_t)(height >> 8),
			     (uint8_t)height,
			     8,
			     0,
			     0,
			     0,
			     0 };
	struct bytes b = { 0 };
	bytes_append(&b, sig, 8);
	put_chunk(&b, "IHDR", ihdr, 13);
	if (extra_type)
		put_chunk(&b, extra_type, extra->data, (uint32_t)extra->size);
	/* One row of a 1 x 1 image: filter byte 0 and the grey value 0x80, deflated. */
	uint8_t raw[2] = { 0, 0x80 }, z[64];
	uLongf n = sizeof z;
	if (compress(z, &n, raw, sizeof raw) != Z_OK)
		abort();
	put_chunk(&b, "IDAT", z, (uint32_t)n);
	put_chunk(&b, "IEND", NULL, 0);
	return b;
}

/* ---- JPEG: a baseline header written by hand (quantisation table, SOF0, scan header) -------- */

static struct bytes jpeg_header(unsigned width, unsigned height)
{
	struct bytes b = { 0 };
	bytes_append(&b, "\xff\xd8", 2);
	bytes_append(&b, "\xff\xdb", 2); /* DQT: table 0, all ones */
	put16be(&b, 67);
	bytes_append(&b, "\0", 1);
	for (int i = 0; i < 64; i++)
		bytes_append(&b, "\1", 1);
	bytes_append(&b, "\xff\xc0", 2); /* SOF0: 8 bits, one component */
	put16be(&b, 11);
	bytes_append(&b, "\x08", 1);
	put16be(&b, height);
	put16be(&b, width);
	bytes_append(&b, "\x01\x01\x11\x00", 4);
	bytes_append(&b, "\xff\xda", 2); /* SOS: component 1, tables 0/0, full spectrum */
	put16be(&b, 8);
	bytes_append(&b, "\x01\x01\x00\x00\x3f\x00", 6);
	bytes_append(&b, "\x00\x00\x00\x00\xff\xd9", 6);
	return b;
}

/* ---- PDF: numbered objects with a computed cross-reference table ------------------------- */

struct pdf {
	struct bytes b;
	size_t *offs;
	int n_objs, cap;
};

static void pdf_obj_begin(struct pdf *p)
{
	if (p->n_objs == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->offs = realloc(p->offs, (size_t)p->cap * sizeof *p->offs);
		if (!p->offs)
			abort();
	}
	if (p->n_objs == 0)
		bytes_printf(&p->b, "%%PDF-1.4\n");
	p->offs[p->n_objs++] = p->b.size;
	bytes_printf(&p->b, "%d 0 obj\n", p->n_objs);
}

/* Ends the document (object 1 is the catalog) and returns its bytes. */
static struct bytes pdf_end(struct pdf *p)
{
	size_t xref = p->b.size;
	bytes_printf(&p->b, "xref\n0 %d\n0000000000 65535 f \n", p->n_objs + 1);
	for (int i = 0; i < p->n_objs; i++)
		bytes_printf(&p->b, "%010zu 00000 n \n", p->offs[i]);
	bytes_printf(&p->b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n",
		     p->n_objs + 1, xref);
	free(p->offs);
	return p->b;
}

/* A real page tree of n_pages leaves: the root over groups of 1000 pages (objects 2, then the
 * groups, then the pages). */
static struct bytes pdf_many_pages(int n_pages)
{
	enum { GROUP = 1000 };
	int n_groups = (n_pages + GROUP - 1) / GROUP;
	struct pdf p = { 0 };
	pdf_obj_begin(&p);
	bytes_printf(&p.b, "<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
	pdf_obj_begin(&p);
	bytes_printf(&p.b, "<< /Type /Pages /MediaBox [0 0 612 792] /Count %d /Kids [", n_pages);
	for (int g = 0; g < n_groups; g++)
		bytes_printf(&p.b, "%d 0 R ", 3 + g);
	bytes_printf(&p.b, "] >>\nendobj\n");
	int first_page = 3 + n_groups;
	for (int g = 0; g < n_groups; g++) {
		int n = n_pages - g * GROUP < GROUP ? n_pages - g * GROUP : GROUP;
		pdf_obj_begin(&p);
		bytes_printf(&p.b, "<< /Type /Pages /Parent 2 0 R /Count %d /Kids [", n);
		for (int i = 0; i < n; i++)
			bytes_printf(&p.b, "%d 0 R ", first_page + g * GROUP + i);
		bytes_printf(&p.b, "] >>\nendobj\n");
	}
	for (int i = 0; i < n_pages; i++) {
		pdf_obj_begin(&p);
		bytes_printf(&p.b, "<< /Type /Page /Parent %d 0 R >>\nendobj\n", 3 + i / GROUP);
	}
	return pdf_end(&p);
}

/* One small page whose resources hold an array nested `depth` deep, and whose content draws a
 * square inside `q` (save graphics state) nested `q_depth` deep. */
static struct bytes pdf_nested(int depth, int q_depth)
{
	struct pdf p = { 0 };
	pdf_obj_begin(&p);
	bytes_printf(&p.b, "<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
	pdf_obj_begin(&p);
	bytes_printf(&p.b, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
	pdf_obj_begin(&p);
	bytes_printf(&p.b, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] /Contents 4 0 R "
			   "/Resources << /Deep 0 ");
	for (int i = 0; i < depth; i++)
		bytes_append(&p.b, "[", 1);
	for (int i = 0; i < depth; i++)
		bytes_append(&p.b, "]", 1);
	bytes_printf(&p.b, " >> >>\nendobj\n");
	pdf_obj_begin(&p);
	bytes_printf(&p.b, "<< /Length %d >>\nstream\n", 2 * q_depth + 20 + 2 * q_depth);
	for (int i = 0; i < q_depth; i++)
		bytes_append(&p.b, "q ", 2);
	bytes_printf(&p.b, "0 0 50 50 re f     \n");
	for (int i = 0; i < q_depth; i++)
		bytes_append(&p.b, "Q ", 2);
	bytes_printf(&p.b, "\nendstream\nendobj\n");
	return pdf_end(&p);
}

static struct bytes pdf_one_page(void)
{
	return pdf_many_pages(1);
}

/* A PDF followed by a ZIP archive holding one stored file (local header, data, central
 * directory, end record): both readers accept it. */
static struct bytes pdf_zip_polyglot(void)
{
	struct bytes b = pdf_one_page();
	size_t local = b.size;
	static const char data[] = "hello";
	uint32_t crc = (uint32_t)crc32(0, (const Bytef *)data, 5);
	bytes_append(&b, "PK\3\4", 4);
	put16le(&b, 10), put16le(&b, 0), put16le(&b, 0), put16le(&b, 0), put16le(&b, 0);
	put32le(&b, crc), put32le(&b, 5), put32le(&b, 5);
	put16le(&b, 5), put16le(&b, 0);
	bytes_append(&b, "a.txt", 5);
	bytes_append(&b, data, 5);
	size_t central = b.size;
	bytes_append(&b, "PK\1\2", 4);
	put16le(&b, 20), put16le(&b, 10), put16le(&b, 0), put16le(&b, 0), put16le(&b, 0);
	put16le(&b, 0);
	put32le(&b, crc), put32le(&b, 5), put32le(&b, 5);
	put16le(&b, 5), put16le(&b, 0), put16le(&b, 0), put16le(&b, 0), put16le(&b, 0);
	put32le(&b, 0), put32le(&b, (uint32_t)local);
	bytes_append(&b, "a.txt", 5);
	size_t end = b.size;
	bytes_append(&b, "PK\5\6", 4);
	put16le(&b, 0), put16le(&b, 0), put16le(&b, 1), put16le(&b, 1);
	put32le(&b, (uint32_t)(end - central)), put32le(&b, (uint32_t)central);
	put16le(&b, 0);
	return b;
}

/* ---- the corpus -------------------------------------------------------------------------- */

struct hostile {
	const char *name; /* file name in the scratch directory, or an absolute path to use as is */
	const char *what;
	struct bytes (*make)(void);
	int code;           /* 0: processed */
	int reason;         /* refusal reason, or the format when processed */
	const char *detail; /* in the message (refused) */
	size_t n_pages;     /* processed */
	long max_mib;       /* bound on the resident memory the load adds, under ASan */
};

static struct bytes make_tiff_100k(void)
{
	return tiff_chain(1, 100000, 100000, -1);
}
static struct bytes make_tiff_10k_ifds(void)
{
	return tiff_chain(10000, 1, 1, -1);
}
static struct bytes make_tiff_loop(void)
{
	return tiff_chain(3, 1, 1, 0);
}
static struct bytes make_tiff_small(void)
{
	return tiff_chain(2, 1, 1, -1);
}
static struct bytes make_png_100k(void)
{
	return png_gray(100000, 100000, NULL, NULL);
}
static struct bytes make_png_small(void)
{
	return png_gray(1, 1, NULL, NULL);
}
static struct bytes make_jpeg_huge(void)
{
	return jpeg_header(65500, 65500);
}
static struct bytes make_pdf_100k(void)
{
	return pdf_many_pages(100000);
}
static struct bytes make_pdf_nested(void)
{
	return pdf_nested(100000, 0);
}
static struct bytes make_pdf_q(void)
{
	return pdf_nested(0, 100000);
}

static struct bytes make_png_ztxt(void)
{
	struct bytes text = { 0 };
	bytes_append(&text, "Comment\0\0", 9);
	append_zeros_deflated(&text, 256); /* 256 MiB of zeros in about 256 KiB */
	struct bytes b = png_gray(1, 1, "zTXt", &text);
	bytes_free(&text);
	return b;
}

static struct bytes make_svg(void)
{
	static const char svg[] =
		"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
		"xmlns:xi=\"http://www.w3.org/2001/XInclude\"><xi:include href=\"/etc/shadow\" "
		"parse=\"text\"/></svg>\n";
	struct bytes b = { 0 };
	bytes_append(&b, svg, sizeof svg - 1);
	return b;
}

static struct bytes make_empty(void)
{
	return (struct bytes){ 0 };
}

/* 255 bytes: the longest name Linux file systems take. */
static char long_name[256];

static const struct hostile corpus[] = {
	{ "bomb-100k.tiff", "TIFF header 100,000 x 100,000", make_tiff_100k, -E2BIG,
	  EX_REASON_PAGE_TOO_LARGE, "100000x100000", 0, 32 },
	{ "ifds-10k.tiff", "TIFF with 10,000 directories", make_tiff_10k_ifds, -E2BIG,
	  EX_REASON_TOO_MANY_PAGES, "limit is 500", 0, 32 },
	{ "ifd-loop.tiff", "TIFF directory chain 1-2-3-1", make_tiff_loop, -EBADMSG,
	  EX_REASON_IFD_LOOP, "loop", 0, 32 },
	{ "bomb-100k.png", "PNG IHDR 100,000 x 100,000", make_png_100k, -E2BIG,
	  EX_REASON_PAGE_TOO_LARGE, "100000x100000", 0, 32 },
	{ "ztxt-256m.png", "PNG zTXt inflating to 256 MiB", make_png_ztxt, -EBADMSG,
	  EX_REASON_CORRUPT, "zTXt", 0, 32 },
	{ "bomb-65500.jpg", "JPEG SOF0 65,500 x 65,500", make_jpeg_huge, -E2BIG,
	  EX_REASON_PAGE_TOO_LARGE, "65500x65500", 0, 32 },
	{ "pages-100k.pdf", "PDF page tree of 100,000 pages", make_pdf_100k, -E2BIG,
	  EX_REASON_TOO_MANY_PAGES, "100000 pages", 0, 64 },
	{ "nested-100k.pdf", "PDF array nested 100,000 deep", make_pdf_nested, 0, EX_FORMAT_PDF,
	  NULL, 1, 256 },
	/* poppler and cairo keep a graphics state per open q (about 1.6 KB each, 800 times the
	 * two bytes that open it): nothing in poppler-glib bounds the depth, so a few MB of
	 * content reach the parser child's address-space limit (parse_memory) and it is killed. */
	{ "q-100k.pdf", "PDF content with q nested 100,000 deep", make_pdf_q, 0, EX_FORMAT_PDF,
	  NULL, 1, 512 },
	{ "polyglot.pdf", "PDF with a ZIP archive appended", pdf_zip_polyglot, 0, EX_FORMAT_PDF,
	  NULL, 1, 64 },
	{ "really-tiff.pdf", ".pdf holding a TIFF", make_tiff_small, 0, EX_FORMAT_TIFF, NULL, 2,
	  32 },
	{ "xinclude.png", ".png holding SVG with xi:include", make_svg, -ENOTSUP,
	  EX_REASON_UNSUPPORTED, "XML or SVG", 0, 32 },
	{ "/dev/null", "character device", NULL, -EINVAL, EX_REASON_NOT_REGULAR, "a device", 0,
	  32 },
	{ "line\nbreak.pdf", "empty file named with a newline", make_empty, -EBADMSG,
	  EX_REASON_EMPTY, "line\\x0abreak.pdf", 0, 32 },
	{ "-rf.png", "name with a leading dash", make_png_small, 0, EX_FORMAT_PNG, NULL, 1, 32 },
	{ "\xff\xfe\xc0.png", "name that is not UTF-8", make_png_small, 0, EX_FORMAT_PNG, NULL, 1,
	  32 },
	{ long_name, "255-byte name", make_png_small, 0, EX_FORMAT_PNG, NULL, 1, 32 },
};

/* What the child reports back through a pipe. */
struct outcome {
	long start_kib; /* the child's resident memory when it starts (inherited from the parent) */
	int rc, reason, format;
	size_t n_pages;
	char msg[512];
};

static void child_load(const char *path, int fd)
{
	struct outcome o = { 0 };
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	o.start_kib = ru.ru_maxrss;
	struct ex_doc *doc = NULL;
	vlm_err err = { 0 };
	o.rc = ex_doc_load(path, NULL, &doc, &err);
	o.reason = err.reason;
	memcpy(o.msg, err.msg, sizeof o.msg);
	if (doc) {
		o.format = (int)doc->format;
		o.n_pages = doc->n_pages;
	}
	ex_doc_free(doc);
	ssize_t w = write(fd, &o, sizeof o);
	_exit(w == (ssize_t)sizeof o ? 0 : 3);
}

/* Loads `path` in a child; fills `o`, the child's peak RSS in KiB and its wall time. */
static bool measure(const char *path, struct outcome *o, long *rss_kib, double *seconds)
{
	int fds[2];
	if (pipe(fds) != 0)
		return false;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child_load(path, fds[1]);
	}
	close(fds[1]);
	ssize_t got = pid > 0 ? read(fds[0], o, sizeof *o) : -1;
	close(fds[0]);
	int status = 0;
	struct rusage ru = { 0 };
	if (pid > 0)
		wait4(pid, &status, 0, &ru);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*rss_kib = ru.ru_maxrss;
	*seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	return got == (ssize_t)sizeof *o && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void run(const struct hostile *h)
{
	char path[SCRATCH_PATH_SIZE];
	if (h->make) {
		struct bytes b = h->make();
		scratch_write(path, h->name, b.data ? (const void *)b.data : "", b.size);
		bytes_free(&b);
	} else {
		snprintf(path, sizeof path, "%s", h->name);
	}
	struct outcome o;
	long rss;
	double secs;
	bool ok = measure(path, &o, &rss, &secs);
	CHECK(ok);
	if (!ok) {
		fprintf(stderr, "%s: the child crashed\n", h->what);
		return;
	}
	long extra_mib = (rss - o.start_kib) / 1024;
	printf("%-40s %-20s %6.3f s %5ld MiB\n", h->what,
	       o.rc ? ex_reason_name((enum ex_ingest_reason)o.reason) : "processed", secs,
	       extra_mib);
	CHECK_INT(o.rc, h->code);
	CHECK(strchr(o.msg, '\n') == NULL);
	if (h->code) {
		CHECK_INT(o.reason, h->reason);
		CHECK_CONTAINS(o.msg, h->detail);
	} else {
		CHECK_INT(o.format, h->reason);
		CHECK_INT(o.n_pages, h->n_pages);
	}
	CHECK(secs < MAX_SECONDS);
	CHECK(extra_mib < h->max_mib);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	scratch_init();
	memset(long_name, 'n', 251);
	memcpy(long_name + 251, ".png", 5);

	printf("%-40s %-20s %8s %9s\n", "input", "outcome", "time", "peak RSS added");
	for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++)
		run(&corpus[i]);
	scratch_done();
	return CHECK_DONE();
}
