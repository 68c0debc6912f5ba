/* Schema extraction for the daemon: the inboxes' schemas and one worker thread that owns the
 * model. The model is loaded once, in the daemon (never in a parser child), on the first document
 * that needs it, and again on the next document after a load failed (a model that is restarting
 * or missing is a transient failure of the documents that wait for it). The worker takes one
 * decoded document at a time (the CPU engine runs pages in turn; a single session holds the KV
 * cache), so documents parsed meanwhile by the children wait their turn with their pages.
 *
 * Threads: the main loop calls every function here; the worker touches only the extractor and
 * the model_job it is given. Schemas stay valid until model_free (a reload retires, never frees,
 * the ones it replaces: a job may still be extracting with one). */
#ifndef INTAKED_MODEL_H
#define INTAKED_MODEL_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "ex.h"

struct model;

/* One extraction, owned by the caller from model_submit until model_take hands it back. */
struct model_job {
	const struct ex_doc *doc;
	struct ex_doc_source src;
	const struct ex_schema *schema;
	void *user;
	/* Filled by the worker: rc 0 and a new result reference, or a negative errno and err.
	 * `transient` marks failures that are not the document's: the model could not be loaded,
	 * or it ran out of memory. */
	json_t *result;
	int rc;
	bool transient;
	vlm_err err;
};

/* Loads the schema of every inbox of `cfg` (which must outlive the model until
 * model_set_config) and starts the worker. Errors: a schema that cannot be found or is invalid
 * (-ENOENT, -EBADMSG, one line naming the inbox), -ENOMEM, thread creation. */
int model_new(const struct config *cfg, struct model **out, vlm_err *err);
/* Waits for the extraction in progress, if any, then frees everything but the jobs (still the
 * caller's, including those never taken back). Accepts NULL. */
void model_free(struct model *m);

/* A reload: the new configuration's schemas are loaded first; on any error the running ones are
 * kept and the error returned. A changed `model`, `device`, `max_tokens` or `context` applies
 * after a restart. */
int model_set_config(struct model *m, const struct config *cfg, vlm_err *err);

/* The schema `name`, loaded on demand (a job queued under a schema no longer configured);
 * NULL with err filled when it cannot be loaded. */
const struct ex_schema *model_schema(struct model *m, const char *name, vlm_err *err);

/* Readable (poll) when a finished job can be taken. */
int model_fd(const struct model *m);
/* Queues `job` for the worker. */
void model_submit(struct model *m, struct model_job *job);
/* Takes `job` back if the worker has not started it (a stop that cannot wait): true when taken.
 * A job in progress cannot be stopped; it comes back through model_take. */
bool model_cancel(struct model *m, struct model_job *job);
/* The next finished job, or NULL; call until NULL after model_fd was readable. */
struct model_job *model_take(struct model *m);

#endif
