/* Jobs: everything between "a file is ready in an inbox" and "its result is published and its
 * original archived". Owns the journal and the spool, the parser children (at most
 * `workers` at once, taken from the inboxes in turn), the processors that turn a decoded
 * document into a result, retries, quarantine, duplicates, reprocess requests and start-up
 * recovery. Every state change follows the order in spool.h and ex.h, so a crash at any point
 * leaves something jobs_recover finishes.
 *
 * Results: a job of an inbox with a `schema` is extracted by the model worker (model.h) from the
 * pages its parser child decoded; a job without one publishes those pages (text, words and
 * provenance). Not thread-safe; the main loop is the only caller. */
#ifndef INTAKED_JOBS_H
#define INTAKED_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "watch.h"

struct jobs;

/* Opens STATE/journal.db and STATE/spool, and loads the inboxes' schemas (model.h). `cfg` must
 * stay valid until jobs_set_config. */
int jobs_new(const struct config *cfg, struct jobs **out, vlm_err *err);
/* Accepts NULL; kills nothing (see jobs_abandon) but waits for an extraction in progress. */
void jobs_free(struct jobs *j);
/* A reload: refused (the running configuration kept) when a schema cannot be loaded. */
int jobs_set_config(struct jobs *j, const struct config *cfg, vlm_err *err);

/* Start-up recovery: clears unfinished claims and temporary files, requeues jobs that were
 * running, and finishes the settling of jobs that were done or failed. */
int jobs_recover(struct jobs *j, double now, vlm_err *err);

/* True while more files may be claimed (claimed-but-unsettled jobs under max_claimed, enough
 * free space for the spool, and no pause after the spool failed to take a copy: full, over
 * quota or an I/O error, which pauses claiming with the retry backoff). */
bool jobs_can_claim(struct jobs *j);
/* Claims the ready file `name` of inbox `inbox`: copy into the spool, journal, remove from the
 * inbox, and tells `w` what became of it. Returns 0, or a negative errno after which the daemon
 * must stop (the journal cannot be written). */
int jobs_claim(struct jobs *j, struct watch *w, size_t inbox, const char *name, double now);

/* Starts parser children for queued jobs while workers are free (never while stopping). */
int jobs_start(struct jobs *j, double now);
/* Collects finished children and finishes their jobs (a schema job's document goes on to the
 * model worker). */
int jobs_reap(struct jobs *j, double now);
/* Finishes the jobs whose extraction is done; call when jobs_fd is readable. */
int jobs_collect(struct jobs *j, double now);
/* The descriptor to poll for finished extractions. */
int jobs_fd(const struct jobs *j);
/* Kills children past their deadline. */
void jobs_check_timeouts(struct jobs *j, double mono_now);
/* Takes the `intake reprocess` requests from the journal. */
int jobs_take_reprocess(struct jobs *j, double now);
/* True while `intake reprocess` requests wait to be taken. */
bool jobs_reprocess_pending(struct jobs *j);

/* Settles again the finished jobs whose original could not be moved out of the spool (the
 * archive or failed folder full or failing), each once its backoff has passed. Returns 0, or a
 * negative errno after which the daemon must stop (the journal cannot be written). */
int jobs_retry_settle(struct jobs *j, double now);

/* The earliest moment something needs doing (monotonic deadline of a child, or a queued job's
 * retry time converted to `mono_now`'s clock), or 1e300. */
double jobs_next_deadline(struct jobs *j, double now, double mono_now);
size_t jobs_running(const struct jobs *j);
/* True when nothing is running and every queued job is backing off after a failure (what
 * --once waits for). */
bool jobs_idle(struct jobs *j, double now);
/* Kills every child and requeues its job, and requeues the jobs waiting for the model (a stop
 * that cannot wait any longer); a document being extracted finishes. */
int jobs_abandon(struct jobs *j, double now);
/* "queued N, running N, done N, failed N, duplicates N" */
void jobs_status(struct jobs *j, char *buf, size_t size);

#endif
