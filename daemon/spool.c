/* The spool and the durable file operations (see spool.h). Owns STATE/spool/claim (copies in
 * progress, never trusted after a crash) and STATE/spool/active (committed or about to be). Every
 * rename here is renameat2(RENAME_NOREPLACE), so a retried step can never overwrite what an
 * earlier attempt produced, and every change is followed by fsync of the file and directory:
 * rename is atomic but not durable until its directory is synced. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "spool.h"

#define TMP_PREFIX ".intake-"
#define TMP_SUFFIX ".tmp"
#define HIDDEN_SUFFIX ".claimed"

struct spool {
	char *active_path;
	int claim_fd, active_fd;
};

int spool_fsync_dir(int dirfd, const char *what, vlm_err *err)
{
	if (fsync(dirfd) < 0)
		return vlm_err_set(err, -errno, "spool: directory '%s': fsync: %s", what,
				   strerror(errno));
	return 0;
}

int spool_open_dir(const char *base, const char *sub, mode_t mode, int *fd, vlm_err *err)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s%s%s", base, sub ? "/" : "", sub ? sub : "") >=
	    (int)sizeof path)
		return vlm_err_set(err, -ENAMETOOLONG, "spool: directory '%s': path too long",
				   base);
	/* mkdir -p, one component at a time. */
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, mode) == 0) {
			/* The umask (0077 in the daemon) must not narrow an outbox meant for a
			 * reading group. */
			chmod(path, mode);
		} else if (errno != EEXIST) {
			return vlm_err_set(err, -errno, "spool: directory '%s': cannot create: %s",
					   path, strerror(errno));
		}
		*p = c;
		if (!c)
			break;
	}
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return vlm_err_set(err, -errno, "spool: directory '%s': cannot open: %s", path,
				   strerror(errno));
	return 0;
}

int spool_open(const char *state_dir, struct spool **out, vlm_err *err)
{
	*out = NULL;
	struct spool *s = calloc(1, sizeof *s);
	if (!s)
		return vlm_err_set(err, -ENOMEM, "spool: out of memory");
	s->claim_fd = s->active_fd = -1;
	int rc;
	if (asprintf(&s->active_path, "%s/spool/active", state_dir) < 0) {
		s->active_path = NULL;
		rc = vlm_err_set(err, -ENOMEM, "spool: out of memory");
		goto fail;
	}
	if ((rc = spool_open_dir(state_dir, "spool/claim", 0700, &s->claim_fd, err)) < 0 ||
	    (rc = spool_open_dir(state_dir, "spool/active", 0700, &s->active_fd, err)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	spool_close(s);
	return rc;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->claim_fd >= 0)
		close(s->claim_fd);
	if (s->active_fd >= 0)
		close(s->active_fd);
	free(s->active_path);
	free(s);
}

int spool_job_path(const struct spool *s, const char *id, char *buf, size_t size)
{
	if (snprintf(buf, size, "%s/%s", s->active_path, id) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/* A new job id: the claim time in seconds and 48 random bits; sorts by claim time. */
static void new_id(char id[EX_JOB_ID_LEN])
{
	uint64_t r = 0;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint64_t)clock() ^ ((uint64_t)getpid() << 32);
	snprintf(id, EX_JOB_ID_LEN, "%010lld-%012llx", (long long)time(NULL),
		 (unsigned long long)(r & 0xffffffffffffull));
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Copies `src` to `dst` (-1: reads only) from the start, hashing when `sum` is not NULL;
 * returns the byte count or a negative errno, with *read_failed telling which side failed. */
static int64_t copy_fd(int src, int dst, GChecksum *sum, bool *read_failed)
{
	*read_failed = false;
	static char buf[1 << 16];
	int64_t total = 0;
	for (;;) {
		ssize_t r = read(src, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*read_failed = true;
			return -errno;
		}
		if (r == 0)
			return total;
		if (sum)
			g_checksum_update(sum, (const guchar *)buf, (gssize)r);
		int rc = dst < 0 ? 0 : write_all(dst, buf, (size_t)r);
		if (rc < 0)
			return rc;
		total += r;
	}
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int spool_claim(struct spool *s, int dirfd, const char *name, uint64_t max_bytes,
		struct ex_job *job, vlm_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			return vlm_err_set(err, -EINVAL, "spool: file '%s': is a symbolic link",
					   name);
		return vlm_err_set_reason(err, -errno, EX_REASON_IO,
					  "spool: file '%s': cannot open: %s", name,
					  strerror(errno));
	}
	int tmp = -1, rc = 0;
	char tmp_name[64] = "";
	GChecksum *sum = NULL;
	struct stat st, named, after;
	if (fstat(fd, &st) < 0) {
		rc = vlm_err_set_reason(err, -errno, EX_REASON_IO, "spool: file '%s': fstat: %s",
					name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		rc = vlm_err_set(err, -EINVAL, "spool: file '%s': %s", name,
				 S_ISREG(st.st_mode) ? "has more than one hard link"
						     : "is not a regular file");
		goto out;
	}
	/* The name must still be the file we opened (Postfix's safe_open check). */
	if (fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) < 0 || named.st_dev != st.st_dev ||
	    named.st_ino != st.st_ino) {
		rc = vlm_err_set(err, -EAGAIN, "spool: file '%s': replaced while opening", name);
		goto out;
	}
	/* A file over the limit would be refused by the parser anyway: it is only hashed (for
	 * its quarantine record), never copied, so it cannot fill the spool. */
	bool too_large = (uint64_t)st.st_size > max_bytes;
	new_id(job->id);
	if (!too_large) {
		snprintf(tmp_name, sizeof tmp_name, "%s%s", job->id, TMP_SUFFIX);
		tmp = openat(s->claim_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (tmp < 0) {
			rc = vlm_err_set(err, -errno, "spool: claim '%s': cannot create: %s",
					 tmp_name, strerror(errno));
			tmp_name[0] = '\0';
			goto out;
		}
	}
	sum = g_checksum_new(G_CHECKSUM_SHA256);
	bool read_failed;
	int64_t n = copy_fd(fd, tmp, sum, &read_failed);
	if (n < 0) {
		/* A spool write that failed leaves a partial copy: removed below, never renamed. */
		rc = read_failed ? vlm_err_set_reason(err, (int)n, EX_REASON_IO,
						      "spool: file '%s': read: %s", name,
						      strerror((int)-n))
				 : vlm_err_set(err, (int)n, "spool: claim '%s': write: %s",
					       tmp_name, strerror((int)-n));
		goto out;
	}
	if (fstat(fd, &after) < 0 || after.st_size != n || after.st_size != st.st_size ||
	    mtime_ns(&after) != mtime_ns(&st)) {
		rc = vlm_err_set(err, -EAGAIN, "spool: file '%s': changed while being copied",
				 name);
		goto out;
	}
	if (too_large) {
		rc = vlm_err_set_reason(err, -EFBIG, EX_REASON_FILE_TOO_LARGE,
					"spool: file '%s': %lld bytes, over limits.max_file_bytes "
					"(%llu)",
					name, (long long)n, (unsigned long long)max_bytes);
	} else {
		crash_point("claim.fsync.before");
		/* Never fsync again after a failure: the kernel may have dropped the dirty pages
		 * and a second fsync can succeed without them. The copy is removed and the claim
		 * starts over from the inbox file. */
		if (fsync(tmp) < 0) {
			rc = vlm_err_set(err, -errno, "spool: claim '%s': fsync: %s", tmp_name,
					 strerror(errno));
			goto out;
		}
		crash_point("claim.fsync.after");
		crash_point("claim.rename.before");
		if (renameat2(s->claim_fd, tmp_name, s->active_fd, job->id, RENAME_NOREPLACE) < 0) {
			rc = vlm_err_set(err, -errno, "spool: claim '%s': rename into active/: %s",
					 tmp_name, strerror(errno));
			goto out;
		}
		crash_point("claim.rename.after");
		tmp_name[0] = '\0';
		crash_point("claim.fsync-dir.before");
		if ((rc = spool_fsync_dir(s->active_fd, "spool/active", err)) < 0) {
			unlinkat(s->active_fd, job->id, 0);
			goto out;
		}
		crash_point("claim.fsync-dir.after");
	}
	snprintf(job->sha256, sizeof job->sha256, "%s", g_checksum_get_string(sum));
	snprintf(job->name, sizeof job->name, "%s", name);
	job->size = n;
	job->src_dev = (uint64_t)st.st_dev;
	job->src_ino = (uint64_t)st.st_ino;
	job->src_mtime_ns = mtime_ns(&st);
out:
	if (sum)
		g_checksum_free(sum);
	if (tmp >= 0)
		close(tmp);
	if (tmp_name[0])
		unlinkat(s->claim_fd, tmp_name, 0);
	close(fd);
	return rc;
}

/* The private name a claimed original takes in its inbox on its way out: dot names are never
 * claimed, and no one else uses this one. Unlink and rename have no "only if still this inode",
 * so the name is checked, the file renamed to its private name, and checked again there: a file
 * that takes the name between the check and the rename is caught by the second check. */
static void hidden_name(char buf[static 64], const char *id)
{
	snprintf(buf, 64, TMP_PREFIX "%s" HIDDEN_SUFFIX, id);
}

static bool claimed_file(const struct stat *st, const struct ex_job *job)
{
	return (uint64_t)st->st_dev == job->src_dev && (uint64_t)st->st_ino == job->src_ino;
}

/* Renames `name` to the job's private name if it is the claimed file. Returns 0 when the private
 * name holds a file (this rename's, or one a stop left), 1 when `name` is gone, -ESTALE when it
 * is another file now (left alone), or a negative errno. */
static int hide(int dirfd, const char *name, const struct ex_job *job, vlm_err *err)
{
	char hidden[64];
	hidden_name(hidden, job->id);
	struct stat st;
	if (fstatat(dirfd, hidden, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 1;
		return vlm_err_set(err, -errno, "spool: file '%s': stat: %s", name,
				   strerror(errno));
	}
	/* A new file dropped under the same name since the claim must not be touched unseen. */
	if (!claimed_file(&st, job))
		return vlm_err_set(err, -ESTALE, "spool: file '%s': replaced since it was claimed",
				   name);
	crash_point("inbox.hide.before");
	if (renameat2(dirfd, name, dirfd, hidden, RENAME_NOREPLACE) < 0) {
		if (errno == ENOENT)
			return 1;
		return vlm_err_set(err, -errno,
				   "spool: file '%s': cannot move out of the inbox: %s", name,
				   strerror(errno));
	}
	crash_point("inbox.hide.after");
	return 0;
}

static int move_file(int src_dirfd, const char *src_name, int dest_dirfd, const char *dest_name,
		     vlm_err *err);

/* Moves the file under the job's private name to `dest_name` in `dest_dirfd` (as move_file), or
 * deletes it when dest_dirfd is -1, if it is the claimed file; any other file goes back under
 * the job's name (or "<job id>-<name>" if that is taken again), to be claimed as a new
 * document, and -ESTALE is returned. 1 when there is nothing under the private name. */
static int settle_hidden(int dirfd, const struct ex_job *job, int dest_dirfd, const char *dest_name,
			 vlm_err *err)
{
	char hidden[64];
	hidden_name(hidden, job->id);
	struct stat st;
	if (fstatat(dirfd, hidden, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 1;
		return vlm_err_set(err, -errno, "spool: file '%s': stat: %s", hidden,
				   strerror(errno));
	}
	if (!claimed_file(&st, job)) {
		char other[320];
		snprintf(other, sizeof other, "%s-%.200s", job->id, job->name);
		if (renameat2(dirfd, hidden, dirfd, job->name, RENAME_NOREPLACE) < 0 &&
		    renameat2(dirfd, hidden, dirfd, other, RENAME_NOREPLACE) < 0)
			return vlm_err_set(err, -errno,
					   "spool: file '%s': a newer file under its "
					   "name cannot be put back: %s",
					   job->name, strerror(errno));
		fsync(dirfd);
		return vlm_err_set(err, -ESTALE, "spool: file '%s': replaced since it was claimed",
				   job->name);
	}
	if (dest_dirfd >= 0)
		return move_file(dirfd, hidden, dest_dirfd, dest_name, err);
	crash_point("inbox.unlink.before");
	if (unlinkat(dirfd, hidden, 0) < 0 && errno != ENOENT)
		return vlm_err_set(err, -errno,
				   "spool: file '%s': cannot remove from the inbox: %s", job->name,
				   strerror(errno));
	crash_point("inbox.unlink.after");
	crash_point("inbox.fsync-dir.before");
	/* Best effort: if the unlink is lost in a power cut, the hash catches the file again. */
	fsync(dirfd);
	crash_point("inbox.fsync-dir.after");
	return 0;
}

int spool_release_source(int dirfd, const char *name, const struct ex_job *job, vlm_err *err)
{
	int rc = hide(dirfd, name, job, err);
	if (rc == 0)
		rc = settle_hidden(dirfd, job, -1, NULL, err);
	return rc == 1 ? 0 : rc;
}

int spool_recover_hidden(int dirfd, int (*find)(void *user, const char *id, struct ex_job *job),
			 void *user, vlm_err *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return vlm_err_set(err, -errno, "spool: cannot list an inbox: %s", strerror(errno));
	}
	int rc = 0, n = 0;
	size_t p = strlen(TMP_PREFIX), x = strlen(HIDDEN_SUFFIX);
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= p + x || len - p - x >= EX_JOB_ID_LEN ||
		    strncmp(e->d_name, TMP_PREFIX, p) != 0 ||
		    strcmp(e->d_name + len - x, HIDDEN_SUFFIX))
			continue;
		char id[EX_JOB_ID_LEN];
		snprintf(id, sizeof id, "%.*s", (int)(len - p - x), e->d_name + p);
		struct ex_job job;
		int found = find(user, id, &job);
		if (found < 0) {
			rc = vlm_err_set(err, found,
					 "spool: inbox file '%s': journal lookup failed",
					 e->d_name);
		} else if (found) {
			/* A file put back (-ESTALE) is finished too: it is claimed as a new one. */
			int r = settle_hidden(dirfd, &job, -1, NULL, err);
			rc = r == -ESTALE ? 0 : r < 0 ? r : 0;
			n += rc == 0;
		}
		/* Not found: unknown to the journal (the name is taken only after the commit) or
		 * not to be removed: kept. */
	}
	closedir(d);
	return rc < 0 ? rc : n;
}

int spool_discard(struct spool *s, const char *id, vlm_err *err)
{
	crash_point("spool.discard-unlink.before");
	if (unlinkat(s->active_fd, id, 0) < 0 && errno != ENOENT)
		return vlm_err_set(err, -errno, "spool: job '%s': cannot remove: %s", id,
				   strerror(errno));
	crash_point("spool.discard-unlink.after");
	crash_point("spool.discard-fsync-dir.before");
	int rc = spool_fsync_dir(s->active_fd, "spool/active", err);
	crash_point("spool.discard-fsync-dir.after");
	return rc;
}

int spool_publish(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
		  vlm_err *err)
{
	char tmp_name[512];
	if (snprintf(tmp_name, sizeof tmp_name, TMP_PREFIX "%s" TMP_SUFFIX, name) >=
	    (int)sizeof tmp_name)
		return vlm_err_set(err, -ENAMETOOLONG, "spool: result '%s': name too long", name);
	/* A temporary file of an attempt cut short by a crash may still be there. */
	unlinkat(dirfd, tmp_name, 0);
	int fd = openat(dirfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return vlm_err_set(err, -errno, "spool: result '%s': cannot create: %s", tmp_name,
				   strerror(errno));
	int rc = 0;
	/* The crash point sits between a complete write and its fsync. A failed write or fsync
	 * removes the file; the caller redoes the whole job, never the fsync (see spool_claim). */
	if (fchmod(fd, mode) < 0 || (rc = write_all(fd, data, len)) < 0 ||
	    (crash_point("publish.fsync.before"), fsync(fd) < 0)) {
		rc = rc < 0 ? rc : -errno;
		vlm_err_set(err, rc, "spool: result '%s': write: %s", tmp_name, strerror(-rc));
		close(fd);
		unlinkat(dirfd, tmp_name, 0);
		return rc;
	}
	crash_point("publish.fsync.after");
	close(fd);
	crash_point("publish.rename.before");
	if (renameat2(dirfd, tmp_name, dirfd, name, RENAME_NOREPLACE) < 0) {
		rc = -errno;
		unlinkat(dirfd, tmp_name, 0);
		if (rc == -EEXIST)
			return 1;
		return vlm_err_set(err, rc, "spool: result '%s': rename: %s", name, strerror(-rc));
	}
	crash_point("publish.rename.after");
	crash_point("publish.fsync-dir.before");
	rc = spool_fsync_dir(dirfd, name, err);
	crash_point("publish.fsync-dir.after");
	return rc < 0 ? rc : 0;
}

/* Whether `a_name` in `a_dirfd` and `b_name` in `b_dirfd` are readable and hold the same bytes
 * (compared by SHA-256). */
static bool same_bytes(int a_dirfd, const char *a_name, int b_dirfd, const char *b_name)
{
	const int dirs[2] = { a_dirfd, b_dirfd };
	const char *const names[2] = { a_name, b_name };
	char digest[2][65] = { "", "" };
	for (int i = 0; i < 2; i++) {
		int fd = openat(dirs[i], names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return false;
		GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
		bool read_failed;
		if (copy_fd(fd, -1, sum, &read_failed) >= 0)
			snprintf(digest[i], sizeof digest[i], "%s", g_checksum_get_string(sum));
		g_checksum_free(sum);
		close(fd);
	}
	return digest[0][0] && strcmp(digest[0], digest[1]) == 0;
}

/* Copies `src_name` of `src_dirfd` to `dest_name` of `dest_dirfd` through a temporary name,
 * fsynced, renamed without overwriting. Returns 0, 1 when the source is gone, -EEXIST when
 * `dest_name` is taken, or a negative errno. */
static int copy_into(int src_dirfd, const char *src_name, int dest_dirfd, const char *dest_name,
		     vlm_err *err)
{
	char tmp_name[512];
	snprintf(tmp_name, sizeof tmp_name, TMP_PREFIX "%s" TMP_SUFFIX, dest_name);
	int src = openat(src_dirfd, src_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return errno == ENOENT ? 1
				       : vlm_err_set(err, -errno, "spool: '%s': open: %s", src_name,
						     strerror(errno));
	unlinkat(dest_dirfd, tmp_name, 0);
	int dst = openat(dest_dirfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = 0;
	if (dst < 0) {
		rc = vlm_err_set(err, -errno, "spool: '%s': cannot create: %s", tmp_name,
				 strerror(errno));
		close(src);
		return rc;
	}
	bool read_failed;
	int64_t n = copy_fd(src, dst, NULL, &read_failed);
	close(src);
	if (n < 0 || (crash_point("settle-copy.fsync.before"), fsync(dst) < 0)) {
		rc = n < 0 ? (int)n : -errno;
		close(dst);
		unlinkat(dest_dirfd, tmp_name, 0);
		return vlm_err_set(err, rc, "spool: '%s': copy to '%s': %s", src_name, dest_name,
				   strerror(-rc));
	}
	crash_point("settle-copy.fsync.after");
	close(dst);
	crash_point("settle-copy.rename.before");
	if (renameat2(dest_dirfd, tmp_name, dest_dirfd, dest_name, RENAME_NOREPLACE) < 0) {
		rc = -errno;
		unlinkat(dest_dirfd, tmp_name, 0);
		return rc == -EEXIST ? rc
				     : vlm_err_set(err, rc, "spool: '%s': rename: %s", dest_name,
						   strerror(-rc));
	}
	crash_point("settle-copy.rename.after");
	return 0;
}

/* Moves `src_name` to `dest_name` on another file system (rename cannot cross file systems):
 * copies, then removes the source. As move_file. */
static int move_by_copy(int src_dirfd, const char *src_name, int dest_dirfd, const char *dest_name,
			vlm_err *err)
{
	/* A crash after the copy's rename and before the source's unlink leaves both: the copy
	 * in place is this move's, so the move is finished, not made again under another name
	 * (which would keep the original twice). */
	int rc;
	if (!same_bytes(src_dirfd, src_name, dest_dirfd, dest_name) &&
	    (rc = copy_into(src_dirfd, src_name, dest_dirfd, dest_name, err)) != 0)
		return rc;
	crash_point("settle-copy.fsync-dir-dest.before");
	if ((rc = spool_fsync_dir(dest_dirfd, dest_name, err)) < 0)
		return rc;
	crash_point("settle-copy.fsync-dir-dest.after");
	crash_point("settle-copy.unlink.before");
	if (unlinkat(src_dirfd, src_name, 0) < 0 && errno != ENOENT)
		return vlm_err_set(err, -errno, "spool: '%s': cannot remove: %s", src_name,
				   strerror(errno));
	crash_point("settle-copy.unlink.after");
	crash_point("settle-copy.fsync-dir-src.before");
	rc = spool_fsync_dir(src_dirfd, src_name, err);
	crash_point("settle-copy.fsync-dir-src.after");
	return rc;
}

/* Moves `src_name` to `dest_name` without overwriting; both directories fsynced. Returns 0, 1
 * when the source is already gone, -EEXIST when the destination is taken, or a negative errno. */
static int move_file(int src_dirfd, const char *src_name, int dest_dirfd, const char *dest_name,
		     vlm_err *err)
{
	crash_point("settle.rename.before");
	if (renameat2(src_dirfd, src_name, dest_dirfd, dest_name, RENAME_NOREPLACE) < 0) {
		int e = errno;
		if (e == EXDEV)
			return move_by_copy(src_dirfd, src_name, dest_dirfd, dest_name, err);
		if (e == ENOENT)
			return 1;
		if (e == EEXIST)
			return -EEXIST;
		return vlm_err_set(err, -e, "spool: '%s': move to '%s': %s", src_name, dest_name,
				   strerror(e));
	}
	crash_point("settle.rename.after");
	crash_point("settle.fsync-dir-dest.before");
	int rc = spool_fsync_dir(dest_dirfd, dest_name, err);
	crash_point("settle.fsync-dir-dest.after");
	if (rc == 0) {
		crash_point("settle.fsync-dir-src.before");
		rc = spool_fsync_dir(src_dirfd, src_name, err);
		crash_point("settle.fsync-dir-src.after");
	}
	return rc;
}

int spool_settle(struct spool *s, const char *id, int dest_dirfd, const char *dest_name,
		 vlm_err *err)
{
	if (!spool_has(s, id))
		return 1;
	if (dest_dirfd < 0)
		return spool_discard(s, id, err);
	return move_file(s->active_fd, id, dest_dirfd, dest_name, err);
}

int spool_settle_source(int src_dirfd, const struct ex_job *job, int dest_dirfd,
			const char *dest_name, vlm_err *err)
{
	int rc = hide(src_dirfd, job->name, job, err);
	return rc == 0 ? settle_hidden(src_dirfd, job, dest_dirfd, dest_name, err) : rc;
}

bool spool_has(const struct spool *s, const char *id)
{
	return !(faccessat(s->active_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
}

/* Calls `fn` for each plain entry name of `dirfd`; stops at the first negative return. */
static int each_entry(int dirfd, int (*fn)(int dirfd, const char *name, void *user), void *user,
		      vlm_err *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return vlm_err_set(err, -errno, "spool: cannot list a directory: %s",
				   strerror(errno));
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int r = fn(dirfd, e->d_name, user);
		if (r < 0) {
			rc = r;
			break;
		}
		rc += r;
	}
	closedir(d);
	return rc;
}

static int remove_entry(int dirfd, const char *name, void *user)
{
	(void)user;
	return unlinkat(dirfd, name, 0) == 0 ? 1 : 0;
}

struct unknown_ctx {
	bool (*known)(void *user, const char *id);
	void *user;
};

static int remove_unknown(int dirfd, const char *name, void *user)
{
	struct unknown_ctx *c = user;
	if (c->known(c->user, name))
		return 0;
	return unlinkat(dirfd, name, 0) == 0 ? 1 : 0;
}

int spool_recover(struct spool *s, bool (*known)(void *user, const char *id), void *user,
		  vlm_err *err)
{
	int a = each_entry(s->claim_fd, remove_entry, NULL, err);
	if (a < 0)
		return a;
	struct unknown_ctx c = { known, user };
	int b = each_entry(s->active_fd, remove_unknown, &c, err);
	if (b < 0)
		return b;
	int rc;
	if ((rc = spool_fsync_dir(s->claim_fd, "spool/claim", err)) < 0 ||
	    (rc = spool_fsync_dir(s->active_fd, "spool/active", err)) < 0)
		return rc;
	return a + b;
}

static int remove_tmp(int dirfd, const char *name, void *user)
{
	(void)user;
	size_t n = strlen(name), p = strlen(TMP_PREFIX), x = strlen(TMP_SUFFIX);
	if (n <= p + x || strncmp(name, TMP_PREFIX, p) != 0 || strcmp(name + n - x, TMP_SUFFIX))
		return 0;
	return unlinkat(dirfd, name, 0) == 0 ? 1 : 0;
}

int spool_clean_tmp(int dirfd, vlm_err *err)
{
	int n = each_entry(dirfd, remove_tmp, NULL, err);
	if (n > 0) {
		int rc = spool_fsync_dir(dirfd, "outbox", err);
		if (rc < 0)
			return rc;
	}
	return n;
}

int spool_free_bytes(const struct spool *s, uint64_t *out, vlm_err *err)
{
	struct statvfs v;
	if (fstatvfs(s->active_fd, &v) < 0)
		return vlm_err_set(err, -errno, "spool: statvfs: %s", strerror(errno));
	*out = (uint64_t)v.f_bavail * v.f_frsize;
	return 0;
}
