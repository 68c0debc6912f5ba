/* Watching the inboxes: which files are there and which are ready to be claimed.
 *
 * inotify (IN_CLOSE_WRITE | IN_MOVED_TO) is only a hint that makes the daemon look sooner; the
 * truth is a directory listing, taken at start-up, after an inotify queue overflow, when a watch
 * is lost (the inbox was deleted or moved; it is watched again once it is back), periodically as
 * the safety net, and at the polling interval for inboxes on network file systems (NFS, CIFS/SMB,
 * FUSE, 9p, detected with statfs, or configured `watch: poll`), where inotify sees nothing.
 *
 * A file is ready when its size, mtime and ctime have not changed and no event has named it for
 * the inbox's stability window, and its bytes look complete for its format (PDF %%EOF, PNG IEND,
 * JPEG EOI, TIFF first IFD inside the file). A file still incomplete after a long grace period is
 * taken anyway so the parser can quarantine it with its reason; nothing is ever dropped.
 * Temporary and system names (dotfiles, *.part, *.crdownload, *.tmp, ~$*, Thumbs.db, desktop.ini,
 * @eaDir), directories, symlinks, hard-linked files, FIFOs and devices are never taken.
 * Not thread-safe. */
#ifndef INTAKED_WATCH_H
#define INTAKED_WATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct watch;

/* Opens every inbox of `cfg` (which must outlive the watch), chooses inotify or polling for each
 * and schedules a full scan of all of them. Inboxes must exist. */
int watch_new(const struct config *cfg, double now, struct watch **out, vlm_err *err);
void watch_free(struct watch *w); /* accepts NULL */

int watch_fd(const struct watch *w); /* the inotify descriptor to poll, -1 when none */
int watch_inbox_fd(const struct watch *w, size_t inbox); /* -1 while the inbox is missing */

/* Reads every pending inotify event. */
void watch_read_events(struct watch *w, double now);
/* Runs the scans and stability checks that are due. */
void watch_tick(struct watch *w, double now);
/* When watch_tick next has something to do (monotonic seconds). */
double watch_next_deadline(const struct watch *w);

/* The next ready file, taking inboxes in turn. The name stays valid until the next call to
 * watch_tick, watch_done or watch_later. Returns false when none is ready. */
bool watch_next_ready(struct watch *w, size_t *inbox, const char **name);
/* The ready file was claimed (or will never be): stop tracking it. */
void watch_done(struct watch *w, size_t inbox, const char *name);
/* The ready file could not be taken yet, or not removed (still changing, unreadable, the inbox
 * not writable): look again after `delay` seconds, doubled each time the unchanged file is put
 * off again, at most 60 s. Returns how many times it has been put off since it last changed
 * (1 the first time), so the caller reports a stuck file once, not at every look. */
int watch_later(struct watch *w, size_t inbox, const char *name, double now, double delay);
/* Another file took the name since it was found ready: look at it as at a new file. */
void watch_again(struct watch *w, size_t inbox, const char *name);
/* The file is not something to take (not a regular file with one link): ignore it until it
 * changes. */
void watch_refuse(struct watch *w, size_t inbox, const char *name);

/* Files seen and not yet taken, ignored or put off (watch_later), over all inboxes (0 means
 * every inbox is drained of what can be taken now). */
size_t watch_pending(const struct watch *w);

/* True for names that are never documents (temporary and system files). */
bool watch_name_ignored(const char *name);

#endif
