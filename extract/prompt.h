/* The user text of an extraction prompt: what the model is asked, built from the schema, plus the
 * PDF text layer of the prompt's pages as a hint. The chat turn around it (roles, image
 * placeholders, thinking disabled) is the engine's: vlm_generate builds it. */
#ifndef EX_PROMPT_H
#define EX_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#include "ex.h"
#include "schema.h"

/* Default bytes of text layer given per prompt: enough for a dense A4 page, small against the
 * real model's context. */
#define EX_PROMPT_TEXT_BUDGET 6000

struct ex_prompt_opts {
	size_t text_budget; /* bytes of PDF text layer per prompt; 0: none */
	bool compact;       /* leave out field descriptions (for a context too small for them) */
};

/* Builds the user text for one prompt over pages[0 .. n_pages-1] of a document of
 * `doc_pages` pages:
 *   1. the schema's instruction;
 *   2. which pages the images are, when the document has more than one;
 *   3. the answer's shape: a JSON skeleton with one line per field, its value a placeholder
 *      for its type ("text", "0.00", "YYYY-MM-DD", 0, true | false, "a" | "b" for enums, an
 *      object or [{...}, ...] for line items), followed by a // comment with "not null",
 *      "required", bounds, the pattern and (unless compact) the description;
 *   4. when pages carry a text layer and text_budget > 0: that text, per page, between
 *      <<<PAGE_TEXT n and PAGE_TEXT>>> lines, introduced as data rather than instructions, cut
 *      at a character boundary so that all pages together use at most text_budget bytes
 *      (a cut page ends with "[...]").
 * *out is a new NUL-terminated UTF-8 string the caller frees with g_free. Returns 0 (GLib
 * aborts when memory runs out, so nothing here fails). */
int ex_prompt_build(const struct ex_schema *schema, const struct ex_page *pages, size_t n_pages,
		    size_t doc_pages, const struct ex_prompt_opts *opts, char **out, vlm_err *err);

#endif
