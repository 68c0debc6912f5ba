/* libextract: the public interface of intake's document layer (ingest, and as it grows, schemas,
 * constrained extraction, validation and results).
 *
 * Ingest owns turning one file into a document: its pages as 8-bit RGB rasters with resolution and
 * page number, plus the text layer of born-digital PDFs. The format is decided by magic bytes only;
 * limits are checked from headers before anything large is decoded. Every failure is one line in
 * vlm_err naming the file, the page where relevant, and the reason; nothing partial is returned.
 * Thread safety: ex_doc_load may run concurrently on different files. */
#ifndef EX_H
#define EX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vlm.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ex_format { EX_FORMAT_PDF, EX_FORMAT_TIFF, EX_FORMAT_JPEG, EX_FORMAT_PNG, EX_FORMAT_COUNT };
const char *ex_format_name(enum ex_format format); /* "pdf", "tiff", "jpeg", "png" */

/* Why a document was refused: vlm_err.reason after a failed ex_doc_load. */
enum ex_ingest_reason {
	EX_REASON_NONE,
	EX_REASON_IO,             /* cannot open or read the file (-errno of the system call) */
	EX_REASON_NOT_REGULAR,    /* directory, FIFO, device, symlink, hard-linked file (-EINVAL) */
	EX_REASON_EMPTY,          /* zero bytes (-EBADMSG) */
	EX_REASON_UNSUPPORTED,    /* magic bytes of no allowed format (-ENOTSUP) */
	EX_REASON_FILE_TOO_LARGE, /* limits.max_file_bytes (-E2BIG) */
	EX_REASON_TOO_MANY_PAGES, /* limits.max_pages (-E2BIG) */
	EX_REASON_PAGE_TOO_LARGE, /* limits.max_page_pixels or a dimension over 65535 (-E2BIG) */
	EX_REASON_TOTAL_TOO_LARGE, /* limits.max_total_pixels (-E2BIG) */
	EX_REASON_CORRUPT,         /* the decoder failed: truncated or damaged data (-EBADMSG) */
	EX_REASON_ENCRYPTED,       /* PDF needs a password (-EACCES) */
	EX_REASON_NO_PAGES,        /* a document with zero pages (-EBADMSG) */
	EX_REASON_IFD_LOOP,        /* TIFF directory chain loops (-EBADMSG) */
	EX_REASON_UNSUPPORTED_VARIANT, /* allowed format, variant we cannot decode (-ENOTSUP) */
	EX_REASON_INTERNAL, /* out of memory or a library failure not caused by the input */
	EX_REASON_COUNT
};
const char *ex_reason_name(enum ex_ingest_reason reason); /* "corrupt", "encrypted", ... */

/* True when a failed load means "this document is refused" (bad, unsupported or over-limit input)
 * rather than an internal failure worth retrying. */
bool ex_reason_is_refusal(enum ex_ingest_reason reason);

struct ex_limits {
	uint64_t max_file_bytes;   /* default 256 MiB */
	uint32_t max_pages;        /* default 500 */
	uint64_t max_page_pixels;  /* default 60 megapixels */
	uint64_t max_total_pixels; /* default 2 gigapixels over all pages */
	uint64_t pdf_pixel_budget; /* PDF render target per page, default 2 megapixels */
	double pdf_max_dpi;        /* default 300 */
};
void ex_limits_default(struct ex_limits *limits);

/* A word of a PDF text layer; box in page pixels, origin top-left, after rotation. */
struct ex_word {
	char *text; /* UTF-8, owned by the page */
	double x0, y0, x1, y1;
};

struct ex_page {
	int number;        /* 1-based */
	int width, height; /* pixels */
	double dpi_x, dpi_y;
	uint8_t *rgb; /* width * height * 3 bytes, rows top to bottom, owned by the page */
	char *text;   /* PDF text layer, UTF-8, owned; NULL for raster formats */
	struct ex_word *words;
	size_t n_words;
};

struct ex_doc {
	char *path;
	enum ex_format format;
	struct ex_page *pages;
	size_t n_pages;
};

/* Loads `path` into a new document (caller frees with ex_doc_free). `limits` may be NULL for the
 * defaults. Returns 0, or a negative errno with err->reason an enum ex_ingest_reason; on failure
 * *out is NULL. Never follows a symlink and never blocks on a FIFO. */
int ex_doc_load(const char *path, const struct ex_limits *limits, struct ex_doc **out,
		vlm_err *err);
/* The same from `size` bytes in memory (borrowed for the call; a decoder may read `data` while
 * it runs and keeps no pointer into it). `name` stands for the path in the document and in
 * errors. Applies every limit except the file checks (a zero size is refused as empty). */
int ex_doc_load_mem(const char *name, const void *data, size_t size, const struct ex_limits *limits,
		    struct ex_doc **out, vlm_err *err);
void ex_doc_free(struct ex_doc *doc);

/* Writes one page as an 8-bit RGB PNG file (for a person to look at), with pHYs when its DPI is
 * known. Writes a temporary file beside it and renames it over `path`, so `path` never holds a
 * partial file.
 * Returns 0 or a negative errno (-EINVAL for a page without pixels, -errno of a failed call). */
int ex_page_write_png(const struct ex_page *page, const char *path, vlm_err *err);

/* ---- Getting the model (model_pull.c) -------------------------------------------------------
 * A pulled model is a directory holding the files the engine needs, downloaded from a Hugging Face
 * hub repository at one commit, each checked against the hash the hub lists for it, plus the
 * manifest EX_MODEL_MANIFEST written last (repo, revision, commit, every file with its size and
 * SHA-256, and the pinned model id "repo@commit"). A directory without a complete manifest is not
 * a pulled model; one copied by hand is still usable and verifiable, but unpinned. */
#define EX_MODEL_MANIFEST "intake-model.json"
#define EX_MODEL_DEFAULT_REPO "zai-org/GLM-4.6V-Flash"

struct ex_pull_opts {
	const char *repo;     /* "owner/name" */
	const char *revision; /* branch, tag or commit */
	const char *dir;      /* created with its parents when missing */
	const char *endpoint; /* NULL: $HF_ENDPOINT, else https://huggingface.co */
	const char *token;    /* NULL: $HF_TOKEN (sent as Authorization: Bearer) */
	bool offline;  /* also when $HF_HUB_OFFLINE is 1/true/yes/on: never touch the network */
	bool progress; /* draw a progress bar with rate and ETA on stderr */
};

/* What ex_model_verify found; every field is filled on success. */
struct ex_model_check {
	bool pinned; /* a complete manifest was found and every file matches it */
	char model_id
		[256];  /* "repo@commit", or "unpinned@sha256:HEX" for a directory without one */
	size_t n_files; /* files hashed against the manifest (0 when unpinned) */
	int64_t n_bytes;
	size_t n_tensors; /* tensors present with the shapes the config implies */
	int64_t n_params;
};

/* Downloads opts->repo at opts->revision into opts->dir, or with offline verifies what is there
 * (it must be a pull of that repo and revision). Files already in place and matching are kept,
 * interrupted downloads resume from DIR/.intake-download/, and the manifest is replaced last.
 * On success `check` (may be NULL) describes the verified model. Errors: -EINVAL (bad options),
 * -ECONNREFUSED/-EHOSTUNREACH/-ETIMEDOUT/-EIO (network), -EACCES (401/403), -ENOENT (404, or
 * offline with no pulled model), -EBADMSG (a checksum mismatch: that file is removed, the others
 * kept), -ENOSPC (disk full), -EBUSY (another pull runs into DIR). Not thread-safe (libcurl's
 * global initialisation). */
int ex_model_pull(const struct ex_pull_opts *opts, struct ex_model_check *check, vlm_err *err);

/* Recomputes every file's SHA-256 against DIR's manifest when it has one, then loads the config
 * and the weights and checks every tensor the engine needs is present with the right shape.
 * Errors: -EBADMSG (a hash or size mismatch, an invalid manifest, a missing or mis-shaped
 * tensor), -ENOENT (a missing file), -ENOTSUP, -ENOMEM; err names the first bad file. */
int ex_model_verify(const char *dir, struct ex_model_check *out, vlm_err *err);

/* The model directory when none is given: $INTAKE_MODEL_DIR, else
 * /var/lib/intake/models/OWNER--NAME for repo "OWNER/NAME". Errors: -ENAMETOOLONG. */
int ex_model_default_dir(const char *repo, char *dir, size_t size, vlm_err *err);

/* The model id results carry, without hashing the weights: the manifest's "repo@commit", else
 * "unpinned@sha256:HEX" over model.safetensors.index.json or, for one model.safetensors, over
 * its header. */
int ex_model_id(const char *dir, char *id, size_t size, vlm_err *err);
/* The document as a new jansson object (the caller owns the reference; NULL when out of memory):
 * {"file", "format", "pages": [{"page", "width", "height", "dpi_x", "dpi_y"[, "text",
 * "words": [{"text", "box": [x0, y0, x1, y1]}]]}]}, text and words only with `with_text` and
 * only for pages that have a text layer. */
struct json_t;
struct json_t *ex_doc_to_json(const struct ex_doc *doc, bool with_text);

/* ---- Job journal ----------------------------------------------------------------------------
 * intaked's job journal: one SQLite database (WAL, synchronous=FULL) holding every document
 * the daemon has claimed and the state it is in. The daemon writes it; `intake status` reads it
 * and `intake reprocess` flags jobs in it for the daemon to take again. Each call is one durable
 * transaction unless wrapped in ex_journal_begin/ex_journal_commit.
 *
 * States: QUEUED (spool copy waiting for a worker) -> RUNNING (a parser child has it) -> DONE
 * (result published) or FAILED (quarantined with a reason) or DUPLICATE (same bytes as an earlier
 * job of the same inbox; a notice was published). A finished job is "settled" once its spool copy
 * has gone to the archive or failed directory (or was deleted). REPROCESSED marks a finished job
 * whose original was handed to a new job by `intake reprocess`.
 * Thread safety: one struct ex_journal per thread; several processes may open the same file. */

enum ex_job_state {
	EX_JOB_QUEUED,
	EX_JOB_RUNNING,
	EX_JOB_DONE,
	EX_JOB_DUPLICATE,
	EX_JOB_FAILED,
	EX_JOB_REPROCESSED,
	EX_JOB_STATE_COUNT
};
const char *ex_job_state_name(enum ex_job_state state); /* "queued", "running", ... */

#define EX_JOB_ID_LEN 24 /* 23 characters and the NUL */

struct ex_job {
	char id[EX_JOB_ID_LEN]; /* also the spool file's name */
	char inbox[72];         /* the inbox's configured name */
	char name[256];         /* the original file name: data only, never a path to write */
	char schema[72];        /* empty: no schema */
	char sha256[65];        /* of the claimed bytes */
	int64_t size;
	uint64_t src_dev, src_ino; /* the inbox file that was claimed, to recognise it again */
	int64_t src_mtime_ns;
	enum ex_job_state state;
	char dup_of[EX_JOB_ID_LEN];       /* DUPLICATE: the earlier job */
	char reprocess_of[EX_JOB_ID_LEN]; /* a job made by `intake reprocess` from that one */
	int attempts;                     /* crashes or timeouts of the parser so far */
	int transient;   /* transient failures so far (they do not consume attempts) */
	double next_try; /* QUEUED: not before this time (Unix seconds) */
	double claimed_at, started_at, finished_at;
	int pages;
	char result[96]; /* file name of the result or notice in the inbox's outbox */
	char dest[300];  /* file name of the original in the archive or failed folder */
	bool settled;    /* the spool copy is gone (archived, failed or deleted) */
	bool reprocess;  /* `intake reprocess` asked for this job to be done again */
	char reason[64]; /* FAILED: short reason ("corrupt", "timeout", ...) */
	char error[512]; /* last error line */
};

struct ex_journal;

/* Opens (creating it and its tables unless `readonly`) the journal at `path`. */
int ex_journal_open(const char *path, bool readonly, struct ex_journal **out, vlm_err *err);
void ex_journal_close(struct ex_journal *j); /* accepts NULL */

/* Group several writes into one transaction (ex_journal_rollback undoes them). */
int ex_journal_begin(struct ex_journal *j, vlm_err *err);
int ex_journal_commit(struct ex_journal *j, vlm_err *err);
void ex_journal_rollback(struct ex_journal *j);

int ex_journal_insert(struct ex_journal *j, const struct ex_job *job, vlm_err *err);
/* Writes every mutable field of `job` (found by id); -ENOENT when there is no such job. */
int ex_journal_update(struct ex_journal *j, const struct ex_job *job, vlm_err *err);
/* 1 and *out filled when found, 0 when not, or a negative errno. */
int ex_journal_get(struct ex_journal *j, const char *id, struct ex_job *out, vlm_err *err);

/* The earliest job of `inbox` with these bytes that did not fail (a duplicate's original). */
int ex_journal_find_sha(struct ex_journal *j, const char *inbox, const char *sha256,
			struct ex_job *out, vlm_err *err);

/* The job that claimed exactly this inbox file (same inbox, name, bytes, device, inode and
 * mtime): finding one means the daemon stopped between committing a claim and removing the
 * file from the inbox. */
int ex_journal_find_claim(struct ex_journal *j, const struct ex_job *probe, struct ex_job *out,
			  vlm_err *err);

struct ex_job_filter {
	unsigned states;          /* bit mask of 1u << enum ex_job_state; 0: any */
	int settled;              /* -1 any, 0 or 1 */
	int reprocess;            /* -1 any, 0 or 1 */
	const char *inbox;        /* NULL: any */
	const char *schema;       /* NULL: any */
	const char *name;         /* NULL: any */
	const char *reprocess_of; /* NULL: any */
	double since;             /* claimed_at >= since; 0: any */
	double ready_by;          /* next_try <= ready_by; 0: any */
	bool newest_first;        /* else oldest claimed first */
	size_t limit;             /* 0: no limit */
};
#define EX_JOB_FILTER_ANY ((struct ex_job_filter){ .settled = -1, .reprocess = -1 })

/* Jobs matching `f` in a new array (*out, free()d by the caller; NULL when none). Returns the
 * count or a negative errno. */
int ex_journal_list(struct ex_journal *j, const struct ex_job_filter *f, struct ex_job **out,
		    vlm_err *err);
/* Number of jobs matching `f`, or a negative errno. */
int64_t ex_journal_count(struct ex_journal *j, const struct ex_job_filter *f, vlm_err *err);

/* The earliest next_try of the QUEUED jobs (only of those that never failed, attempts and
 * transient both 0, when `fresh_only`): 1 and *out set, 0 when there is none, or a negative
 * errno. An index seek, cheap enough for every round of the daemon's loop. */
int ex_journal_next_try(struct ex_journal *j, bool fresh_only, double *out, vlm_err *err);

struct ex_inbox_stats {
	char inbox[72];
	int64_t jobs[EX_JOB_STATE_COUNT]; /* per state */
	int64_t recent;                   /* finished (done, duplicate, failed) since `since` */
	double recent_seconds;            /* their mean time from claim to finish */
};
/* One entry per inbox in the journal, by name, in a new array (*out, free()d by the caller).
 * Returns the count or a negative errno. */
int ex_journal_stats(struct ex_journal *j, double since, struct ex_inbox_stats **out, vlm_err *err);

/* ---- Extraction (extract.c) -------------------------------------------------------------------
 * An extractor holds what every document reuses: the model, one session (its KV cache), the
 * vocabulary and a compiled grammar per schema. The daemon makes one and calls ex_extract per
 * document; the CLI makes one for one document. One document at a time per extractor (one
 * session); separate extractors may run in separate threads, each with its own model memory. */
struct ex_schema; /* schema.h */
struct ex_extractor;

/* Where a long extraction is, for a progress line. */
struct ex_progress {
	size_t prompt, n_prompts;           /* 1-based prompt being generated, of n_prompts */
	int first_page, last_page, n_pages; /* its pages, of the document's */
	size_t n_tokens;                    /* tokens generated in this prompt so far */
	double tokens_per_s; /* decode rate of this prompt (0 until the second token) */
};
typedef void ex_progress_fn(void *user, const struct ex_progress *p);

struct ex_extract_opts {
	const char *model_dir;
	const char *device; /* "cpu", "cuda" or "auto" (NULL: auto, which is the CPU today) */
	int n_threads;      /* 0: every online CPU */
	bool bf16;          /* bf16 activations in prefill and vision matmuls (AVX512_BF16 CPUs:
	                       * vlm_model_opts.bf16_activations); false: f32 */
	int max_tokens;     /* per prompt; 0: 2048 */
	int64_t n_ctx;      /* context per prompt; 0: 16384, or the model's maximum if smaller */
	size_t text_budget; /* PDF text-layer bytes per prompt; 0: 6000 (EX_PROMPT_TEXT_BUDGET) */
	bool no_text_hint;  /* give the model no text layer */
	size_t max_value_bytes; /* a guard against runaway values: bytes of one value's text in
				 * the answer, at most 65535; 0: 512 (grammar.h) */
	const struct ex_limits *limits; /* ingest limits; NULL: defaults */
	ex_progress_fn *progress;       /* called after each generated token; may be NULL */
	/* Checked between decode steps (vlm_request.abort); true stops the document's extraction
	 * with -ECANCELED and no result. May be NULL. */
	bool (*abort)(void *user);
	void *user; /* given to progress and abort */
};

/* Loads the model and prepares a session. Errors: -ENODEV (--device cuda without a CUDA device),
 * -ENOTSUP (cuda asked of an engine that runs models on the CPU only), -EINVAL (bad options), the
 * model loader's errors. *out is caller-owned (ex_extractor_free). */
int ex_extractor_new(const struct ex_extract_opts *opts, struct ex_extractor **out, vlm_err *err);
void ex_extractor_free(struct ex_extractor *x); /* accepts NULL */
/* The model id results carry ("repo@commit" or "unpinned@sha256:..."), and the device name. */
const char *ex_extractor_model_id(const struct ex_extractor *x);
const char *ex_extractor_device(const struct ex_extractor *x);

/* Extracts `schema` from the document at `path`: ingest, pages split into prompts and sized by
 * the schema's page policy, the prompt, generation under the schema's grammar, merge, validation,
 * and the result JSON (docs/result-format.md) with provenance and timings. The schema is
 * borrowed; its compiled grammar is kept in the extractor until ex_extractor_forget (call that
 * before freeing a schema the extractor has seen).
 * Returns 0 with *result a new reference whose status is ok, needs_review, or failed (the model's
 * answer was cut off by max_tokens: "error" says so). Returns a negative errno with no result
 * when the document is refused (err->reason is its enum ex_ingest_reason, and
 * ex_reason_is_refusal() is true), when the abort hook stopped it (-ECANCELED), or on an internal
 * failure (engine, memory, I/O). */
int ex_extract(struct ex_extractor *x, const char *path, const struct ex_schema *schema,
	       json_t **result, vlm_err *err);
/* The document a result is about, as ex_extract_doc's caller knows it. */
struct ex_doc_source {
	const char *name;   /* shown in the result's source.name */
	uint64_t size;      /* bytes */
	const char *sha256; /* of those bytes, 64 hex digits */
	double ingest_s;    /* the time decoding took, for the result's timings */
};
/* ex_extract from a document already decoded elsewhere (the daemon's sandboxed parser): the same
 * steps after ingest, with the same returns; `doc` and `src` are borrowed. */
int ex_extract_doc(struct ex_extractor *x, const struct ex_doc *doc,
		   const struct ex_doc_source *src, const struct ex_schema *schema, json_t **result,
		   vlm_err *err);
/* Drops the compiled grammar the extractor keeps for `schema` (no-op if none). */
void ex_extractor_forget(struct ex_extractor *x, const struct ex_schema *schema);

/* The directory `--schema NAME` is looked up in: $INTAKE_SCHEMA_DIR, else the installed
 * share/intake/schemas when it exists, else the source tree's schemas/ (a build tree). */
const char *ex_schema_dir_default(void);

#ifdef __cplusplus
}
#endif
#endif
