/* The body the four ingest targets share: load the input from memory under small limits (so a
 * bomb is refused in microseconds, not rendered) and check what ex_doc_load_mem promises about
 * success and failure. Each target keeps only inputs carrying its own magic bytes, so libFuzzer
 * spends its time inside one decoder. */
#ifndef INTAKE_FUZZ_INGEST_H
#define INTAKE_FUZZ_INGEST_H

#include <errno.h>
#include <string.h>

#include "ex.h"
#include "fuzz.h"

static inline void fuzz_check_doc(const struct ex_doc *doc, const struct ex_limits *lim,
				  enum ex_format format)
{
	FUZZ_CHECK(doc->format == format);
	FUZZ_CHECK(doc->n_pages >= 1 && doc->n_pages <= lim->max_pages);
	uint64_t total = 0;
	for (size_t i = 0; i < doc->n_pages; i++) {
		const struct ex_page *p = &doc->pages[i];
		FUZZ_CHECK(p->number == (int)i + 1);
		FUZZ_CHECK(p->width > 0 && p->height > 0 && p->rgb);
		uint64_t pixels = (uint64_t)p->width * (uint64_t)p->height;
		FUZZ_CHECK(pixels <= lim->max_page_pixels);
		total += pixels;
		/* Touch the last pixel: ASan catches a raster shorter than its dimensions. */
		volatile uint8_t last = p->rgb[pixels * 3 - 1];
		(void)last;
		for (size_t w = 0; w < p->n_words; w++)
			FUZZ_CHECK(p->words[w].text != NULL);
	}
	FUZZ_CHECK(total <= lim->max_total_pixels);
}

static inline int fuzz_ingest(const uint8_t *data, size_t size, const char *magic, size_t magic_len,
			      enum ex_format format)
{
	if (size < magic_len || memcmp(data, magic, magic_len) != 0)
		return -1; /* not this target's format: libFuzzer does not keep it */
	struct ex_limits lim;
	ex_limits_default(&lim);
	lim.max_pages = 8;
	lim.max_page_pixels = 4000000;
	lim.max_total_pixels = 8000000;
	lim.pdf_pixel_budget = 250000;
	lim.pdf_max_dpi = 150;
	struct ex_doc *doc = NULL;
	vlm_err err = { 0 };
	int rc = ex_doc_load_mem("fuzz-input", data, size, &lim, &doc, &err);
	if (rc == 0) {
		FUZZ_CHECK(doc != NULL);
		fuzz_check_doc(doc, &lim, format);
		ex_doc_free(doc);
		return 0;
	}
	/* A refusal is one line with its reason, never a half-built document. */
	FUZZ_CHECK(doc == NULL);
	FUZZ_CHECK(rc == err.code && rc < 0);
	FUZZ_CHECK(err.reason > EX_REASON_NONE && err.reason < EX_REASON_COUNT);
	FUZZ_CHECK(err.msg[0] != '\0' && strchr(err.msg, '\n') == NULL);
	FUZZ_CHECK(strncmp(err.msg, "ingest: ", 8) == 0);
	return 0;
}

#endif
