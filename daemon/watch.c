/* Inbox watching and the stability gate (see watch.h). Each inbox keeps a table of the files it
 * has seen (name -> last stat and when it last changed) and a queue of the ones found ready.
 * Stability checks run as one pass over all tracked files a few times per stability window, so
 * the cost is one fstatat per tracked file per pass whatever the event rate. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"
#include "watch.h"

#define WATCH_MASK \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
#define RETRY_LOST_S 1.0   /* how often a missing inbox is looked for again */
#define PUT_OFF_MAX_S 60.0 /* the longest wait before a stuck file is tried again */

struct tracked {
	struct stat st;    /* as last seen */
	double changed_at; /* last change of stat or last event naming it */
	double not_before; /* watch_later */
	int put_off;       /* watch_later calls since the file last changed */
	bool ready;        /* in the ready queue */
	bool refused;      /* never to be taken while unchanged */
	bool incomplete_logged;
};

struct inbox {
	const struct config_inbox *cfg;
	int dirfd, wd;
	bool poll; /* listed every poll_interval instead of watched */
	double next_scan;
	double next_lost_check; /* inbox_gone: the open directory hides its deletion from inotify */
	GHashTable *files;      /* char *name -> struct tracked * */
	GQueue ready;           /* char *name (owned by files) */
};

struct watch {
	const struct config *cfg;
	int ifd;
	struct inbox *inboxes;
	size_t n, turn;
	double next_pass, pass_interval;
	double rescan_at; /* next full scan of every inbox */
};

bool watch_name_ignored(const char *name)
{
	static const char *const suffixes[] = { ".part", ".crdownload", ".tmp", ".partial",
						".download" };
	static const char *const exact[] = { "Thumbs.db", "desktop.ini", "@eaDir" };
	size_t n = strlen(name);
	if (name[0] == '.' || strncmp(name, "~$", 2) == 0)
		return true;
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (strcasecmp(name, exact[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t k = strlen(suffixes[i]);
		if (n > k && strcasecmp(name + n - k, suffixes[i]) == 0)
			return true;
	}
	return false;
}

static bool remote_fs(int dirfd)
{
	/* statfs magic numbers of file systems whose changes can come from another machine. */
	static const unsigned long remote[] = {
		0x6969,     /* NFS */ 0x517b,      /* SMB */
		0xff534d42, /* CIFS */ 0xfe534d42, /* SMB2 */
		0x65735546, /* FUSE */ 0x01021997, /* 9p */
		0x00c36400, /* Ceph */ 0x5346414f, /* AFS */
	};
	struct statfs sf;
	if (fstatfs(dirfd, &sf) < 0)
		return false;
	for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++)
		if ((unsigned long)sf.f_type == remote[i])
			return true;
	return false;
}

static void scan(struct inbox *b, double now);

/* (Re)opens an inbox's directory and watch; on failure it stays lost and is retried. */
static void inbox_attach(struct watch *w, struct inbox *b, double now)
{
	char esc[512];
	b->dirfd = open(b->cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->dirfd < 0) {
		b->next_scan = now + RETRY_LOST_S;
		return;
	}
	b->poll = b->cfg->watch == CONFIG_WATCH_POLL ||
		  (b->cfg->watch == CONFIG_WATCH_AUTO && remote_fs(b->dirfd));
	b->wd = -1;
	if (!b->poll && w->ifd >= 0) {
		b->wd = inotify_add_watch(w->ifd, b->cfg->path, WATCH_MASK);
		if (b->wd < 0) {
			log_msg(LOG_WARNING,
				"inbox '%s': inotify watch failed (%s); polling every "
				"%gs instead",
				b->cfg->name, strerror(errno), w->cfg->poll_interval_s);
			b->poll = true;
		}
	}
	log_msg(LOG_INFO, "inbox '%s': %s '%s' (%s, stability %gs)", b->cfg->name,
		b->poll ? "polling" : "watching", log_escape(esc, sizeof esc, b->cfg->path),
		b->poll ? "network file system or configured" : "inotify", b->cfg->stability_s);
	/* Watch first, then list: a file arriving between the two is seen either way. */
	scan(b, now);
	b->next_scan = b->poll ? now + w->cfg->poll_interval_s : 1e300;
}

/* True when the inbox's directory was deleted or replaced. inotify's IN_DELETE_SELF is not
 * enough: the daemon's own descriptor keeps a deleted directory's inode alive, so the event
 * comes only once that descriptor is closed. */
static bool inbox_gone(const struct inbox *b)
{
	struct stat held, named;
	if (fstat(b->dirfd, &held) < 0 || held.st_nlink == 0)
		return true;
	return stat(b->cfg->path, &named) < 0 || named.st_dev != held.st_dev ||
	       named.st_ino != held.st_ino;
}

static void inbox_detach(struct watch *w, struct inbox *b)
{
	if (b->wd >= 0 && w->ifd >= 0)
		inotify_rm_watch(w->ifd, b->wd);
	b->wd = -1;
	if (b->dirfd >= 0)
		close(b->dirfd);
	b->dirfd = -1;
	g_queue_clear(&b->ready);
	g_hash_table_remove_all(b->files);
}

static void inbox_lost(struct watch *w, struct inbox *b, double now)
{
	log_msg(LOG_WARNING,
		"inbox '%s': directory deleted or moved; watching again once it is "
		"back",
		b->cfg->name);
	inbox_detach(w, b);
	b->next_scan = now; /* attached again at once if already back, else every RETRY_LOST_S */
}

int watch_new(const struct config *cfg, double now, struct watch **out, vlm_err *err)
{
	*out = NULL;
	struct watch *w = calloc(1, sizeof *w);
	if (!w || !(w->inboxes = calloc(cfg->n_inboxes, sizeof *w->inboxes))) {
		free(w);
		return vlm_err_set(err, -ENOMEM, "watch: out of memory");
	}
	w->cfg = cfg;
	w->n = cfg->n_inboxes;
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0)
		log_msg(LOG_WARNING, "watch: inotify unavailable (%s); polling every inbox",
			strerror(errno));
	double min_stability = 3600;
	for (size_t i = 0; i < w->n; i++) {
		struct inbox *b = &w->inboxes[i];
		b->cfg = &cfg->inboxes[i];
		b->dirfd = b->wd = -1;
		b->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
		g_queue_init(&b->ready);
		if (b->cfg->stability_s < min_stability)
			min_stability = b->cfg->stability_s;
		inbox_attach(w, b, now);
		if (b->dirfd < 0) {
			int e = errno;
			watch_free(w);
			return vlm_err_set(err, -e, "watch: inbox '%s': cannot open '%s': %s",
					   cfg->inboxes[i].name, cfg->inboxes[i].path, strerror(e));
		}
	}
	w->pass_interval = min_stability / 4;
	if (w->pass_interval < 0.05)
		w->pass_interval = 0.05;
	if (w->pass_interval > 1)
		w->pass_interval = 1;
	w->next_pass = now;
	w->rescan_at = now + cfg->rescan_interval_s;
	*out = w;
	return 0;
}

void watch_free(struct watch *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		struct inbox *b = &w->inboxes[i];
		if (!b->files)
			continue;
		inbox_detach(w, b);
		g_hash_table_destroy(b->files);
	}
	if (w->ifd >= 0)
		close(w->ifd);
	free(w->inboxes);
	free(w);
}

int watch_fd(const struct watch *w)
{
	return w->ifd;
}

int watch_inbox_fd(const struct watch *w, size_t inbox)
{
	return w->inboxes[inbox].dirfd;
}

/* Starts tracking `name` (or notes fresh activity on it). */
static void touch(struct inbox *b, const char *name, double now)
{
	if (watch_name_ignored(name))
		return;
	struct tracked *t = g_hash_table_lookup(b->files, name);
	if (!t) {
		t = g_new0(struct tracked, 1);
		t->changed_at = now;
		g_hash_table_insert(b->files, g_strdup(name), t);
		return;
	}
	if (!t->ready)
		t->changed_at = now;
}

static void scan(struct inbox *b, double now)
{
	int fd = openat(b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		log_msg(LOG_WARNING, "inbox '%s': cannot list: %s", b->cfg->name, strerror(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_type != DT_DIR && !g_hash_table_contains(b->files, e->d_name))
			touch(b, e->d_name, now);
	closedir(d);
}

void watch_read_events(struct watch *w, double now)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t len = read(w->ifd, buf, sizeof buf);
		if (len <= 0)
			return;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_msg(LOG_WARNING, "watch: inotify queue overflowed; rescanning "
						     "every inbox");
				for (size_t i = 0; i < w->n; i++)
					w->inboxes[i].next_scan = now;
				continue;
			}
			for (size_t i = 0; i < w->n; i++) {
				struct inbox *b = &w->inboxes[i];
				if (b->wd != ev->wd || b->dirfd < 0)
					continue;
				if (ev->mask &
				    (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
					inbox_lost(w, b, now);
				} else if (ev->len && !(ev->mask & IN_ISDIR)) {
					touch(b, ev->name, now);
				}
			}
		}
	}
}

/* Whether the bytes look like a whole document of their format (see watch.h). Unknown formats
 * count as complete: the parser refuses them with a reason. */
static bool looks_complete(int dirfd, const char *name, const struct stat *st)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return true; /* unreadable: the claim fails and says why, rather than waiting here */
	uint8_t head[16] = { 0 }, tail[1024];
	size_t nt = st->st_size < (off_t)sizeof tail ? (size_t)st->st_size : sizeof tail;
	bool ok = pread(fd, head, sizeof head, 0) >= 8 &&
		  pread(fd, tail, nt, st->st_size - (off_t)nt) == (ssize_t)nt;
	close(fd);
	if (!ok)
		return false;
	static const uint8_t png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	if (memcmp(head, "%PDF-", 5) == 0)
		return memmem(tail, nt, "%%EOF", 5) != NULL;
	if (memcmp(head, png, 8) == 0)
		return nt >= 8 && memcmp(tail + nt - 8, "IEND", 4) == 0;
	if (head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff)
		return memmem(tail, nt, "\xff\xd9", 2) != NULL;
	bool le = memcmp(head, "II", 2) == 0, be = memcmp(head, "MM", 2) == 0;
	if ((le || be) && (head[2 + be] == 42 || head[2 + be] == 43)) {
		bool big = head[2 + be] == 43;
		uint64_t off = 0;
		for (int i = 0; i < (big ? 8 : 4); i++) {
			int k = le ? (big ? 15 - i : 7 - i) : (big ? 8 + i : 4 + i);
			off = off << 8 | head[k];
		}
		return off >= 8 && off < (uint64_t)st->st_size;
	}
	return true;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
	       a->st_nlink == b->st_nlink && a->st_mode == b->st_mode;
}

/* One stability pass over an inbox's tracked files. */
static void check_inbox(struct watch *w, struct inbox *b, double now)
{
	GHashTableIter it;
	gpointer key, value;
	double grace = b->cfg->stability_s * 10 > 30 ? b->cfg->stability_s * 10 : 30;
	g_hash_table_iter_init(&it, b->files);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		const char *name = key;
		struct tracked *t = value;
		if (t->ready)
			continue;
		struct stat st;
		if (fstatat(b->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				g_hash_table_iter_remove(&it);
			continue;
		}
		if (!same_stat(&st, &t->st)) {
			t->st = st;
			t->changed_at = now;
			t->refused = false;
			t->put_off = 0; /* a changed file (a fixed mode) is looked at afresh */
			t->not_before = 0;
			continue;
		}
		if (t->refused || now < t->not_before || now - t->changed_at < b->cfg->stability_s)
			continue;
		if (S_ISDIR(st.st_mode)) {
			t->refused = true; /* flat inboxes: subdirectories are not looked into */
			continue;
		}
		if (S_ISREG(st.st_mode) && st.st_size > 0 && !looks_complete(b->dirfd, name, &st) &&
		    now - t->changed_at < grace) {
			if (!t->incomplete_logged) {
				char esc[512];
				log_msg(LOG_INFO,
					"inbox '%s': file '%s' is stable but incomplete; "
					"waiting (taken anyway after %gs)",
					b->cfg->name, log_escape(esc, sizeof esc, name), grace);
				t->incomplete_logged = true;
			}
			continue;
		}
		t->ready = true;
		g_queue_push_tail(&b->ready, key);
	}
	(void)w;
}

void watch_tick(struct watch *w, double now)
{
	bool rescan_all = now >= w->rescan_at;
	if (rescan_all)
		w->rescan_at = now + w->cfg->rescan_interval_s;
	for (size_t i = 0; i < w->n; i++) {
		struct inbox *b = &w->inboxes[i];
		if (b->dirfd >= 0 && now >= b->next_lost_check) {
			b->next_lost_check = now + RETRY_LOST_S;
			if (inbox_gone(b))
				inbox_lost(w, b, now);
		}
		if (b->dirfd < 0) {
			if (now >= b->next_scan)
				inbox_attach(w, b, now);
			if (b->dirfd < 0)
				continue;
		}
		if (rescan_all || now >= b->next_scan) {
			scan(b, now);
			b->next_scan = b->poll ? now + w->cfg->poll_interval_s : 1e300;
		}
	}
	if (now >= w->next_pass) {
		for (size_t i = 0; i < w->n; i++)
			if (w->inboxes[i].dirfd >= 0)
				check_inbox(w, &w->inboxes[i], now);
		w->next_pass = now + w->pass_interval;
	}
}

double watch_next_deadline(const struct watch *w)
{
	double t = w->rescan_at;
	bool tracking = false;
	for (size_t i = 0; i < w->n; i++) {
		const struct inbox *b = &w->inboxes[i];
		if (b->next_scan < t)
			t = b->next_scan;
		if (b->dirfd >= 0 && b->next_lost_check < t)
			t = b->next_lost_check;
		if (g_hash_table_size(b->files) > b->ready.length)
			tracking = true;
	}
	if (tracking && w->next_pass < t)
		t = w->next_pass;
	return t;
}

bool watch_next_ready(struct watch *w, size_t *inbox, const char **name)
{
	for (size_t k = 0; k < w->n; k++) {
		size_t i = (w->turn + k) % w->n;
		struct inbox *b = &w->inboxes[i];
		if (!g_queue_is_empty(&b->ready)) {
			*inbox = i;
			*name = g_queue_peek_head(&b->ready);
			w->turn = (i + 1) %
				  w->n; /* inboxes in turn: one bulk drop cannot starve another */
			return true;
		}
	}
	return false;
}

/* Takes `name` off the ready queue; returns its entry. */
static struct tracked *unready(struct inbox *b, const char *name)
{
	struct tracked *t = g_hash_table_lookup(b->files, name);
	if (t && t->ready) {
		for (GList *l = b->ready.head; l; l = l->next) {
			if (strcmp(l->data, name) == 0) {
				g_queue_delete_link(&b->ready, l);
				break;
			}
		}
		t->ready = false;
	}
	return t;
}

void watch_done(struct watch *w, size_t inbox, const char *name)
{
	struct inbox *b = &w->inboxes[inbox];
	if (unready(b, name))
		g_hash_table_remove(b->files, name);
}

int watch_later(struct watch *w, size_t inbox, const char *name, double now, double delay)
{
	struct tracked *t = unready(&w->inboxes[inbox], name);
	if (!t)
		return 1;
	t->put_off++;
	for (int i = 1; i < t->put_off && delay < PUT_OFF_MAX_S; i++)
		delay *= 2;
	t->not_before = now + (delay < PUT_OFF_MAX_S ? delay : PUT_OFF_MAX_S);
	return t->put_off;
}

void watch_again(struct watch *w, size_t inbox, const char *name)
{
	struct tracked *t = unready(&w->inboxes[inbox], name);
	if (t)
		*t = (struct tracked){
			0
		}; /* no stat matches: the next pass starts its stability wait */
}

void watch_refuse(struct watch *w, size_t inbox, const char *name)
{
	struct tracked *t = unready(&w->inboxes[inbox], name);
	if (t)
		t->refused = true;
}

size_t watch_pending(const struct watch *w)
{
	size_t n = 0;
	GHashTableIter it;
	gpointer value;
	for (size_t i = 0; i < w->n; i++) {
		g_hash_table_iter_init(&it, w->inboxes[i].files);
		while (g_hash_table_iter_next(&it, NULL, &value)) {
			const struct tracked *t = value;
			/* A file put off after a failure (unreadable, the inbox not writable) waits
			 * for someone to fix it, not for the daemon: `--once` need not wait too. */
			n += !t->refused && t->put_off == 0;
		}
	}
	return n;
}
