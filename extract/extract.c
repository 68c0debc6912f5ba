/* Extraction, start to end (ex.h, "Extraction"): ingest -> pages per prompt and their sizes
 * (tile.c) -> prompt (prompt.c) -> generation under the schema's grammar (grammar.c) -> merge of
 * the prompts' answers (tile.c) -> validation (validate.c) -> result JSON (result.c).
 *
 * Owns the extractor (model, session, vocabulary, grammars per schema) and the fitting of each
 * prompt into the context: the prompt's text is counted with the model's tokenizer, max_tokens is
 * reserved for the answer, and the page images get what is left, up to the schema's pixel budget.
 * When even the smallest images do not fit beside the full prompt, the prompt drops the field
 * descriptions and the text layer (EX_PROMPT compact) before giving up. A refused document ends
 * with an error and no result; an answer cut off by max_tokens gives a `failed` result. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <glib.h>

#include "ex.h"
#include "grammar.h"
#include "prompt.h"
#include "result.h"
#include "schema.h"
#include "tile.h"
#include "validate.h"

enum { DEFAULT_MAX_TOKENS = 2048, DEFAULT_CTX = 16384 };

/* Tokens of the chat turn around the prompt's text ("[gMASK]<sop><|user|>\n", "/nothink",
 * "<|assistant|>\n<think></think>\n": under 20 with any GLM tokenizer), with room to spare, plus
 * the begin and end tokens around each image. */
enum { TEMPLATE_TOKENS = 32, TOKENS_PER_IMAGE = 2 };

enum stage { STAGE_INGEST, STAGE_LAYOUT, STAGE_PREFILL, STAGE_DECODE, STAGE_VALIDATE, STAGE_COUNT };
static const char *const stage_names[] = { "ingest", "layout", "prefill", "decode", "validate" };
_Static_assert(sizeof stage_names / sizeof stage_names[0] == STAGE_COUNT, "stage names");

struct cached_grammar {
	const struct ex_schema *schema;
	struct ex_grammar *grammar;
};

struct ex_extractor {
	struct vlm_model *model;
	struct vlm_session *session;
	struct ex_vocab *vocab;
	struct cached_grammar *grammars;
	size_t n_grammars;
	struct ex_limits limits;
	int max_tokens;
	int64_t n_ctx;
	size_t text_budget;
	struct ex_grammar_opts grammar_opts;
	int factor;              /* patch x merge: pixels per image token along a side */
	int64_t min_page_tokens; /* what smart_resize makes of the smallest image */
	ex_progress_fn *progress;
	bool (*abort)(void *user);
	void *user;
	char device[16];
	char model_id[256];
	char weights_sha256[65];
	bool has_weights_sha256;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *ex_schema_dir_default(void)
{
	const char *env = getenv("INTAKE_SCHEMA_DIR");
	struct stat st;
	if (env && *env)
		return env;
	if (stat(INTAKE_SCHEMA_INSTALL_DIR, &st) == 0 && S_ISDIR(st.st_mode))
		return INTAKE_SCHEMA_INSTALL_DIR;
	return INTAKE_SCHEMA_SOURCE_DIR;
}

/* "cpu" for cpu and auto; cuda is refused until the engine runs models there. */
static int pick_device(const char *device, char out[16], vlm_err *err)
{
	if (!device || strcmp(device, "auto") == 0 || strcmp(device, "cpu") == 0) {
		snprintf(out, 16, "cpu");
		return 0;
	}
	if (strcmp(device, "cuda") != 0)
		return vlm_err_set(err, -EINVAL, "extract: device '%s': not cpu, cuda or auto",
				   device);
	if (vlm_cuda_device_count() == 0)
		return vlm_err_set(err, -ENODEV,
				   "extract: device 'cuda': no CUDA device found "
				   "(built without CUDA, no GPU, or no driver)");
	return vlm_err_set(err, -ENOTSUP,
			   "extract: device 'cuda': this engine runs models on the "
			   "CPU only; use --device cpu or auto");
}

/* SHA-256 of the weights index, or of the single weights file (docs/result-format.md). */
static int weights_hash(struct ex_extractor *x, const char *dir, vlm_err *err)
{
	static const char *const names[] = { "model.safetensors.index.json", "model.safetensors" };
	for (size_t i = 0; i < 2; i++) {
		char *path = g_build_filename(dir, names[i], NULL);
		uint64_t size;
		int rc = ex_file_sha256(path, &size, x->weights_sha256, err);
		g_free(path);
		if (rc == 0)
			x->has_weights_sha256 = true;
		if (rc != -ENOENT)
			return rc;
	}
	return vlm_err_set(err, -ENOENT,
			   "extract: model '%s': no model.safetensors.index.json "
			   "or model.safetensors",
			   dir);
}

int ex_extractor_new(const struct ex_extract_opts *opts, struct ex_extractor **out, vlm_err *err)
{
	*out = NULL;
	if (!opts->model_dir || opts->max_tokens < 0 || opts->n_ctx < 0 || opts->n_threads < 0)
		return vlm_err_set(err, -EINVAL,
				   "extract: a model directory and non-negative "
				   "max_tokens, context and threads are needed");
	if (opts->max_value_bytes > UINT16_MAX)
		return vlm_err_set(err, -EINVAL, "extract: max_value_bytes %zu is above 65535",
				   opts->max_value_bytes);
	struct ex_extractor *x = calloc(1, sizeof *x);
	if (!x)
		return vlm_err_set(err, -ENOMEM, "extract: out of memory");
	if (opts->limits)
		x->limits = *opts->limits;
	else
		ex_limits_default(&x->limits);
	x->max_tokens = opts->max_tokens ? opts->max_tokens : DEFAULT_MAX_TOKENS;
	x->text_budget = opts->no_text_hint  ? 0
			 : opts->text_budget ? opts->text_budget
					     : EX_PROMPT_TEXT_BUDGET;
	x->grammar_opts.max_value_bytes = opts->max_value_bytes;
	x->progress = opts->progress;
	x->abort = opts->abort;
	x->user = opts->user;
	int rc = pick_device(opts->device, x->device, err);
	if (rc == 0)
		rc = ex_model_id(opts->model_dir, x->model_id, sizeof x->model_id, err);
	if (rc == 0)
		rc = weights_hash(x, opts->model_dir, err);
	if (rc == 0)
		rc = vlm_model_load(opts->model_dir,
				    &(struct vlm_model_opts){ .n_threads = opts->n_threads,
							      .bf16_activations = opts->bf16 },
				    &x->model, err);
	if (rc == 0) {
		struct vlm_model_info info;
		vlm_model_get_info(x->model, &info);
		x->n_ctx = opts->n_ctx ? opts->n_ctx : DEFAULT_CTX;
		if (x->n_ctx > info.max_context)
			x->n_ctx = info.max_context;
		x->factor = info.patch_size * info.merge_size;
		/* min_pixels bounds both frames of a still image together. */
		x->min_page_tokens = (info.min_pixels / 2 + (int64_t)x->factor * x->factor - 1) /
				     ((int64_t)x->factor * x->factor);
		rc = vlm_session_new(x->model, x->n_ctx, &x->session, err);
	}
	if (rc == 0)
		rc = ex_vocab_from_model(x->model, &x->vocab, err);
	if (rc < 0) {
		ex_extractor_free(x);
		return rc;
	}
	*out = x;
	return 0;
}

void ex_extractor_free(struct ex_extractor *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n_grammars; i++)
		ex_grammar_free(x->grammars[i].grammar);
	free(x->grammars);
	ex_vocab_free(x->vocab);
	vlm_session_free(x->session);
	vlm_model_free(x->model);
	free(x);
}

const char *ex_extractor_model_id(const struct ex_extractor *x)
{
	return x->model_id;
}

const char *ex_extractor_device(const struct ex_extractor *x)
{
	return x->device;
}

void ex_extractor_forget(struct ex_extractor *x, const struct ex_schema *schema)
{
	for (size_t i = 0; i < x->n_grammars; i++) {
		if (x->grammars[i].schema != schema)
			continue;
		ex_grammar_free(x->grammars[i].grammar);
		x->grammars[i] = x->grammars[--x->n_grammars];
		return;
	}
}

static int grammar_for(struct ex_extractor *x, const struct ex_schema *schema,
		       const struct ex_grammar **out, vlm_err *err)
{
	for (size_t i = 0; i < x->n_grammars; i++) {
		if (x->grammars[i].schema == schema) {
			*out = x->grammars[i].grammar;
			return 0;
		}
	}
	struct cached_grammar *grown = realloc(x->grammars, (x->n_grammars + 1) * sizeof *grown);
	if (!grown)
		return vlm_err_set(err, -ENOMEM, "extract: out of memory");
	x->grammars = grown;
	struct ex_grammar *g = NULL;
	int rc = ex_grammar_compile_opts(schema, x->vocab, &x->grammar_opts, &g, err);
	if (rc < 0)
		return rc;
	x->grammars[x->n_grammars++] = (struct cached_grammar){ schema, g };
	*out = g;
	return 0;
}

/* One prompt: its pages, the images given to the engine (downscaled copies where needed), its
 * text, and after generation the result, grammar state and evidence (which the merge borrows). */
struct prompt {
	size_t first, n; /* page indexes */
	struct vlm_image *images;
	uint8_t **scaled; /* [n], NULL where the page goes as it is */
	char *text;
	struct vlm_result res;
	struct ex_grammar_state *state;
	struct ex_field_evidence *evidence;
	size_t n_evidence;
};

static void prompt_done(struct prompt *p)
{
	for (size_t i = 0; p->scaled && i < p->n; i++)
		free(p->scaled[i]);
	free(p->scaled);
	free(p->images);
	g_free(p->text);
	vlm_result_done(&p->res);
	free(p->evidence);
	ex_grammar_state_free(p->state);
}

/* The prompt's text and images, fitted into the context (see the top of this file). */
static int layout(struct ex_extractor *x, const struct ex_schema *schema, const struct ex_doc *doc,
		  struct prompt *p, vlm_err *err)
{
	const struct ex_page *pages = &doc->pages[p->first];
	struct ex_prompt_opts po = { .text_budget = x->text_budget };
	int64_t room = 0, need_min = (int64_t)p->n * x->min_page_tokens;
	for (int attempt = 0; attempt < 2; attempt++) {
		g_free(p->text);
		ex_prompt_build(schema, pages, p->n, doc->n_pages, &po, &p->text, err);
		size_t n_text;
		int rc = vlm_model_count_tokens(x->model, p->text, strlen(p->text), &n_text, err);
		if (rc < 0)
			return rc;
		room = x->n_ctx - x->max_tokens - (int64_t)n_text - TEMPLATE_TOKENS -
		       TOKENS_PER_IMAGE * (int64_t)p->n;
		if (room >= need_min)
			break;
		if (attempt == 1)
			return vlm_err_set(err, -E2BIG,
					   "extract: schema '%s': a prompt of %zu "
					   "tokens, %d for the answer and %zu page image(s) do "
					   "not fit the model's context of %lld tokens",
					   schema->name, n_text, x->max_tokens, p->n,
					   (long long)x->n_ctx);
		po = (struct ex_prompt_opts){ .compact = true };
	}
	uint64_t budget = (uint64_t)(room / (int64_t)p->n) * (uint64_t)x->factor * x->factor;
	if (budget > schema->pages.pixel_budget)
		budget = schema->pages.pixel_budget;
	p->images = calloc(p->n, sizeof *p->images);
	p->scaled = calloc(p->n, sizeof *p->scaled);
	if (!p->images || !p->scaled)
		return vlm_err_set(err, -ENOMEM, "extract: out of memory");
	for (size_t i = 0; i < p->n; i++) {
		const struct ex_page *pg = &pages[i];
		int w, h;
		p->images[i] = (struct vlm_image){ pg->rgb, pg->width, pg->height };
		if (!ex_tile_fit(pg->width, pg->height, budget, x->factor, &w, &h))
			continue;
		p->scaled[i] = malloc((size_t)w * h * 3);
		if (!p->scaled[i])
			return vlm_err_set(err, -ENOMEM, "extract: out of memory for a %dx%d page",
					   w, h);
		int rc = ex_tile_downscale(pg->rgb, pg->width, pg->height, p->scaled[i], w, h, err);
		if (rc < 0)
			return rc;
		p->images[i] = (struct vlm_image){ p->scaled[i], w, h };
	}
	return 0;
}

/* One generation's hooks: the grammar state for the mask, and per-token bookkeeping (the time
 * of the first token, which ends the prefill, and the progress line). The engine gives both
 * hooks the same `user`, so this holds both. */
struct watch {
	struct ex_extractor *x;
	struct ex_grammar_state *state;
	struct ex_progress prog;
	double t_start, t_first;
};

static int mask(void *user, const int32_t *generated, size_t n_generated, float *logits,
		int64_t n_vocab)
{
	struct watch *w = user;
	return ex_grammar_mask(w->state, generated, n_generated, logits, n_vocab);
}

static bool should_abort(void *user)
{
	struct watch *w = user;
	return w->x->abort && w->x->abort(w->x->user);
}

static void on_token(void *user, int32_t token, float logprob, const char *text, size_t len)
{
	struct watch *w = user;
	if (token < 0)
		return;
	double t = now_s();
	if (w->prog.n_tokens++ == 0)
		w->t_first = t;
	else
		w->prog.tokens_per_s = (double)(w->prog.n_tokens - 1) / (t - w->t_first);
	if (w->x->progress)
		w->x->progress(w->x->user, &w->prog);
}

/* Generates one prompt's answer under the grammar. A cut-off answer is not an error here: it
 * leaves *cut_off with the reason, and the document's result is `failed`. */
static int generate(struct ex_extractor *x, const struct ex_grammar *g, const struct ex_doc *doc,
		    struct prompt *p, struct watch *w, double *t, char **cut_off, vlm_err *err)
{
	int rc = ex_grammar_state_new(g, &p->state, err);
	if (rc < 0)
		return rc;
	struct vlm_request req = {
		.prompt = p->text,
		.images = p->images,
		.n_images = (int)p->n,
		.max_tokens = x->max_tokens,
		.mask = mask,
		.abort = should_abort,
		.on_token = on_token,
		.user = w,
	};
	w->state = p->state;
	w->t_start = now_s();
	w->t_first = 0;
	w->prog.n_tokens = 0;
	w->prog.tokens_per_s = 0;
	rc = vlm_generate(x->session, &req, &p->res, err);
	double t_end = now_s();
	double t_first = w->t_first ? w->t_first : t_end;
	t[STAGE_PREFILL] += t_first - w->t_start;
	t[STAGE_DECODE] += t_end - t_first;
	if (rc < 0)
		return rc;
	/* A partial answer is no answer: the caller decides whether to try again. */
	if (p->res.stop == VLM_STOP_ABORTED)
		return vlm_err_set(err, -ECANCELED, "extract: generation aborted after %zu tokens",
				   p->res.n_tokens);
	vlm_err why = { 0 };
	if (ex_grammar_finish(p->state, p->res.tokens, p->res.n_tokens, &why) < 0) {
		*cut_off = g_strdup_printf("pages %d-%d: %s", doc->pages[p->first].number,
					   doc->pages[p->first + p->n - 1].number, why.msg);
		return 0;
	}
	/* A one-page prompt knows each value's page; a value from a prompt of several pages
	 * could be on any of them, so its page stays unknown (0). */
	int page = p->n == 1 ? doc->pages[p->first].number : 0;
	return ex_grammar_evidence(p->state, p->res.logprobs, p->res.n_tokens, page, &p->evidence,
				   &p->n_evidence, err);
}

static double since(double *t0)
{
	double t = now_s(), d = t - *t0;
	*t0 = t;
	return d;
}

/* Merges the prompts' answers, validates, and builds the result. */
static int finish(struct ex_extractor *x, const struct ex_doc_source *src,
		  const struct ex_schema *schema, const struct ex_doc *doc, struct prompt *prompts,
		  size_t n_prompts, const char *cut_off, double *t, json_t **result, vlm_err *err)
{
	double t0 = now_s();
	struct ex_validation *v = NULL;
	struct ex_tile_part *parts = calloc(n_prompts + 1, sizeof *parts);
	json_t **answers = calloc(n_prompts + 1, sizeof *answers);
	struct ex_tile_merged merged = { 0 };
	int rc = 0;
	if (!parts || !answers) {
		rc = vlm_err_set(err, -ENOMEM, "extract: out of memory");
		goto out;
	}
	if (cut_off) {
		char *msg =
			g_strdup_printf("the answer was cut off (%s); raise --max-tokens", cut_off);
		rc = ex_validation_failed(msg, &v, err);
		g_free(msg);
	} else {
		for (size_t i = 0; i < n_prompts && rc == 0; i++) {
			json_error_t jerr;
			answers[i] = json_loads(ex_grammar_json(prompts[i].state), 0, &jerr);
			if (!answers[i])
				rc = vlm_err_set(err, -EBADMSG,
						 "extract: the grammar let through an "
						 "answer that does not parse: %s",
						 jerr.text);
			parts[i] = (struct ex_tile_part){ answers[i], prompts[i].evidence,
							  prompts[i].n_evidence };
		}
		if (rc == 0)
			rc = ex_tile_merge(schema, parts, n_prompts, &merged, err);
		if (rc == 0)
			rc = ex_validate(schema, merged.answer, merged.evidence, merged.n_evidence,
					 &v, err);
	}
	t[STAGE_VALIDATE] += since(&t0);
	if (rc == 0) {
		struct ex_stage_time timings[STAGE_COUNT];
		for (int i = 0; i < STAGE_COUNT; i++)
			timings[i] = (struct ex_stage_time){ stage_names[i], t[i] };
		struct ex_provenance prov = {
			.source_name = src->name,
			.source_size = src->size,
			.source_sha256 = src->sha256,
			.format = ex_format_name(doc->format),
			.n_pages = (int)doc->n_pages,
			.model_id = x->model_id,
			.weights_sha256 = x->has_weights_sha256 ? x->weights_sha256 : NULL,
			.device = x->device,
			.timings = timings,
			.n_timings = STAGE_COUNT,
		};
		rc = ex_result_build(schema, v, &prov, result, err);
	}
out:
	ex_validation_free(v);
	ex_tile_merged_done(&merged);
	for (size_t i = 0; answers && i < n_prompts; i++)
		json_decref(answers[i]);
	free(answers);
	free(parts);
	return rc;
}

int ex_extract_doc(struct ex_extractor *x, const struct ex_doc *doc,
		   const struct ex_doc_source *src, const struct ex_schema *schema, json_t **result,
		   vlm_err *err)
{
	*result = NULL;
	double t[STAGE_COUNT] = { [STAGE_INGEST] = src->ingest_s }, t0;
	const struct ex_grammar *g = NULL;
	int rc = grammar_for(x, schema, &g, err);
	if (rc < 0)
		return rc;
	int per = schema->pages.pages_per_prompt < 1 ? 1 : schema->pages.pages_per_prompt;
	size_t n_prompts = ex_tile_n_prompts(doc->n_pages, per);
	struct prompt *prompts = calloc(n_prompts, sizeof *prompts);
	char *cut_off = NULL;
	if (!prompts)
		return vlm_err_set(err, -ENOMEM, "extract: out of memory");
	struct watch w = { .x = x,
			   .prog = { .n_prompts = n_prompts, .n_pages = (int)doc->n_pages } };
	for (size_t i = 0; i < n_prompts && rc == 0 && !cut_off; i++) {
		struct prompt *p = &prompts[i];
		p->first = i * (size_t)per;
		p->n = doc->n_pages - p->first < (size_t)per ? doc->n_pages - p->first
							     : (size_t)per;
		t0 = now_s();
		rc = layout(x, schema, doc, p, err);
		t[STAGE_LAYOUT] += since(&t0);
		w.prog.prompt = i + 1;
		w.prog.first_page = doc->pages[p->first].number;
		w.prog.last_page = doc->pages[p->first + p->n - 1].number;
		if (rc == 0)
			rc = generate(x, g, doc, p, &w, t, &cut_off, err);
	}
	if (rc == 0)
		rc = finish(x, src, schema, doc, prompts, n_prompts, cut_off, t, result, err);
	for (size_t i = 0; i < n_prompts; i++)
		prompt_done(&prompts[i]);
	free(prompts);
	g_free(cut_off);
	return rc;
}

int ex_extract(struct ex_extractor *x, const char *path, const struct ex_schema *schema,
	       json_t **result, vlm_err *err)
{
	*result = NULL;
	double t0 = now_s();
	struct ex_doc *doc = NULL;
	char sha[65];
	struct ex_doc_source src = { .name = path, .sha256 = sha };
	int rc = ex_doc_load(path, &x->limits, &doc, err);
	if (rc == 0)
		rc = ex_file_sha256(path, &src.size, sha, err);
	src.ingest_s = since(&t0);
	if (rc == 0)
		rc = ex_extract_doc(x, doc, &src, schema, result, err);
	ex_doc_free(doc);
	return rc;
}
