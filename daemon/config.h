/* intaked's configuration: one YAML file (docs/configuration.md) read into one immutable struct.
 * Loading checks everything it can without touching the file system and reports every problem,
 * one line each, so a bad file is fixed in one pass. SIGHUP builds a new struct and swaps it in;
 * nothing keeps pointers into an old one across a reload. */
#ifndef INTAKED_CONFIG_H
#define INTAKED_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ex.h"

#define CONFIG_DEFAULT_PATH "/etc/intake/intake.yaml"

enum config_watch {
	CONFIG_WATCH_AUTO,
	CONFIG_WATCH_INOTIFY,
	CONFIG_WATCH_POLL,
	CONFIG_WATCH_COUNT
};
enum config_originals { CONFIG_ORIGINALS_ARCHIVE, CONFIG_ORIGINALS_DELETE, CONFIG_ORIGINALS_COUNT };
enum config_duplicates {
	CONFIG_DUPLICATES_NOTICE,
	CONFIG_DUPLICATES_REUSE,
	CONFIG_DUPLICATES_COUNT
};

struct config_inbox {
	char *name;   /* results, archive and failed files go to <dir>/<name>/ */
	char *path;   /* absolute */
	char *schema; /* NULL: no schema, the pages processor */
	enum config_watch watch;
	double stability_s; /* a file must keep its size and times this long before it is taken */
};

struct config {
	char *source; /* the file read, or "built-in demo defaults" */
	struct config_inbox *inboxes;
	size_t n_inboxes;
	char *outbox, *archive, *failed, *state, *model; /* absolute paths */
	char *device;                                    /* "auto", "cpu" or "cuda" */
	bool bf16;       /* precision: bf16 activations (ex_extract_opts.bf16); false: f32 */
	char *schemas;   /* where inboxes' schemas are found; NULL: ex_schema_dir_default() */
	int max_tokens;  /* per prompt of schema extraction; 0: the extractor's default */
	int context;     /* tokens per prompt; 0: the extractor's default */
	int workers;     /* sandboxed parser children at once */
	int max_claimed; /* jobs claimed but unfinished before claiming pauses */
	uint64_t
		spool_min_free; /* bytes free on the state file system below which claiming pauses */
	double poll_interval_s;   /* listing interval of polled inboxes */
	double rescan_interval_s; /* full scan of every inbox, the safety net under inotify */
	enum config_originals originals;
	enum config_duplicates duplicates;
	int max_attempts; /* crashes or timeouts of one document before it is failed */
	double backoff_initial_s, backoff_max_s;
	struct ex_limits limits;
	double parse_timeout_s; /* the parser child is killed after this long */
	uint64_t parse_memory;  /* the child's address-space limit */
	double parse_cpu_s;     /* the child's CPU-time limit */
};

/* Receives each problem found, one line "config: 'FILE' line N: key 'K': what is wrong". */
typedef void config_report_fn(void *user, const char *msg);

/* Reads `path`; NULL means CONFIG_DEFAULT_PATH when that file exists, else the built-in demo
 * defaults rooted at ./intake-demo. Relative paths in a file are taken relative to the file's
 * directory. On any problem, calls `report` once per problem (it may be NULL), fills `err` with
 * a summary and returns -EINVAL (-errno when the file cannot be read); *out is then NULL.
 * The caller frees *out with config_free. */
int config_load(const char *path, struct config **out, config_report_fn *report, void *user,
		vlm_err *err);
void config_free(struct config *cfg); /* accepts NULL and half-built structs */

#endif
