/* Schema extraction for the daemon (see model.h): the schema table, used by the main loop only,
 * and the worker thread with the extractor, used by the worker only. They meet in two queues under
 * one mutex: `todo` (submitted, not started) and `done` (finished, announced on an eventfd).
 * The worker starts with the first submitted job, so a daemon without schema inboxes never has a
 * thread or a model. */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "extract/schema.h"
#include "log.h"
#include "model.h"

struct model {
	const struct config *cfg; /* model dir, device, limits: read by the worker at load */
	GHashTable *schemas;      /* char *name -> struct ex_schema * */
	GPtrArray *retired;       /* struct ex_schema * replaced by a reload */
	int efd;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	GQueue todo, done;      /* struct model_job *, under mu */
	bool quit;              /* under mu */
	struct ex_extractor *x; /* the worker's */
	/* What the worker loads the model with, copied at start: a reload frees its
	 * configuration, and a changed model applies after a restart (model.h). */
	char *model_dir, *device;
	struct ex_limits limits;
	struct ex_extract_opts opts;
#ifdef INTAKE_TEST_HOOKS
	long test_steps; /* decode steps of an extraction INTAKE_TEST_MODEL aborts; -1: none */
#endif
};

static const char *schema_dir(const struct config *cfg)
{
	return cfg->schemas ? cfg->schemas : ex_schema_dir_default();
}

/* A table of the schemas `cfg`'s inboxes name. NULL with err filled on the first failure. */
static GHashTable *load_schemas(const struct config *cfg, vlm_err *err)
{
	GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					      (GDestroyNotify)ex_schema_free);
	for (size_t i = 0; i < cfg->n_inboxes; i++) {
		const char *name = cfg->inboxes[i].schema;
		if (!name || g_hash_table_contains(t, name))
			continue;
		struct ex_schema *s;
		vlm_err e = { 0 };
		if (ex_schema_find(name, schema_dir(cfg), &s, &e) < 0) {
			vlm_err_set(err, e.code, "model: inbox '%s': schema '%s': %s",
				    cfg->inboxes[i].name, name, e.msg);
			g_hash_table_destroy(t);
			return NULL;
		}
		g_hash_table_insert(t, g_strdup(name), s);
	}
	return t;
}

#ifdef INTAKE_TEST_HOOKS
/* Test builds only: INTAKE_TEST_MODEL=oom:N makes the first N extractions fail as an engine out
 * of (GPU) memory does; abort:N makes the engine's abort hook stop the next N after a few
 * decode steps, as a drain or a hung step would; both may be given ("oom:1,abort:1"). The daemon
 * tests see them retried without using attempts. The worker thread is the only caller. */
#define TEST_ABORT_AFTER_STEPS 3

static bool test_fault(const char *mode)
{
	static struct {
		const char *mode;
		long left;
	} faults[] = { { "oom", 0 }, { "abort", 0 } };
	static bool parsed;
	size_t n = sizeof faults / sizeof faults[0];
	if (!parsed) {
		parsed = true;
		const char *v = getenv("INTAKE_TEST_MODEL");
		for (const char *p = v; p && *p;) {
			size_t len = strcspn(p, ":");
			for (size_t i = 0; i < n; i++)
				if (strlen(faults[i].mode) == len &&
				    strncmp(p, faults[i].mode, len) == 0)
					faults[i].left =
						strtol(p + len + (p[len] == ':'), NULL, 10);
			p += strcspn(p, ",");
			p += *p == ',';
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(faults[i].mode, mode) != 0 || faults[i].left <= 0)
			continue;
		faults[i].left--;
		return true;
	}
	return false;
}

static bool test_abort(void *user)
{
	long *steps = user;
	return *steps >= 0 && ++*steps > TEST_ABORT_AFTER_STEPS;
}
#endif

int model_new(const struct config *cfg, struct model **out, vlm_err *err)
{
	*out = NULL;
	struct model *m = calloc(1, sizeof *m);
	if (!m)
		return vlm_err_set(err, -ENOMEM, "model: out of memory");
	m->cfg = cfg;
	m->model_dir = strdup(cfg->model);
	m->device = strdup(cfg->device);
	m->limits = cfg->limits;
	m->opts = (struct ex_extract_opts){ .model_dir = m->model_dir,
					    .device = m->device,
					    .bf16 = cfg->bf16,
					    .max_tokens = cfg->max_tokens,
					    .n_ctx = cfg->context,
					    .limits = &m->limits };
#ifdef INTAKE_TEST_HOOKS
	m->opts.abort = test_abort;
	m->opts.user = &m->test_steps;
#endif
	m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->retired = g_ptr_array_new_with_free_func((GDestroyNotify)ex_schema_free);
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	g_queue_init(&m->todo);
	g_queue_init(&m->done);
	int rc = 0;
	if (!m->model_dir || !m->device)
		rc = vlm_err_set(err, -ENOMEM, "model: out of memory");
	else if (m->efd < 0)
		rc = vlm_err_set(err, -errno, "model: eventfd: %s", strerror(errno));
	else if (!(m->schemas = load_schemas(cfg, err)))
		rc = err ? err->code : -EINVAL;
	if (rc < 0) {
		model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	if (m->started) {
		pthread_mutex_lock(&m->mu);
		m->quit = true;
		pthread_cond_signal(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thread, NULL);
	}
	/* The worker is gone. The extractor goes first: its grammars point to the schemas. */
	ex_extractor_free(m->x);
	if (m->schemas)
		g_hash_table_destroy(m->schemas);
	g_ptr_array_free(m->retired, TRUE);
	free(m->model_dir);
	free(m->device);
	/* Jobs still queued belong to the caller (model.h); only the lists go. */
	g_queue_clear(&m->todo);
	g_queue_clear(&m->done);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	if (m->efd >= 0)
		close(m->efd);
	free(m);
}

int model_set_config(struct model *m, const struct config *cfg, vlm_err *err)
{
	GHashTable *t = load_schemas(cfg, err);
	if (!t)
		return err ? err->code : -EINVAL;
	GHashTableIter it;
	gpointer key, schema;
	g_hash_table_iter_init(&it, m->schemas);
	while (g_hash_table_iter_next(&it, &key, &schema)) {
		g_ptr_array_add(m->retired, schema);
		g_hash_table_iter_steal(&it);
		g_free(key);
	}
	g_hash_table_destroy(m->schemas);
	m->schemas = t;
	m->cfg = cfg;
	return 0;
}

const struct ex_schema *model_schema(struct model *m, const char *name, vlm_err *err)
{
	struct ex_schema *s = g_hash_table_lookup(m->schemas, name);
	if (s)
		return s;
	if (ex_schema_find(name, schema_dir(m->cfg), &s, err) < 0)
		return NULL;
	g_hash_table_insert(m->schemas, g_strdup(name), s);
	return s;
}

int model_fd(const struct model *m)
{
	return m->efd;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The worker's part of one job: load the model when there is none, then extract. */
static void run_job(struct model *m, struct model_job *job)
{
	if (!m->x) {
		double t0 = mono();
		int rc = ex_extractor_new(&m->opts, &m->x, &job->err);
		if (rc < 0) {
			log_msg(LOG_ERR,
				"model: cannot load '%s' (retried with the next document): "
				"%s",
				m->opts.model_dir, job->err.msg);
			job->rc = rc;
			job->transient = true;
			return;
		}
		log_msg(LOG_NOTICE, "model: %s loaded on %s in %.1fs", ex_extractor_model_id(m->x),
			ex_extractor_device(m->x), mono() - t0);
	}
#ifdef INTAKE_TEST_HOOKS
	if (test_fault("oom")) {
		job->rc =
			vlm_err_set(&job->err, -ENOMEM, "model: out of memory (INTAKE_TEST_MODEL)");
		job->transient = true;
		return;
	}
	m->test_steps = test_fault("abort") ? 0 : -1;
#endif
	job->rc = ex_extract_doc(m->x, job->doc, &job->src, job->schema, &job->result, &job->err);
	/* Out of (GPU) memory is the machine's state, and an aborted generation (a stop, a hung
	 * step) says nothing about the document: neither uses an attempt. */
	job->transient = job->rc == -ENOMEM || job->rc == -ECANCELED;
}

static void *worker(void *arg)
{
	struct model *m = arg;
	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (!m->quit && g_queue_is_empty(&m->todo))
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->quit)
			break;
		struct model_job *job = g_queue_pop_head(&m->todo);
		pthread_mutex_unlock(&m->mu);
		run_job(m, job);
		pthread_mutex_lock(&m->mu);
		g_queue_push_tail(&m->done, job);
		uint64_t one = 1;
		ssize_t w = write(m->efd, &one, sizeof one);
		(void)w; /* an eventfd counter cannot overflow at one write per document */
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

void model_submit(struct model *m, struct model_job *job)
{
	job->result = NULL;
	job->rc = 0;
	job->transient = false;
	job->err = (vlm_err){ 0 };
	if (!m->started) {
		if (pthread_create(&m->thread, NULL, worker, m) != 0) {
			job->rc = vlm_err_set(&job->err, -EAGAIN,
					      "model: cannot start the worker "
					      "thread");
			job->transient = true;
			g_queue_push_tail(&m->done, job);
			uint64_t one = 1;
			ssize_t w = write(m->efd, &one, sizeof one);
			(void)w;
			return;
		}
		m->started = true;
	}
	pthread_mutex_lock(&m->mu);
	g_queue_push_tail(&m->todo, job);
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

bool model_cancel(struct model *m, struct model_job *job)
{
	pthread_mutex_lock(&m->mu);
	bool taken = g_queue_remove(&m->todo, job);
	pthread_mutex_unlock(&m->mu);
	return taken;
}

struct model_job *model_take(struct model *m)
{
	/* Cleared before the queue is looked at: a job finished after this read announces itself
	 * again, so none waits unseen until the next poll timeout. */
	uint64_t count;
	ssize_t r = read(m->efd, &count, sizeof count);
	(void)r; /* EAGAIN when nothing was announced: the queue says the same */
	pthread_mutex_lock(&m->mu);
	struct model_job *job = g_queue_pop_head(&m->done);
	pthread_mutex_unlock(&m->mu);
	return job;
}
