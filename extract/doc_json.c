/* A decoded document as JSON: what `intake pages --json` prints and what intaked's pages
 * processor publishes (before it adds provenance). Owns only the JSON layout of ex_doc. */
#include <jansson.h>

#include "ex.h"

static json_t *page_json(const struct ex_page *p, bool with_text)
{
	json_t *o = json_pack("{s:i, s:i, s:i, s:f, s:f}", "page", p->number, "width", p->width,
			      "height", p->height, "dpi_x", p->dpi_x, "dpi_y", p->dpi_y);
	if (o && with_text && p->text) {
		json_t *words = json_array();
		for (size_t i = 0; i < p->n_words; i++) {
			const struct ex_word *w = &p->words[i];
			json_array_append_new(words,
					      json_pack("{s:s, s:[f,f,f,f]}", "text", w->text,
							"box", w->x0, w->y0, w->x1, w->y1));
		}
		json_object_set_new(o, "text", json_string(p->text));
		json_object_set_new(o, "words", words);
	}
	return o;
}

json_t *ex_doc_to_json(const struct ex_doc *doc, bool with_text)
{
	json_t *pages = json_array();
	for (size_t i = 0; i < doc->n_pages; i++)
		json_array_append_new(pages, page_json(&doc->pages[i], with_text));
	return json_pack("{s:s, s:s, s:o}", "file", doc->path, "format",
			 ex_format_name(doc->format), "pages", pages);
}
