/* lazyfs: a FUSE pass-through file system that forgets what was never fsynced, for the manual
 * power-loss test (run.sh). Modelled on LazyFS (dsrhaslab/lazyfs); written for this test.
 *
 * Owns: every byte written through the mount, held in memory per backing inode (a list of
 * writes, merged over the backing file on read) until fsync/fdatasync of that file, or until a
 * clean unmount, writes it to the backing directory. Metadata operations (create, mkdir, rename,
 * unlink, link, truncate, chmod, utimens) reach the backing directory at once, so unlike a real
 * power cut none is ever lost or reordered: the same model as LazyFS's.
 *
 * Fault: with -o fault_at=K, the K-th fsync over the mount (files and directories, counted from
 * 1) is the moment power goes: every unsynced byte is dropped (with -o torn, a prefix of each
 * file's unsynced writes, in write order, reaches the backing file first, the last one cut in
 * half), that fsync and every later operation fail with EIO, and the file named by
 * -o fault_file is created to tell the test. -o report=FILE receives "fsyncs N faulted 0|1
 * dropped BYTES" at unmount, -o trace=FILE a line per fsync. Runs single-threaded (-s): no
 * locks.
 *
 * Not modelled: lost or reordered metadata, sector-level corruption, a cache that fills up. */
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

/* One write not yet synced. */
struct pending {
	off_t off;
	size_t len;
	char *data;
};

/* A backing inode with unsynced writes or open handles. `fd` (writable, owned) is how a clean
 * unmount reaches its data when no handle is open. Nodes whose inode lost its last name leave
 * the lookup list (an inode number may be reused) and live until their last handle closes. */
struct node {
	struct node *next;
	dev_t dev;
	ino_t ino;
	bool linked;
	int n_open, fd;
	off_t size; /* what readers see: the backing size, extended by unsynced writes */
	struct pending *w;
	size_t n_w, cap_w;
};

struct handle {
	int fd;
	struct node *node;
};

static struct lazyfs {
	const char *backing, *fault_file, *report, *trace;
	FILE *trace_f;
	unsigned long fault_at;
	int torn;
	int root; /* the backing directory */
	unsigned long n_fsync;
	unsigned long long n_dropped; /* unsynced bytes lost at the fault */
	bool dead;
	struct node *nodes; /* linked nodes only */
} fs;

static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

/* ---- nodes ------------------------------------------------------------------------------- */

static void node_forget_writes(struct node *n)
{
	for (size_t i = 0; i < n->n_w; i++)
		free(n->w[i].data);
	n->n_w = 0;
}

static void node_free(struct node *n)
{
	node_forget_writes(n);
	free(n->w);
	if (n->fd >= 0)
		close(n->fd);
	free(n);
}

static struct node *node_find(dev_t dev, ino_t ino)
{
	for (struct node *n = fs.nodes; n; n = n->next)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

static struct node *node_get(const struct stat *st)
{
	struct node *n = node_find(st->st_dev, st->st_ino);
	if (n)
		return n;
	n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->linked = true;
	n->fd = -1;
	n->size = st->st_size;
	n->next = fs.nodes;
	fs.nodes = n;
	return n;
}

/* The inode behind `st` lost its last name: its node leaves the lookup list. */
static void node_unlinked(const struct stat *st)
{
	for (struct node **p = &fs.nodes; *p; p = &(*p)->next) {
		struct node *n = *p;
		if (n->dev != st->st_dev || n->ino != st->st_ino)
			continue;
		*p = n->next;
		n->linked = false;
		if (n->n_open == 0)
			node_free(n);
		return;
	}
}

static int write_all(int fd, const char *p, size_t len, off_t off)
{
	while (len) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Writes the node's unsynced writes to the backing file, in order: what fsync makes durable. */
static int node_flush(struct node *n, int fd)
{
	int rc = 0;
	for (size_t i = 0; i < n->n_w && rc == 0; i++)
		rc = write_all(fd, n->w[i].data, n->w[i].len, n->w[i].off);
	node_forget_writes(n);
	return rc;
}

/* Torn mode at the fault: the first half of the unsynced bytes, in write order, reach the disk.
 * Returns how many. */
static size_t node_tear(struct node *n)
{
	size_t total = 0;
	for (size_t i = 0; i < n->n_w; i++)
		total += n->w[i].len;
	size_t keep = total / 2, kept = keep;
	for (size_t i = 0; i < n->n_w && keep; i++) {
		size_t len = n->w[i].len < keep ? n->w[i].len : keep;
		write_all(n->fd, n->w[i].data, len, n->w[i].off);
		keep -= len;
	}
	return kept;
}

/* ---- the fault --------------------------------------------------------------------------- */

static void power_off(void)
{
	fs.dead = true;
	for (struct node *n = fs.nodes; n; n = n->next) {
		for (size_t i = 0; i < n->n_w; i++)
			fs.n_dropped += n->w[i].len;
		if (fs.torn && n->fd >= 0)
			fs.n_dropped -= node_tear(n);
		node_forget_writes(n);
	}
	if (fs.fault_file) {
		int fd = open(fs.fault_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
}

/* Counts a persistence point (traced as "N file|dir PATH"); true when power goes at this one. */
static bool fsync_fails(const char *what, const char *path)
{
	if (fs.dead)
		return true;
	if (fs.trace_f)
		fprintf(fs.trace_f, "%lu %s %s%s\n", fs.n_fsync + 1, what, path,
			fs.n_fsync + 1 == fs.fault_at ? " POWER LOST" : "");
	if (++fs.n_fsync == fs.fault_at) {
		power_off();
		return true;
	}
	return false;
}

#define ALIVE()                      \
	do {                         \
		if (fs.dead)         \
			return -EIO; \
	} while (0)

/* ---- operations ------------------------------------------------------------------------- */

static int lz_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	ALIVE();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	if (h ? fstat(h->fd, st) : fstatat(fs.root, rel(path), st, AT_SYMLINK_NOFOLLOW))
		return -errno;
	struct node *n = h ? h->node : node_find(st->st_dev, st->st_ino);
	if (n && S_ISREG(st->st_mode))
		st->st_size = n->size;
	return 0;
}

static int lz_readlink(const char *path, char *buf, size_t size)
{
	ALIVE();
	ssize_t n = readlinkat(fs.root, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int lz_mkdir(const char *path, mode_t mode)
{
	ALIVE();
	return mkdirat(fs.root, rel(path), mode) ? -errno : 0;
}

/* Removes `name`; a regular file losing its last name drops its node. */
static int lz_unlink(const char *path)
{
	ALIVE();
	struct stat st;
	bool last = fstatat(fs.root, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_nlink == 1;
	if (unlinkat(fs.root, rel(path), 0))
		return -errno;
	if (last)
		node_unlinked(&st);
	return 0;
}

static int lz_rmdir(const char *path)
{
	ALIVE();
	return unlinkat(fs.root, rel(path), AT_REMOVEDIR) ? -errno : 0;
}

static int lz_symlink(const char *target, const char *path)
{
	ALIVE();
	return symlinkat(target, fs.root, rel(path)) ? -errno : 0;
}

static int lz_rename(const char *from, const char *to, unsigned int flags)
{
	ALIVE();
	struct stat st;
	bool replaces = !(flags & RENAME_NOREPLACE) &&
			fstatat(fs.root, rel(to), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			S_ISREG(st.st_mode) && st.st_nlink == 1;
	if (renameat2(fs.root, rel(from), fs.root, rel(to), flags))
		return -errno;
	if (replaces && !(flags & RENAME_EXCHANGE))
		node_unlinked(&st);
	return 0;
}

static int lz_link(const char *from, const char *to)
{
	ALIVE();
	return linkat(fs.root, rel(from), fs.root, rel(to), 0) ? -errno : 0;
}

static int lz_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	ALIVE();
	if (fi)
		return fchmod(((struct handle *)(uintptr_t)fi->fh)->fd, mode) ? -errno : 0;
	return fchmodat(fs.root, rel(path), mode, 0) ? -errno : 0;
}

static int lz_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	ALIVE();
	if (fi)
		return fchown(((struct handle *)(uintptr_t)fi->fh)->fd, uid, gid) ? -errno : 0;
	return fchownat(fs.root, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* Truncation is metadata here: it reaches the backing file at once and clips unsynced writes. */
static int lz_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	ALIVE();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	int fd = h ? h->fd : openat(fs.root, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = ftruncate(fd, size) ? -errno : 0;
	struct stat st;
	struct node *n = h ? h->node : (fstat(fd, &st) ? NULL : node_find(st.st_dev, st.st_ino));
	if (!h)
		close(fd);
	if (rc || !n)
		return rc;
	n->size = size;
	size_t kept = 0;
	for (size_t i = 0; i < n->n_w; i++) {
		struct pending *p = &n->w[i];
		if (p->off >= size) {
			free(p->data);
			continue;
		}
		if (p->off + (off_t)p->len > size)
			p->len = (size_t)(size - p->off);
		n->w[kept++] = *p;
	}
	n->n_w = kept;
	return 0;
}

static int lz_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	ALIVE();
	if (fi)
		return futimens(((struct handle *)(uintptr_t)fi->fh)->fd, tv) ? -errno : 0;
	return utimensat(fs.root, rel(path), tv, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* Opens the backing file for a handle. O_APPEND is left out: the kernel already turns appends
 * into writes at the size getattr reports, and pwrite on an O_APPEND descriptor ignores offsets. */
static int open_handle(const char *path, int flags, mode_t mode, struct fuse_file_info *fi)
{
	ALIVE();
	int fd = openat(fs.root, rel(path), (flags & ~O_APPEND) | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	struct stat st;
	struct handle *h = malloc(sizeof *h);
	struct node *n = h && fstat(fd, &st) == 0 ? node_get(&st) : NULL;
	if (!n) {
		free(h);
		close(fd);
		return -ENOMEM;
	}
	if (flags & O_TRUNC) {
		node_forget_writes(n);
		n->size = 0;
	}
	if (n->fd < 0 && (flags & O_ACCMODE) != O_RDONLY && (n->fd = dup(fd)) < 0) {
		free(h);
		close(fd);
		return -errno;
	}
	n->n_open++;
	h->fd = fd;
	h->node = n;
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static int lz_open(const char *path, struct fuse_file_info *fi)
{
	return open_handle(path, fi->flags, 0, fi);
}

static int lz_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return open_handle(path, fi->flags | O_CREAT, mode, fi);
}

/* The backing bytes with every unsynced write laid over them, in order. */
static int lz_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ALIVE();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->node;
	if (off >= n->size)
		return 0;
	if ((off_t)size > n->size - off)
		size = (size_t)(n->size - off);
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(h->fd, buf + got, size - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	memset(buf + got, 0, size - got); /* past the backing end: unsynced writes or a hole */
	for (size_t i = 0; i < n->n_w; i++) {
		const struct pending *p = &n->w[i];
		off_t lo = p->off > off ? p->off : off;
		off_t hi = p->off + (off_t)p->len < off + (off_t)size ? p->off + (off_t)p->len
								      : off + (off_t)size;
		if (lo < hi)
			memcpy(buf + (lo - off), p->data + (lo - p->off), (size_t)(hi - lo));
	}
	return (int)size;
}

static int lz_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ALIVE();
	struct node *n = ((struct handle *)(uintptr_t)fi->fh)->node;
	if (n->n_w == n->cap_w) {
		size_t cap = n->cap_w ? 2 * n->cap_w : 16;
		struct pending *w = realloc(n->w, cap * sizeof *w);
		if (!w)
			return -ENOMEM;
		n->w = w;
		n->cap_w = cap;
	}
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, size);
	n->w[n->n_w++] = (struct pending){ off, size, copy };
	if (off + (off_t)size > n->size)
		n->size = off + (off_t)size;
	return (int)size;
}

static int lz_statfs(const char *path, struct statvfs *st)
{
	ALIVE();
	return fstatvfs(fs.root, st) ? -errno : 0;
}

static int lz_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->node;
	close(h->fd);
	free(h);
	if (--n->n_open == 0 && !n->linked)
		node_free(n);
	return 0;
}

static int lz_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	if (fsync_fails("file", path))
		return -EIO;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	return node_flush(h->node, h->node->fd >= 0 ? h->node->fd : h->fd);
}

static int lz_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fsync_fails("dir", path) ? -EIO : 0;
}

static int lz_opendir(const char *path, struct fuse_file_info *fi)
{
	ALIVE();
	int fd = openat(fs.root, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return -e;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	return 0;
}

static int lz_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	ALIVE();
	DIR *d = (DIR *)(uintptr_t)fi->fh;
	rewinddir(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st = { .st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type) };
		if (fill(buf, e->d_name, &st, 0, 0))
			break;
	}
	return 0;
}

static int lz_releasedir(const char *path, struct fuse_file_info *fi)
{
	closedir((DIR *)(uintptr_t)fi->fh);
	return 0;
}

static int lz_access(const char *path, int mask)
{
	ALIVE();
	return faccessat(fs.root, rel(path), mask, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static void *lz_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Sizes change behind the kernel's back (a fault), so it caches no attributes; use_ino
	 * keeps backing inode numbers, which the daemon compares. */
	cfg->use_ino = 1;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

/* A clean unmount is a sync of the whole file system; after a fault there is nothing left. */
static void lz_destroy(void *private_data)
{
	while (fs.nodes) {
		struct node *n = fs.nodes;
		fs.nodes = n->next;
		if (!fs.dead && n->fd >= 0)
			node_flush(n, n->fd);
		node_free(n);
	}
	if (fs.report) {
		FILE *f = fopen(fs.report, "w");
		if (f) {
			fprintf(f, "fsyncs %lu faulted %d dropped %llu\n", fs.n_fsync, fs.dead,
				fs.n_dropped);
			fclose(f);
		}
	}
}

static const struct fuse_operations ops = {
	.getattr = lz_getattr,
	.readlink = lz_readlink,
	.mkdir = lz_mkdir,
	.unlink = lz_unlink,
	.rmdir = lz_rmdir,
	.symlink = lz_symlink,
	.rename = lz_rename,
	.link = lz_link,
	.chmod = lz_chmod,
	.chown = lz_chown,
	.truncate = lz_truncate,
	.open = lz_open,
	.read = lz_read,
	.write = lz_write,
	.statfs = lz_statfs,
	.release = lz_release,
	.fsync = lz_fsync,
	.opendir = lz_opendir,
	.readdir = lz_readdir,
	.releasedir = lz_releasedir,
	.fsyncdir = lz_fsyncdir,
	.init = lz_init,
	.destroy = lz_destroy,
	.access = lz_access,
	.create = lz_create,
	.utimens = lz_utimens,
};

#define OPT(t, p)                                \
	{                                        \
		t, offsetof(struct lazyfs, p), 1 \
	}
static const struct fuse_opt options[] = {
	OPT("backing=%s", backing),
	OPT("fault_at=%lu", fault_at),
	OPT("fault_file=%s", fault_file),
	OPT("report=%s", report),
	OPT("trace=%s", trace),
	OPT("torn", torn),
	FUSE_OPT_END,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	if (fuse_opt_parse(&args, &fs, options, NULL) < 0)
		return 1;
	if (!fs.backing) {
		fprintf(stderr, "usage: lazyfs MOUNTPOINT -f -s -o backing=DIR[,fault_at=K]"
				"[,fault_file=PATH][,report=PATH][,torn]\n");
		return 2;
	}
	fs.root = open(fs.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs.root < 0) {
		perror(fs.backing);
		return 1;
	}
	if (fs.trace && !(fs.trace_f = fopen(fs.trace, "a"))) {
		perror(fs.trace);
		return 1;
	}
	if (fs.trace_f)
		setvbuf(fs.trace_f, NULL, _IOLBF, 0);
	umask(0); /* the kernel already applied the caller's umask to the modes it sends */
	int rc = fuse_main(args.argc, args.argv, &ops, NULL);
	fuse_opt_free_args(&args);
	close(fs.root);
	if (fs.trace_f)
		fclose(fs.trace_f);
	return rc;
}
