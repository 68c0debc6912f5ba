/* Configuration loading: YAML (libyaml's document API, for line numbers) into struct config.
 * Owns the defaults, the parsing of sizes and durations, and every check that needs no file
 * system access (types, ranges, unknown keys, overlapping directories). Each problem is reported
 * as it is found and loading goes on, so one run lists them all. Does not create directories:
 * that is the daemon's start-up. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"

static const char *const watch_names[] = { "auto", "inotify", "poll" };
_Static_assert(sizeof watch_names / sizeof watch_names[0] == CONFIG_WATCH_COUNT, "watch names");
static const char *const originals_names[] = { "archive", "delete" };
_Static_assert(sizeof originals_names / sizeof originals_names[0] == CONFIG_ORIGINALS_COUNT,
	       "originals names");
static const char *const duplicates_names[] = { "notice", "reuse" };
_Static_assert(sizeof duplicates_names / sizeof duplicates_names[0] == CONFIG_DUPLICATES_COUNT,
	       "duplicates names");
static const char *const device_names[] = { "auto", "cpu", "cuda" };
static const char *const precision_names[] = { "f32", "bf16" };

struct loader {
	const char *file;
	char *base; /* relative paths are resolved against this directory */
	yaml_document_t doc;
	int n_problems;
	config_report_fn *report;
	void *user;
};

__attribute__((format(printf, 4, 5))) static void problem(struct loader *l, const yaml_node_t *node,
							  const char *key, const char *fmt, ...)
{
	char what[256], line[640];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (node && key)
		snprintf(line, sizeof line, "config: '%s' line %zu: key '%s': %s", l->file,
			 node->start_mark.line + 1, key, what);
	else if (node)
		snprintf(line, sizeof line, "config: '%s' line %zu: %s", l->file,
			 node->start_mark.line + 1, what);
	else
		snprintf(line, sizeof line, "config: '%s': %s", l->file, what);
	vlm_err_flatten(line); /* keys and values quoted from the file may span lines */
	l->n_problems++;
	if (l->report)
		l->report(l->user, line);
}

static const char *scalar(struct loader *l, const yaml_node_t *node, const char *key)
{
	if (node->type != YAML_SCALAR_NODE) {
		problem(l, node, key, "expected a single value, not a %s",
			node->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
		return NULL;
	}
	return (const char *)node->data.scalar.value;
}

static bool set_string(struct loader *l, const yaml_node_t *node, const char *key, char **dst)
{
	const char *s = scalar(l, node, key);
	if (!s)
		return false;
	if (!*s) {
		problem(l, node, key, "must not be empty");
		return false;
	}
	char *copy = strdup(s);
	if (!copy) {
		problem(l, node, key, "out of memory");
		return false;
	}
	free(*dst);
	*dst = copy;
	return true;
}

/* Joins `rel` onto `base` unless it is absolute; NULL when out of memory. */
static char *resolve(const char *base, const char *rel)
{
	char *out = NULL;
	if (rel[0] == '/')
		return strdup(rel);
	if (asprintf(&out, "%s/%s", base, rel) < 0)
		return NULL;
	return out;
}

/* Canonical form for comparisons: no trailing '/', no "//", no "/./". */
static void tidy_path(char *p)
{
	char *w = p;
	for (const char *r = p; *r;) {
		if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || !r[2])))) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	*w = '\0';
	if (w > p + 1 && w[-1] == '/')
		w[-1] = '\0';
}

static bool set_path(struct loader *l, const yaml_node_t *node, const char *key, char **dst)
{
	const char *s = scalar(l, node, key);
	if (!s)
		return false;
	if (!*s) {
		problem(l, node, key, "must not be empty");
		return false;
	}
	if (strstr(s, "/../") || strncmp(s, "../", 3) == 0 || strcmp(s, "..") == 0 ||
	    (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0)) {
		problem(l, node, key, "'%s': '..' is not allowed in paths", s);
		return false;
	}
	char *p = resolve(l->base, s);
	if (!p) {
		problem(l, node, key, "out of memory");
		return false;
	}
	tidy_path(p);
	free(*dst);
	*dst = p;
	return true;
}

static bool set_enum(struct loader *l, const yaml_node_t *node, const char *key,
		     const char *const *names, int n, int *dst)
{
	const char *s = scalar(l, node, key);
	if (!s)
		return false;
	for (int i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0) {
			*dst = i;
			return true;
		}
	}
	char choices[128] = "";
	size_t used = 0;
	for (int i = 0; i < n && used < sizeof choices; i++)
		used += (size_t)snprintf(choices + used, sizeof choices - used, "%s%s",
					 i ? ", " : "", names[i]);
	problem(l, node, key, "'%s' is not one of %s", s, choices);
	return false;
}

/* A number with an optional unit suffix from `units` (name, multiplier), e.g. "2s", "512M". */
struct unit {
	const char *suffix;
	double mult;
};

static bool parse_number(const char *s, const struct unit *units, double *out)
{
	char *end;
	errno = 0;
	if (!*s || (*s != '.' && (*s < '0' || *s > '9')))
		return false;
	double v = strtod(s, &end);
	if (errno || !isfinite(v))
		return false;
	if (!*end) {
		*out = v;
		return true;
	}
	for (const struct unit *u = units; u && u->suffix; u++) {
		if (strcmp(end, u->suffix) == 0) {
			*out = v * u->mult;
			return true;
		}
	}
	return false;
}

static const struct unit duration_units[] = { { "ms", 0.001 }, { "s", 1 },    { "m", 60 },
					      { "min", 60 },   { "h", 3600 }, { NULL, 0 } };
static const struct unit size_units[] = {
	{ "K", 1024.0 },          { "KiB", 1024.0 },          { "M", 1048576.0 },
	{ "MiB", 1048576.0 },     { "G", 1073741824.0 },      { "GiB", 1073741824.0 },
	{ "T", 1099511627776.0 }, { "TiB", 1099511627776.0 }, { NULL, 0 }
};

static bool set_duration(struct loader *l, const yaml_node_t *node, const char *key, double min,
			 double max, double *dst)
{
	const char *s = scalar(l, node, key);
	double v;
	if (!s)
		return false;
	if (!parse_number(s, duration_units, &v)) {
		problem(l, node, key, "'%s' is not a duration (e.g. 500ms, 2s, 5m, 1h)", s);
		return false;
	}
	if (v < min || v > max) {
		problem(l, node, key, "'%s' is out of range (%gs to %gs)", s, min, max);
		return false;
	}
	*dst = v;
	return true;
}

static bool set_u64(struct loader *l, const yaml_node_t *node, const char *key,
		    const struct unit *units, double min, double max, uint64_t *dst)
{
	const char *s = scalar(l, node, key);
	double v;
	if (!s)
		return false;
	if (!parse_number(s, units, &v) || v != floor(v)) {
		problem(l, node, key, "'%s' is not a whole number%s", s,
			units ? " (suffixes K, M, G, T allowed)" : "");
		return false;
	}
	if (v < min || v > max) {
		problem(l, node, key, "'%s' is out of range (%.0f to %.0f)", s, min, max);
		return false;
	}
	*dst = (uint64_t)v;
	return true;
}

static bool set_int(struct loader *l, const yaml_node_t *node, const char *key, int min, int max,
		    int *dst)
{
	uint64_t v;
	if (!set_u64(l, node, key, NULL, min, max, &v))
		return false;
	*dst = (int)v;
	return true;
}

static bool valid_name(const char *s)
{
	if (!*s || *s == '.' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* Calls `fn` for each key/value pair of a mapping node; reports a non-mapping. */
typedef void pair_fn(struct loader *l, const char *key, const yaml_node_t *knode,
		     const yaml_node_t *value, void *ctx);

static void each_pair(struct loader *l, const yaml_node_t *map, const char *where, pair_fn *fn,
		      void *ctx)
{
	if (map->type != YAML_MAPPING_NODE) {
		problem(l, map, where, "expected a mapping of keys to values");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = yaml_document_get_node(&l->doc, p->key);
		const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
		if (k->type != YAML_SCALAR_NODE) {
			problem(l, k, where, "keys must be plain names");
			continue;
		}
		fn(l, (const char *)k->data.scalar.value, k, v, ctx);
	}
}

struct inbox_ctx {
	struct config *cfg;
	struct config_inbox *box;
	char key[96];
};

static void inbox_pair(struct loader *l, const char *key, const yaml_node_t *knode,
		       const yaml_node_t *v, void *ctx)
{
	struct inbox_ctx *c = ctx;
	char full[160];
	snprintf(full, sizeof full, "%s.%s", c->key, key);
	int e;
	if (strcmp(key, "path") == 0) {
		set_path(l, v, full, &c->box->path);
	} else if (strcmp(key, "name") == 0) {
		if (set_string(l, v, full, &c->box->name) && !valid_name(c->box->name))
			problem(l, v, full,
				"'%s': use letters, digits, '-', '_' and '.' "
				"(not first), at most 64",
				c->box->name);
	} else if (strcmp(key, "schema") == 0) {
		if (set_string(l, v, full, &c->box->schema) && !valid_name(c->box->schema))
			problem(l, v, full,
				"'%s' is not a schema name (letters, digits, '-', "
				"'_', '.')",
				c->box->schema);
	} else if (strcmp(key, "watch") == 0) {
		if (set_enum(l, v, full, watch_names, CONFIG_WATCH_COUNT, &e))
			c->box->watch = (enum config_watch)e;
	} else if (strcmp(key, "stability") == 0) {
		set_duration(l, v, full, 0, 3600, &c->box->stability_s);
	} else {
		problem(l, knode, full,
			"unknown key (known: path, name, schema, watch, "
			"stability)");
	}
}

static void load_inboxes(struct loader *l, struct config *cfg, const yaml_node_t *list,
			 double default_stability)
{
	if (list->type != YAML_SEQUENCE_NODE) {
		problem(l, list, "inboxes", "expected a list of inboxes (- path: DIR)");
		return;
	}
	size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	if (n == 0) {
		problem(l, list, "inboxes", "the list is empty; at least one inbox is needed");
		return;
	}
	cfg->inboxes = calloc(n, sizeof *cfg->inboxes);
	if (!cfg->inboxes) {
		problem(l, list, "inboxes", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *item =
			yaml_document_get_node(&l->doc, list->data.sequence.items.start[i]);
		struct config_inbox *box = &cfg->inboxes[cfg->n_inboxes++];
		box->stability_s = default_stability;
		struct inbox_ctx c = { .cfg = cfg, .box = box };
		snprintf(c.key, sizeof c.key, "inboxes[%zu]", i + 1);
		each_pair(l, item, c.key, inbox_pair, &c);
		if (!box->path) {
			problem(l, item, c.key, "has no 'path'");
			continue;
		}
		if (!box->name) {
			const char *slash = strrchr(box->path, '/');
			box->name = strdup(slash && slash[1] ? slash + 1 : "inbox");
			if (!box->name || !valid_name(box->name))
				problem(l, item, c.key,
					"the directory name '%s' cannot name its "
					"outbox folder; set 'name'",
					box->path);
		}
	}
}

static void retry_pair(struct loader *l, const char *key, const yaml_node_t *knode,
		       const yaml_node_t *v, void *ctx)
{
	struct config *cfg = ctx;
	if (strcmp(key, "attempts") == 0)
		set_int(l, v, "retry.attempts", 1, 100, &cfg->max_attempts);
	else if (strcmp(key, "backoff") == 0)
		set_duration(l, v, "retry.backoff", 0.01, 86400, &cfg->backoff_initial_s);
	else if (strcmp(key, "max_backoff") == 0)
		set_duration(l, v, "retry.max_backoff", 0.01, 7 * 86400, &cfg->backoff_max_s);
	else
		problem(l, knode, "retry",
			"unknown key '%s' (known: attempts, backoff, "
			"max_backoff)",
			key);
}

static void limits_pair(struct loader *l, const char *key, const yaml_node_t *knode,
			const yaml_node_t *v, void *ctx)
{
	struct config *cfg = ctx;
	struct ex_limits *lim = &cfg->limits;
	char full[96];
	snprintf(full, sizeof full, "limits.%s", key);
	uint64_t u;
	if (strcmp(key, "max_file_bytes") == 0)
		set_u64(l, v, full, size_units, 1, 1ull << 44, &lim->max_file_bytes);
	else if (strcmp(key, "max_pages") == 0) {
		if (set_u64(l, v, full, NULL, 1, 1000000, &u))
			lim->max_pages = (uint32_t)u;
	} else if (strcmp(key, "max_page_pixels") == 0)
		set_u64(l, v, full, NULL, 1, 1ull << 40, &lim->max_page_pixels);
	else if (strcmp(key, "max_total_pixels") == 0)
		set_u64(l, v, full, NULL, 1, 1ull << 44, &lim->max_total_pixels);
	else if (strcmp(key, "pdf_pixel_budget") == 0)
		set_u64(l, v, full, NULL, 1, 1ull << 40, &lim->pdf_pixel_budget);
	else if (strcmp(key, "pdf_max_dpi") == 0) {
		if (set_u64(l, v, full, NULL, 1, 2400, &u))
			lim->pdf_max_dpi = (double)u;
	} else if (strcmp(key, "parse_timeout") == 0)
		set_duration(l, v, full, 0.1, 86400, &cfg->parse_timeout_s);
	else if (strcmp(key, "parse_memory") == 0)
		set_u64(l, v, full, size_units, 64.0 * 1048576, 1ull << 44, &cfg->parse_memory);
	else if (strcmp(key, "parse_cpu") == 0)
		set_duration(l, v, full, 1, 86400, &cfg->parse_cpu_s);
	else
		problem(l, knode, full,
			"unknown key (known: max_file_bytes, max_pages, "
			"max_page_pixels, max_total_pixels, pdf_pixel_budget, pdf_max_dpi, "
			"parse_timeout, parse_memory, parse_cpu)");
}

struct top_ctx {
	struct config *cfg;
	const yaml_node_t *inboxes;
	double stability;
};

static void top_pair(struct loader *l, const char *key, const yaml_node_t *knode,
		     const yaml_node_t *v, void *ctx)
{
	struct top_ctx *t = ctx;
	struct config *cfg = t->cfg;
	int e;
	if (strcmp(key, "inboxes") == 0)
		t->inboxes = v; /* read last, once the default stability is known */
	else if (strcmp(key, "outbox") == 0)
		set_path(l, v, key, &cfg->outbox);
	else if (strcmp(key, "archive") == 0)
		set_path(l, v, key, &cfg->archive);
	else if (strcmp(key, "failed") == 0)
		set_path(l, v, key, &cfg->failed);
	else if (strcmp(key, "state") == 0)
		set_path(l, v, key, &cfg->state);
	else if (strcmp(key, "model") == 0)
		set_path(l, v, key, &cfg->model);
	else if (strcmp(key, "device") == 0) {
		if (set_enum(l, v, key, device_names, 3, &e))
			set_string(l, v, key, &cfg->device);
	} else if (strcmp(key, "precision") == 0) {
		if (set_enum(l, v, key, precision_names, 2, &e))
			cfg->bf16 = e == 1;
		if (cfg->bf16 && !vlm_bf16_supported())
			problem(l, v, key,
				"'bf16' needs AVX512_BF16, which this CPU (or this build) "
				"lacks; use f32");
	} else if (strcmp(key, "schemas") == 0)
		set_path(l, v, key, &cfg->schemas);
	else if (strcmp(key, "max_tokens") == 0)
		set_int(l, v, key, 1, 1 << 20, &cfg->max_tokens);
	else if (strcmp(key, "context") == 0)
		set_int(l, v, key, 256, 1 << 24, &cfg->context);
	else if (strcmp(key, "workers") == 0)
		set_int(l, v, key, 1, 256, &cfg->workers);
	else if (strcmp(key, "max_claimed") == 0)
		set_int(l, v, key, 1, 100000, &cfg->max_claimed);
	else if (strcmp(key, "spool_min_free") == 0)
		set_u64(l, v, key, size_units, 0, 1ull << 50, &cfg->spool_min_free);
	else if (strcmp(key, "stability") == 0)
		set_duration(l, v, key, 0, 3600, &t->stability);
	else if (strcmp(key, "poll_interval") == 0)
		set_duration(l, v, key, 0.1, 86400, &cfg->poll_interval_s);
	else if (strcmp(key, "rescan_interval") == 0)
		set_duration(l, v, key, 1, 86400, &cfg->rescan_interval_s);
	else if (strcmp(key, "originals") == 0) {
		if (set_enum(l, v, key, originals_names, CONFIG_ORIGINALS_COUNT, &e))
			cfg->originals = (enum config_originals)e;
	} else if (strcmp(key, "duplicates") == 0) {
		if (set_enum(l, v, key, duplicates_names, CONFIG_DUPLICATES_COUNT, &e))
			cfg->duplicates = (enum config_duplicates)e;
	} else if (strcmp(key, "retry") == 0)
		each_pair(l, v, key, retry_pair, cfg);
	else if (strcmp(key, "limits") == 0)
		each_pair(l, v, key, limits_pair, cfg);
	else
		problem(l, knode, key,
			"unknown key (known: inboxes, outbox, archive, failed, "
			"state, model, device, precision, schemas, max_tokens, context, workers, "
			"max_claimed, "
			"spool_min_free, stability, "
			"poll_interval, rescan_interval, originals, duplicates, retry, limits)");
}

/* True when `inner` is `outer` or lies below it (both tidy absolute paths). */
static bool path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);
	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

/* Inboxes must not overlap each other or the daemon's own directories: a result or an archived
 * original landing in an inbox would be taken again. */
static void check_layout(struct loader *l, struct config *cfg)
{
	const struct {
		const char *key, *path;
	} own[] = { { "outbox", cfg->outbox },
		    { "archive", cfg->archive },
		    { "failed", cfg->failed },
		    { "state", cfg->state } };
	for (size_t i = 0; i < cfg->n_inboxes; i++) {
		const struct config_inbox *a = &cfg->inboxes[i];
		if (!a->path || !a->name)
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct config_inbox *b = &cfg->inboxes[j];
			if (!b->path || !b->name)
				continue;
			if (path_within(a->path, b->path) || path_within(b->path, a->path))
				problem(l, NULL, NULL, "inboxes %zu and %zu overlap ('%s', '%s')",
					j + 1, i + 1, b->path, a->path);
			if (strcmp(a->name, b->name) == 0)
				problem(l, NULL, NULL,
					"inboxes %zu and %zu have the same name '%s'; "
					"set 'name' so their results stay apart",
					j + 1, i + 1, a->name);
		}
		for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
			if (cfg->originals == CONFIG_ORIGINALS_ARCHIVE ||
			    strcmp(own[k].key, "archive"))
				if (path_within(a->path, own[k].path) ||
				    path_within(own[k].path, a->path))
					problem(l, NULL, NULL, "inbox %zu '%s' overlaps %s '%s'",
						i + 1, a->path, own[k].key, own[k].path);
	}
}

static int set_defaults(struct config *cfg, const char *base)
{
	ex_limits_default(&cfg->limits);
	cfg->workers = 2;
	cfg->max_claimed = 64;
	cfg->spool_min_free = 256ull << 20;
	cfg->poll_interval_s = 10;
	cfg->rescan_interval_s = 300;
	cfg->max_attempts = 3;
	cfg->backoff_initial_s = 10;
	cfg->backoff_max_s = 600;
	cfg->parse_timeout_s = 120;
	cfg->parse_memory = 4ull << 30;
	cfg->parse_cpu_s = 120;
	cfg->outbox = resolve(base, "outbox");
	cfg->archive = resolve(base, "archive");
	cfg->failed = resolve(base, "failed");
	cfg->state = resolve(base, "state");
	cfg->model = resolve(base, "model");
	cfg->device = strdup("auto");
	if (!cfg->outbox || !cfg->archive || !cfg->failed || !cfg->state || !cfg->model ||
	    !cfg->device)
		return -ENOMEM;
	return 0;
}

static int demo_defaults(struct config *cfg, vlm_err *err)
{
	char cwd[4096];
	if (!getcwd(cwd, sizeof cwd))
		return vlm_err_set(err, -errno, "config: cannot read the current directory: %s",
				   strerror(errno));
	char *base = resolve(cwd, "intake-demo");
	cfg->source = strdup("built-in demo defaults");
	cfg->inboxes = calloc(1, sizeof *cfg->inboxes);
	if (!base || !cfg->source || !cfg->inboxes || set_defaults(cfg, base) < 0) {
		free(base);
		return vlm_err_set(err, -ENOMEM, "config: out of memory");
	}
	cfg->n_inboxes = 1;
	cfg->inboxes[0] = (struct config_inbox){ .name = strdup("inbox"),
						 .path = resolve(base, "inbox"),
						 .stability_s = 2 };
	free(base);
	if (!cfg->inboxes[0].name || !cfg->inboxes[0].path)
		return vlm_err_set(err, -ENOMEM, "config: out of memory");
	return 0;
}

/* The absolute directory holding `path`; NULL when out of memory or the cwd is unreadable. */
static char *file_dir(const char *path)
{
	char cwd[4096], *out;
	const char *slash = strrchr(path, '/');
	if (path[0] == '/')
		return slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	if (!slash)
		return strdup(cwd);
	return asprintf(&out, "%s/%.*s", cwd, (int)(slash - path), path) < 0 ? NULL : out;
}

static int load_file(const char *path, struct config *cfg, config_report_fn *report, void *user,
		     vlm_err *err)
{
	struct loader l = { .file = path, .report = report, .user = user };
	FILE *f = fopen(path, "rb");
	if (!f)
		return vlm_err_set(err, -errno, "config: '%s': cannot open: %s", path,
				   strerror(errno));
	cfg->source = strdup(path);
	l.base = file_dir(path);
	if (!cfg->source || !l.base || set_defaults(cfg, l.base) < 0) {
		fclose(f);
		free(l.base);
		return vlm_err_set(err, -ENOMEM, "config: out of memory");
	}

	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	int rc = 0;
	if (!yaml_parser_load(&parser, &l.doc)) {
		char msg[300];
		snprintf(msg, sizeof msg, "config: '%s' line %zu: YAML syntax error: %s", path,
			 parser.problem_mark.line + 1, parser.problem ? parser.problem : "unknown");
		if (report)
			report(user, msg);
		rc = vlm_err_set(err, -EINVAL, "%s", msg);
		yaml_parser_delete(&parser);
		fclose(f);
		free(l.base);
		return rc;
	}
	yaml_parser_delete(&parser);
	fclose(f);

	const yaml_node_t *root = yaml_document_get_root_node(&l.doc);
	struct top_ctx t = { .cfg = cfg, .stability = 2 };
	if (!root)
		problem(&l, NULL, NULL, "the file is empty; at least 'inboxes' is needed");
	else
		each_pair(&l, root, NULL, top_pair, &t);
	if (root && !t.inboxes)
		problem(&l, root, "inboxes", "is missing; at least one inbox is needed");
	if (t.inboxes)
		load_inboxes(&l, cfg, t.inboxes, t.stability);
	if (cfg->backoff_max_s < cfg->backoff_initial_s)
		problem(&l, NULL, NULL,
			"retry.max_backoff (%gs) is shorter than retry.backoff (%gs)",
			cfg->backoff_max_s, cfg->backoff_initial_s);
	check_layout(&l, cfg);
	yaml_document_delete(&l.doc);
	free(l.base);
	if (l.n_problems)
		return vlm_err_set(err, -EINVAL, "config: '%s': %d problem%s", path, l.n_problems,
				   l.n_problems == 1 ? "" : "s");
	return 0;
}

int config_load(const char *path, struct config **out, config_report_fn *report, void *user,
		vlm_err *err)
{
	*out = NULL;
	struct config *cfg = calloc(1, sizeof *cfg);
	if (!cfg)
		return vlm_err_set(err, -ENOMEM, "config: out of memory");
	int rc;
	if (!path && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	rc = path ? load_file(path, cfg, report, user, err) : demo_defaults(cfg, err);
	if (rc < 0) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_inboxes; i++) {
		free(cfg->inboxes[i].name);
		free(cfg->inboxes[i].path);
		free(cfg->inboxes[i].schema);
	}
	free(cfg->inboxes);
	free(cfg->source);
	free(cfg->outbox);
	free(cfg->archive);
	free(cfg->failed);
	free(cfg->state);
	free(cfg->model);
	free(cfg->device);
	free(cfg->schemas);
	free(cfg);
}
