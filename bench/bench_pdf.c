/* bench_pdf: pages per second of intake's PDF renderer (ex_doc_load: poppler-glib + cairo, RGB
 * conversion and text layer included) against `pdftoppm -r N` writing PPM files, at 150, 200 and
 * 300 DPI, best of 3 runs each.
 *
 * usage: bench_pdf [FILE.pdf]
 * Without a file it draws a 10-page invoice-like A4 document (text lines, table rules, filled
 * boxes, a curved logo) with cairo into a temporary directory. */
#include <cairo-pdf.h>
#include <cairo.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ex.h"

extern char **environ;

enum { N_RUNS = 3, N_INVOICE_PAGES = 10, N_ROWS = 24 };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void text_at(cairo_t *cr, double x, double y, double size, const char *s)
{
	cairo_set_font_size(cr, size);
	cairo_move_to(cr, x, y);
	cairo_show_text(cr, s);
}

/* One A4 invoice page: letterhead with a logo, addresses, a 24-row item table, totals, footer. */
static void draw_invoice_page(cairo_t *cr, int page)
{
	char line[128];
	cairo_set_source_rgb(cr, 0.12, 0.30, 0.55);
	cairo_arc(cr, 70, 70, 24, 0, 2 * M_PI);
	cairo_fill(cr);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_move_to(cr, 52, 80);
	cairo_curve_to(cr, 62, 50, 78, 90, 88, 60);
	cairo_set_line_width(cr, 4);
	cairo_stroke(cr);

	cairo_set_source_rgb(cr, 0, 0, 0);
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
	text_at(cr, 110, 70, 22, "Northwind Supplies GmbH");
	text_at(cr, 420, 120, 26, "INVOICE");
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
			       CAIRO_FONT_WEIGHT_NORMAL);
	text_at(cr, 110, 88, 9, "Hafenstrasse 12, 20457 Hamburg, Germany - VAT DE123456789");
	snprintf(line, sizeof line, "Invoice no. 2024-%05d", 1000 + page);
	text_at(cr, 420, 140, 10, line);
	text_at(cr, 420, 154, 10, "Date: 14 March 2024");
	text_at(cr, 420, 168, 10, "Due: 13 April 2024");
	static const char *const bill_to[] = { "Bill to:",          "ACME Retail Ltd.",
					       "Accounts Payable",  "17 King Street",
					       "Manchester M2 4LQ", "United Kingdom" };
	for (int i = 0; i < 6; i++)
		text_at(cr, 56, 140 + 14 * i, 10, bill_to[i]);

	double top = 250, row_h = 18, x[5] = { 56, 96, 330, 400, 470 };
	cairo_set_source_rgb(cr, 0.88, 0.91, 0.95);
	cairo_rectangle(cr, 56, top, 483, row_h);
	cairo_fill(cr);
	cairo_set_source_rgb(cr, 0, 0, 0);
	static const char *const head[] = { "Pos.", "Description", "Qty", "Unit price", "Amount" };
	for (int c = 0; c < 5; c++)
		text_at(cr, x[c] + 4, top + 13, 9.5, head[c]);
	cairo_set_line_width(cr, 0.5);
	double total = 0;
	for (int r = 0; r < N_ROWS; r++) {
		double y = top + row_h * (r + 1);
		int qty = 1 + (r * 7 + page) % 12;
		double unit = 3.5 + ((r * 13 + page * 5) % 97) * 1.25;
		total += qty * unit;
		snprintf(line, sizeof line, "%d", r + 1);
		text_at(cr, x[0] + 4, y + 13, 9, line);
		snprintf(line, sizeof line, "Industrial fastener set, type %c-%03d, galvanised",
			 'A' + r % 6, 100 + r * 3 + page);
		text_at(cr, x[1] + 4, y + 13, 9, line);
		snprintf(line, sizeof line, "%d", qty);
		text_at(cr, x[2] + 4, y + 13, 9, line);
		snprintf(line, sizeof line, "EUR %.2f", unit);
		text_at(cr, x[3] + 4, y + 13, 9, line);
		snprintf(line, sizeof line, "EUR %.2f", qty * unit);
		text_at(cr, x[4] + 4, y + 13, 9, line);
		cairo_move_to(cr, 56, y + row_h);
		cairo_line_to(cr, 539, y + row_h);
	}
	for (int c = 0; c < 5; c++) {
		cairo_move_to(cr, x[c], top);
		cairo_line_to(cr, x[c], top + row_h * (N_ROWS + 1));
	}
	cairo_move_to(cr, 539, top);
	cairo_line_to(cr, 539, top + row_h * (N_ROWS + 1));
	cairo_rectangle(cr, 56, top, 483, row_h * (N_ROWS + 1));
	cairo_stroke(cr);

	double ty = top + row_h * (N_ROWS + 1) + 30;
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
	snprintf(line, sizeof line, "Total due: EUR %.2f", total * 1.19);
	text_at(cr, 360, ty, 12, line);
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
			       CAIRO_FONT_WEIGHT_NORMAL);
	snprintf(line, sizeof line, "Net EUR %.2f + 19%% VAT EUR %.2f", total, total * 0.19);
	text_at(cr, 360, ty + 16, 9, line);
	cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
	text_at(cr, 56, 800, 8,
		"Bank: Hamburger Sparkasse - IBAN DE89 3704 0044 0532 0130 00 - "
		"BIC HASPDEHHXXX - Payment within 30 days, no deduction.");
	snprintf(line, sizeof line, "Page %d of %d", page, N_INVOICE_PAGES);
	text_at(cr, 500, 815, 8, line);
}

static int write_invoice(const char *path)
{
	cairo_surface_t *s = cairo_pdf_surface_create(path, 595.276, 841.89);
	cairo_t *cr = cairo_create(s);
	for (int p = 1; p <= N_INVOICE_PAGES; p++) {
		draw_invoice_page(cr, p);
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(s);
	cairo_status_t st = cairo_surface_status(s);
	cairo_surface_destroy(s);
	if (st != CAIRO_STATUS_SUCCESS) {
		fprintf(stderr, "bench_pdf: cannot write '%s': %s\n", path,
			cairo_status_to_string(st));
		return -EIO;
	}
	return 0;
}

/* Seconds for the fastest of N_RUNS loads at exactly `dpi`; the page count in *n_pages. */
static double time_ours(const char *path, double dpi, size_t *n_pages)
{
	struct ex_limits lim;
	ex_limits_default(&lim);
	lim.pdf_pixel_budget = UINT64_MAX / 4; /* so the DPI cap alone decides */
	lim.pdf_max_dpi = dpi;
	lim.max_total_pixels = UINT64_MAX / 4;
	double best = INFINITY;
	for (int r = 0; r < N_RUNS; r++) {
		vlm_err err = { 0 };
		struct ex_doc *doc = NULL;
		double t0 = now_s();
		if (ex_doc_load(path, &lim, &doc, &err) < 0) {
			fprintf(stderr, "bench_pdf: %s\n", err.msg);
			return NAN;
		}
		double t = now_s() - t0;
		*n_pages = doc->n_pages;
		ex_doc_free(doc);
		best = fmin(best, t);
	}
	return best;
}

static void empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

/* Seconds for the fastest of N_RUNS `pdftoppm -r DPI FILE OUTDIR/p` runs (PPM output). */
static double time_pdftoppm(const char *path, int dpi, const char *outdir)
{
	char res[16], prefix[512];
	snprintf(res, sizeof res, "%d", dpi);
	snprintf(prefix, sizeof prefix, "%s/p", outdir);
	char *argv[] = { "pdftoppm", "-r", res, (char *)path, prefix, NULL };
	double best = INFINITY;
	for (int r = 0; r < N_RUNS; r++) {
		pid_t pid;
		double t0 = now_s();
		int rc = posix_spawnp(&pid, "pdftoppm", NULL, NULL, argv, environ);
		if (rc != 0) {
			fprintf(stderr, "bench_pdf: cannot run pdftoppm: %s\n", strerror(rc));
			return NAN;
		}
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		double t = now_s() - t0;
		empty_dir(outdir);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "bench_pdf: pdftoppm failed on '%s'\n", path);
			return NAN;
		}
		best = fmin(best, t);
	}
	return best;
}

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: bench_pdf [FILE.pdf]\n");
		return 2;
	}
	char dir[] = "/tmp/bench_pdf.XXXXXX", outdir[64], generated[64];
	if (!mkdtemp(dir)) {
		perror("bench_pdf: mkdtemp");
		return 1;
	}
	snprintf(outdir, sizeof outdir, "%s/ppm", dir);
	snprintf(generated, sizeof generated, "%s/invoice.pdf", dir);
	int status = 1;
	const char *path = argc == 2 ? argv[1] : generated;
	if (mkdir(outdir, 0700) < 0 || (argc < 2 && write_invoice(generated) < 0))
		goto out;

	printf("file: %s\n", argc == 2 ? path : "generated 10-page A4 invoice");
	printf("%5s %7s %14s %14s %12s\n", "dpi", "pages", "ours pages/s", "pdftoppm p/s",
	       "ours/pdftoppm");
	static const int dpis[] = { 150, 200, 300 };
	for (size_t i = 0; i < sizeof dpis / sizeof dpis[0]; i++) {
		size_t n_pages = 0;
		double ours = time_ours(path, dpis[i], &n_pages);
		double theirs = time_pdftoppm(path, dpis[i], outdir);
		if (isnan(ours) || isnan(theirs))
			goto out;
		double ours_ps = (double)n_pages / ours, theirs_ps = (double)n_pages / theirs;
		printf("%5d %7zu %14.2f %14.2f %12.2f\n", dpis[i], n_pages, ours_ps, theirs_ps,
		       ours_ps / theirs_ps);
	}
	status = 0;
out:
	rmdir(outdir);
	if (argc < 2)
		unlink(generated);
	rmdir(dir);
	return status;
}
