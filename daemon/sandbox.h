/* The parser child: each document is decoded (ex_doc_load) in a fresh, short-lived process that
 * can read its spool file and little else, and hands the pages back through a memfd. A crash, a
 * hang (killed at the deadline) or a resource limit in the child becomes an error for that
 * document only; the parent re-checks everything the child returns before trusting it.
 *
 * Layers, all installed in the child before it reads a byte: no inherited descriptors but the
 * memfd and stderr; rlimits (address space, CPU time, file size, open files, no core dumps);
 * no_new_privs and not dumpable; Landlock (where the kernel has it): no writes anywhere, reads
 * only below /usr, /etc, font caches and the job's own file, no TCP; a seccomp filter (libseccomp):
 * no exec, no new processes, no sockets, no file creation, renames or unlinks, no ptrace, mount,
 * BPF or kernel keyrings. */
#ifndef INTAKED_SANDBOX_H
#define INTAKED_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "ex.h"

struct sandbox_child {
	pid_t pid;
	int memfd;
	double deadline; /* monotonic seconds; the parent SIGKILLs the child after it */
	bool timed_out;  /* set by sandbox_kill */
};

/* What became of a child (sandbox_finish). */
enum sandbox_outcome {
	SANDBOX_OK,      /* *doc holds the pages */
	SANDBOX_REFUSED, /* the document is bad, unsupported or over a limit: err->reason says which */
	SANDBOX_CRASHED, /* killed by a signal, a limit, the timeout, or an internal failure */
};

/* The Landlock ABI version the kernel offers (0: none). Logged once at start-up. */
int sandbox_landlock_abi(void);

/* Starts a child decoding `path` under `cfg`'s limits. Returns 0 or a negative errno (-EAGAIN
 * when fork fails for lack of resources: a transient failure). */
int sandbox_start(const char *path, const struct config *cfg, double now,
		  struct sandbox_child *child, vlm_err *err);

/* SIGKILLs a child that is past its deadline (remembered as a timeout). */
void sandbox_kill(struct sandbox_child *child);

/* Reads what the reaped child (`wstatus` from waitpid) left in its memfd and closes it. On
 * SANDBOX_OK *doc is a new document (path set to `display_name`) that the caller frees;
 * otherwise err says what happened to `display_name`. */
enum sandbox_outcome sandbox_finish(struct sandbox_child *child, int wstatus,
				    const struct config *cfg, const char *display_name,
				    struct ex_doc **doc, vlm_err *err);

#endif
