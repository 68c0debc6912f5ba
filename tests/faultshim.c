/* Disk-fault injection for the daemon tests, loaded with LD_PRELOAD (built for tests only, never
 * installed). It wraps write, pwrite, fsync and fdatasync; for regular files under the configured
 * path prefixes they fail with a chosen errno, every N-th call or with a probability drawn from a
 * seeded generator, so a run is repeatable. It also watches the daemon's side of the contract:
 * after an fsync failed on a descriptor, a second fsync on it is a retry, which can report
 * success after the kernel dropped the unwritten pages (fsyncgate); every such retry is logged.
 *
 * INTAKE_FAULT is a comma-separated list:
 *   OP:ERRNO:every=N   OP (write, pwrite, fsync, fdatasync) fails on its N-th, 2N-th... call
 *   OP:ERRNO:p=X       OP fails with probability X (0..1) on each call
 *   seed=N             the generator's seed (default 1)
 *   path=PREFIX        files under PREFIX are affected (repeatable; none: nothing is)
 *   log=FILE           where the lines below go (appended)
 * ERRNO is EIO, ENOSPC or EDQUOT. Log lines: "inject OP ERRNO fd N PATH" for each fault injected,
 * "retry OP fd N PATH" for an fsync or fdatasync on a descriptor whose fsync failed before.
 *
 * A write fault is what a full disk does: when the call asks for more than one byte, half is
 * written and the short count returned; the descriptor then fails every later write with that
 * errno until it is closed. An fsync fault returns -1 and truncates the file to zero bytes: the
 * kernel may drop pages it failed to write back, and emptying the file makes any later use of
 * it (a rename into place, a publication) show up as an empty result instead of passing unseen.
 *
 * Only calls that go through the dynamic linker are seen: the daemon's own write and fsync, not
 * stdio's internal writes. Directories are never affected (their fsync only makes renames and
 * unlinks durable; injecting there is a different test). The descriptor tables are not locked:
 * the daemon makes its file writes from one thread. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum op { OP_WRITE, OP_PWRITE, OP_FSYNC, OP_FDATASYNC, OP_COUNT };
static const char *const op_names[OP_COUNT] = { "write", "pwrite", "fsync", "fdatasync" };

struct rule {
	int err;        /* 0: the operation is never failed */
	unsigned every; /* fail calls every, 2*every...; 0: by probability */
	double p;
	uint64_t calls; /* calls seen on affected files */
};

#define MAX_PREFIXES 8
#define MAX_FDS 4096

static struct {
	bool ready;
	struct rule rules[OP_COUNT];
	uint64_t seed;
	char *prefixes[MAX_PREFIXES];
	size_t n_prefixes;
	char *log_path;
	int log_fd;
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*close)(int);
} shim = { .log_fd = -1, .seed = 1 };

/* Per descriptor: the errno every write fails with after an injected short write, and whether
 * an fsync failed (with the file's identity, so a descriptor number reused after a close the
 * shim did not see, such as fclose's, is not taken for a retry). */
static int sticky_err[MAX_FDS];
static struct {
	bool failed;
	dev_t dev;
	ino_t ino;
} fsync_failed[MAX_FDS];

static int errno_by_name(const char *name, size_t len)
{
	static const struct {
		const char *name;
		int err;
	} names[] = { { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT } };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
			return names[i].err;
	return 0;
}

/* One item of INTAKE_FAULT ([item, end)); false when it makes no sense. */
static bool parse_item(const char *item, const char *end)
{
	size_t len = (size_t)(end - item);
	char *copy = strndup(item, len);
	if (!copy)
		return false;
	bool ok = false;
	char *eq = strchr(copy, '=');
	char *colon = strchr(copy, ':');
	if (colon && (!eq || colon < eq)) {
		char *second = strchr(colon + 1, ':');
		enum op op = OP_COUNT;
		for (int i = 0; i < OP_COUNT; i++)
			if (strlen(op_names[i]) == (size_t)(colon - copy) &&
			    memcmp(op_names[i], copy, (size_t)(colon - copy)) == 0)
				op = (enum op)i;
		int err = second ? errno_by_name(colon + 1, (size_t)(second - colon - 1)) : 0;
		if (op < OP_COUNT && err) {
			struct rule *r = &shim.rules[op];
			char *num_end = NULL;
			r->err = err;
			if (strncmp(second + 1, "every=", 6) == 0) {
				unsigned long n = strtoul(second + 7, &num_end, 10);
				r->every = (unsigned)n;
				ok = n > 0 && *num_end == '\0';
			} else if (strncmp(second + 1, "p=", 2) == 0) {
				r->p = strtod(second + 3, &num_end);
				ok = r->p >= 0 && r->p <= 1 && *num_end == '\0';
			}
		}
	} else if (eq) {
		*eq = '\0';
		char *value = eq + 1, *num_end = NULL;
		if (strcmp(copy, "seed") == 0) {
			shim.seed = strtoull(value, &num_end, 10);
			ok = *value && *num_end == '\0';
		} else if (strcmp(copy, "path") == 0 && *value && shim.n_prefixes < MAX_PREFIXES) {
			/* A trailing slash would make the prefix miss the directory itself. */
			size_t n = strlen(value);
			while (n > 1 && value[n - 1] == '/')
				value[--n] = '\0';
			ok = (shim.prefixes[shim.n_prefixes++] = strdup(value)) != NULL;
		} else if (strcmp(copy, "log") == 0 && *value) {
			ok = (shim.log_path = strdup(value)) != NULL;
		}
	}
	free(copy);
	return ok;
}

static void *next_symbol(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);
	if (!fn)
		abort(); /* nothing can run without the real call */
	return fn;
}

/* The real calls; also from a wrapper, since a library initialised before this one may
 * write before the constructor below has run. */
static void resolve(void)
{
	if (shim.close)
		return;
	shim.write = (ssize_t(*)(int, const void *, size_t))next_symbol("write");
	shim.pwrite = (ssize_t(*)(int, const void *, size_t, off_t))next_symbol("pwrite");
	shim.fsync = (int (*)(int))next_symbol("fsync");
	shim.fdatasync = (int (*)(int))next_symbol("fdatasync");
	shim.close = (int (*)(int))next_symbol("close");
}

__attribute__((constructor)) static void shim_init(void)
{
	resolve();
	const char *spec = getenv("INTAKE_FAULT");
	if (!spec)
		return;
	for (const char *p = spec; *p;) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if (end > p && !parse_item(p, end)) {
			fprintf(stderr, "faultshim: INTAKE_FAULT: cannot use '%.*s'\n",
				(int)(end - p), p);
			exit(2);
		}
		p = *end ? end + 1 : end;
	}
	shim.ready = true;
}

/* Fills `path` and `st` with what `fd` refers to when it is a regular file under a prefix. */
static bool affected(int fd, char *path, size_t size, struct stat *st)
{
	if (!shim.ready || fd < 0 || fd >= MAX_FDS || fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
		return false;
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, size - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	for (size_t i = 0; i < shim.n_prefixes; i++) {
		size_t len = strlen(shim.prefixes[i]);
		if (strncmp(path, shim.prefixes[i], len) == 0 && (path[len] == '/' || !path[len]))
			return true;
	}
	return false;
}

static void log_line(const char *what, enum op op, int err, int fd, const char *path)
{
	if (!shim.log_path)
		return;
	if (shim.log_fd < 0)
		shim.log_fd = open(shim.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	char line[4200];
	int n = snprintf(line, sizeof line, "%s %s%s%s fd %d %s\n", what, op_names[op],
			 err ? " " : "", err ? strerrorname_np(err) : "", fd, path);
	if (shim.log_fd >= 0 && n > 0)
		shim.write(shim.log_fd, line,
			   (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* SplitMix64: a call's draw depends only on the seed, the operation and the call's number. */
static double draw(enum op op, uint64_t call)
{
	uint64_t z = shim.seed ^ ((uint64_t)op << 56) ^ call;
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

/* The errno this call of `op` on an affected file fails with, or 0. */
static int decide(enum op op)
{
	struct rule *r = &shim.rules[op];
	uint64_t call = ++r->calls;
	if (!r->err)
		return 0;
	bool fail = r->every ? call % r->every == 0 : draw(op, call) < r->p;
	return fail ? r->err : 0;
}

static ssize_t faulty_write(enum op op, int fd, const void *buf, size_t count, off_t offset)
{
	resolve();
	char path[4096];
	struct stat st;
	ssize_t (*real)(int, const void *, size_t, off_t) = shim.pwrite;
	if (!affected(fd, path, sizeof path, &st))
		return op == OP_WRITE ? shim.write(fd, buf, count) : real(fd, buf, count, offset);
	if (sticky_err[fd]) {
		errno = sticky_err[fd];
		return -1;
	}
	int err = decide(op);
	if (!err)
		return op == OP_WRITE ? shim.write(fd, buf, count) : real(fd, buf, count, offset);
	log_line("inject", op, err, fd, path);
	sticky_err[fd] = err;
	if (count > 1) {
		ssize_t n = op == OP_WRITE ? shim.write(fd, buf, count / 2)
					   : real(fd, buf, count / 2, offset);
		if (n > 0)
			return n;
	}
	errno = err;
	return -1;
}

ssize_t write(int fd, const void *buf, size_t count)
{
	return faulty_write(OP_WRITE, fd, buf, count, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	return faulty_write(OP_PWRITE, fd, buf, count, offset);
}

/* pwrite64 is the same call where off_t is 64 bits (every target of intake). */
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
	return faulty_write(OP_PWRITE, fd, buf, count, offset);
}

static int faulty_sync(enum op op, int fd)
{
	resolve();
	char path[4096];
	struct stat st;
	int (*real)(int) = op == OP_FSYNC ? shim.fsync : shim.fdatasync;
	if (!affected(fd, path, sizeof path, &st))
		return real(fd);
	bool again = fsync_failed[fd].failed && fsync_failed[fd].dev == st.st_dev &&
		     fsync_failed[fd].ino == st.st_ino;
	if (again)
		log_line("retry", op, 0, fd, path);
	int err = decide(op);
	int rc;
	if (err) {
		log_line("inject", op, err, fd, path);
		if (ftruncate(fd, 0) < 0)
			abort(); /* the fault would not be what the log says */
		errno = err;
		rc = -1;
	} else {
		rc = real(fd);
	}
	if (rc < 0) {
		fsync_failed[fd].failed = true;
		fsync_failed[fd].dev = st.st_dev;
		fsync_failed[fd].ino = st.st_ino;
	}
	return rc;
}

int fsync(int fd)
{
	return faulty_sync(OP_FSYNC, fd);
}

int fdatasync(int fd)
{
	return faulty_sync(OP_FDATASYNC, fd);
}

int close(int fd)
{
	resolve();
	if (fd >= 0 && fd < MAX_FDS) {
		sticky_err[fd] = 0;
		fsync_failed[fd].failed = false;
	}
	return shim.close(fd);
}
