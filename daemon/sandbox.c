/* The parser child (see sandbox.h): fork, confine, ex_doc_load, serialize into a memfd, _exit.
 * The parent reads the memfd back with every length and dimension checked against the file size
 * and the configured limits, so a compromised child can at worst produce a wrong-looking
 * document, never make the parent read out of bounds or allocate without bound.
 *
 * The memfd holds: a header (magic, status, reason, error line, format, page count), then per
 * page its numbers, text layer, words and RGB pixels. All integers are native-endian: writer and
 * reader are the same binary. */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

#define MAGIC "INTAKE-PAGES-1\n"
#define CHILD_OUT_FD 3
#define EX_MAX_DIMENSION 65535 /* ingest's per-side cap */
#define MAX_TEXT_BYTES (64u << 20)
#define MAX_WORDS 10000000u

struct header {
	char magic[16];
	int32_t status; /* 0 or the negative errno of ex_doc_load */
	int32_t reason; /* enum ex_ingest_reason */
	char msg[512];
	uint32_t format;
	uint32_t n_pages;
};

struct page_header {
	int32_t number, width, height;
	double dpi_x, dpi_y;
	uint64_t text_len; /* UINT64_MAX: no text layer */
	uint64_t n_words;
};

struct word_header {
	double x0, y0, x1, y1;
	uint32_t len;
};

/* ---- child ---------------------------------------------------------------------------------- */

static bool put(FILE *f, const void *p, size_t n)
{
	return n == 0 || fwrite(p, 1, n, f) == n;
}

static bool write_doc(FILE *f, const struct ex_doc *doc, int status, const vlm_err *err)
{
	struct header h = { .status = status, .reason = err->reason };
	memcpy(h.magic, MAGIC, sizeof h.magic);
	snprintf(h.msg, sizeof h.msg, "%s", err->msg);
	if (doc) {
		h.format = (uint32_t)doc->format;
		h.n_pages = (uint32_t)doc->n_pages;
	}
	if (!put(f, &h, sizeof h))
		return false;
	for (size_t i = 0; doc && i < doc->n_pages; i++) {
		const struct ex_page *p = &doc->pages[i];
		struct page_header ph = { .number = p->number,
					  .width = p->width,
					  .height = p->height,
					  .dpi_x = p->dpi_x,
					  .dpi_y = p->dpi_y,
					  .text_len = p->text ? strlen(p->text) : UINT64_MAX,
					  .n_words = p->n_words };
		if (!put(f, &ph, sizeof ph) || (p->text && !put(f, p->text, ph.text_len)))
			return false;
		for (size_t w = 0; w < p->n_words; w++) {
			const struct ex_word *wd = &p->words[w];
			struct word_header wh = { wd->x0, wd->y0, wd->x1, wd->y1,
						  (uint32_t)strlen(wd->text) };
			if (!put(f, &wh, sizeof wh) || !put(f, wd->text, wh.len))
				return false;
		}
		if (!put(f, p->rgb, (size_t)p->width * (size_t)p->height * 3))
			return false;
	}
	return fflush(f) == 0;
}

static void limit(int resource, rlim_t value)
{
	struct rlimit r = { value, value };
	setrlimit(resource, &r);
}

static void set_limits(const struct config *cfg)
{
	limit(RLIMIT_CORE, 0);
	limit(RLIMIT_NOFILE, 64);
	limit(RLIMIT_CPU, (rlim_t)(cfg->parse_cpu_s + 0.999));
	/* The only file the child writes is its memfd: room for every allowed pixel and text. */
	limit(RLIMIT_FSIZE, (rlim_t)(cfg->limits.max_total_pixels * 3 + (256ull << 20)));
#if !defined(__SANITIZE_ADDRESS__)
	/* ASan reserves terabytes of shadow address space, so the cap only applies to builds
	 * without it. */
	limit(RLIMIT_AS, (rlim_t)cfg->parse_memory);
#endif
}

int sandbox_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

static void landlock_allow(int ruleset, const char *path, uint64_t access)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	/* Directory-only rights on a file make the whole rule invalid. */
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		access &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE;
	struct landlock_path_beneath_attr rule = { .allowed_access = access, .parent_fd = fd };
	syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
	close(fd);
}

/* Landlock: reads only where libraries, fonts and the job's file are; writes nowhere. Returns
 * false when the kernel has no Landlock (the seccomp layer still applies). */
static bool apply_landlock(const char *job_path)
{
	int abi = sandbox_landlock_abi();
	if (abi < 1)
		return false;
	uint64_t handled = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			   LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
			   LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
			   LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
			   LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
			   LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
			   LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		handled |= LANDLOCK_ACCESS_FS_REFER;
	struct landlock_ruleset_attr attr = { .handled_access_fs = handled };
	int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
	if (ruleset < 0)
		return false;
	const uint64_t read = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
			      LANDLOCK_ACCESS_FS_EXECUTE;
	static const char *const readable[] = {
		"/usr", "/etc", "/lib", "/lib64", "/var/cache/fontconfig", "/proc/self"
	};
	for (size_t i = 0; i < sizeof readable / sizeof readable[0]; i++)
		landlock_allow(ruleset, readable[i], read);
	landlock_allow(ruleset, job_path, LANDLOCK_ACCESS_FS_READ_FILE);
	bool ok = syscall(SYS_landlock_restrict_self, ruleset, 0) == 0;
	close(ruleset);
	return ok;
}

/* seccomp: a deny list over the default-allow, because poppler, cairo, fontconfig and GLib use
 * a wide and version-dependent set of ordinary calls; what is denied is what a compromised
 * parser would need to reach anything beyond its own process. */
static bool apply_seccomp(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return false;
	static const int denied[] = {
		SCMP_SYS(execve),
		SCMP_SYS(execveat),
		SCMP_SYS(fork),
		SCMP_SYS(vfork),
		SCMP_SYS(socket),
		SCMP_SYS(socketpair),
		SCMP_SYS(connect),
		SCMP_SYS(bind),
		SCMP_SYS(listen),
		SCMP_SYS(accept),
		SCMP_SYS(accept4),
		SCMP_SYS(ptrace),
		SCMP_SYS(process_vm_readv),
		SCMP_SYS(process_vm_writev),
		SCMP_SYS(mount),
		SCMP_SYS(umount2),
		SCMP_SYS(pivot_root),
		SCMP_SYS(chroot),
		SCMP_SYS(setns),
		SCMP_SYS(unshare),
		SCMP_SYS(kexec_load),
		SCMP_SYS(init_module),
		SCMP_SYS(finit_module),
		SCMP_SYS(delete_module),
		SCMP_SYS(bpf),
		SCMP_SYS(perf_event_open),
		SCMP_SYS(keyctl),
		SCMP_SYS(add_key),
		SCMP_SYS(request_key),
		SCMP_SYS(userfaultfd),
		SCMP_SYS(io_uring_setup),
		SCMP_SYS(unlink),
		SCMP_SYS(unlinkat),
		SCMP_SYS(rename),
		SCMP_SYS(renameat),
		SCMP_SYS(renameat2),
		SCMP_SYS(mkdir),
		SCMP_SYS(mkdirat),
		SCMP_SYS(rmdir),
		SCMP_SYS(link),
		SCMP_SYS(linkat),
		SCMP_SYS(symlink),
		SCMP_SYS(symlinkat),
		SCMP_SYS(chmod),
		SCMP_SYS(fchmodat),
		SCMP_SYS(chown),
		SCMP_SYS(fchownat),
		SCMP_SYS(lchown),
		SCMP_SYS(truncate),
		SCMP_SYS(mknod),
		SCMP_SYS(mknodat),
		SCMP_SYS(creat),
		SCMP_SYS(setrlimit),
		SCMP_SYS(prlimit64),
		SCMP_SYS(openat2),
		SCMP_SYS(open_by_handle_at),
		SCMP_SYS(name_to_handle_at),
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
		ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0) == 0;
	/* Threads are allowed (clone with CLONE_THREAD), new processes are not; clone3 hides its
	 * flags in memory, so it reports ENOSYS and glibc falls back to clone. */
	ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)) == 0;
	ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) == 0;
	/* Opening for writing or creating: refused (open's flags are argument 1, openat's 2). */
	static const unsigned long write_flags[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC };
	for (size_t i = 0; i < sizeof write_flags / sizeof write_flags[0]; i++) {
		unsigned long fl = write_flags[i];
		ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 1,
					    SCMP_A1(SCMP_CMP_MASKED_EQ, fl, fl)) == 0;
		ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1,
					    SCMP_A2(SCMP_CMP_MASKED_EQ, fl, fl)) == 0;
	}
	ok = ok && seccomp_load(ctx) == 0;
	seccomp_release(ctx);
	return ok;
}

static void child_exit(int code)
{
	/* _exit: the parent's atexit handlers, stdio buffers and sanitizer leak checks are the
	 * parent's business, not this short-lived copy's. */
	_exit(code);
}

#ifdef INTAKE_TEST_HOOKS
/* One attempt of the sandbox probe: prints whether the confinement refused it. */
static void probe_report(const char *what, bool refused, int e)
{
	fprintf(stderr, "sandbox probe: %s: %s (%s)\n", what, refused ? "blocked" : "ALLOWED",
		refused ? strerror(e) : "no error");
}

/* Test builds only: INTAKE_TEST_PARSER makes every parser child misbehave on purpose, after
 * its confinement is in place, so the daemon tests see what the parent does with it: "hang"
 * (sleeps until killed at the timeout), "crash" (abort), "probe" (tries to write files, exec,
 * open a socket, fork and delete its own input, reports each on stderr, then parses as usual). */
static void test_hook(const char *path)
{
	const char *mode = getenv("INTAKE_TEST_PARSER");
	if (!mode)
		return;
	if (strcmp(mode, "hang") == 0)
		for (;;)
			pause();
	if (strcmp(mode, "crash") == 0)
		abort();
	if (strcmp(mode, "probe") != 0)
		return;
	char probe[4200];
	snprintf(probe, sizeof probe, "%s.probe", path);
	int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
	probe_report("create a file in the spool", fd < 0, errno);
	fd = open("/tmp/intake-sandbox-probe", O_WRONLY | O_CREAT | O_EXCL, 0600);
	probe_report("create a file in /tmp", fd < 0, errno);
	fd = open(path, O_RDWR);
	probe_report("open its input for writing", fd < 0, errno);
	int rc = unlink(path);
	probe_report("delete its input", rc < 0, errno);
	char *const argv[] = { "/bin/true", NULL };
	rc = execv("/bin/true", argv);
	probe_report("exec /bin/true", rc < 0, errno);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	probe_report("open a TCP socket", fd < 0, errno);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	probe_report("open a Unix socket", fd < 0, errno);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	probe_report("fork", pid < 0, errno);
	fflush(stderr);
}
#endif

static void child_main(const char *path, const struct config *cfg, pid_t parent)
{
	/* The child must not outlive a daemon killed with SIGKILL: recovery requeues its job. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		child_exit(125);
	set_limits(cfg);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0) < 0)
		child_exit(120);
	apply_landlock(path);
	if (!apply_seccomp())
		child_exit(121);
#ifdef INTAKE_TEST_HOOKS
	test_hook(path);
#endif
	FILE *out = fdopen(CHILD_OUT_FD, "wb");
	if (!out)
		child_exit(122);
	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	int rc = ex_doc_load(path, &cfg->limits, &doc, &err);
	bool ok = write_doc(out, rc == 0 ? doc : NULL, rc, &err);
	ex_doc_free(doc);
	child_exit(ok ? 0 : 123);
}

int sandbox_start(const char *path, const struct config *cfg, double now,
		  struct sandbox_child *child, vlm_err *err)
{
	*child = (struct sandbox_child){ .pid = -1, .memfd = -1 };
	int memfd = memfd_create("intake-pages", MFD_CLOEXEC);
	if (memfd < 0)
		return vlm_err_set(err, -errno == -EMFILE ? -EAGAIN : -errno,
				   "sandbox: memfd_create: %s", strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(memfd);
		return vlm_err_set(err, e == EAGAIN || e == ENOMEM ? -EAGAIN : -e,
				   "sandbox: fork: %s", strerror(e));
	}
	if (pid == 0) {
		/* Keep stdin/stdout/stderr and the memfd as fd 3; drop the journal, the inotify
		 * descriptor and every directory the parent holds. */
		if (dup2(memfd, CHILD_OUT_FD) < 0 || close_range(CHILD_OUT_FD + 1, ~0u, 0) < 0)
			child_exit(124);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		child_main(path, cfg, parent);
	}
	child->pid = pid;
	child->memfd = memfd;
	child->deadline = now + cfg->parse_timeout_s;
	return 0;
}

void sandbox_kill(struct sandbox_child *child)
{
	if (child->pid > 0 && !child->timed_out) {
		kill(child->pid, SIGKILL);
		child->timed_out = true;
	}
}

/* ---- parent: reading the child's output back ------------------------------------------------ */

struct reader {
	const uint8_t *p, *end;
};

static bool take(struct reader *r, void *dst, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	memcpy(dst, r->p, n);
	r->p += n;
	return true;
}

static char *take_string(struct reader *r, uint64_t len)
{
	if ((uint64_t)(r->end - r->p) < len)
		return NULL;
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	memcpy(s, r->p, len);
	s[len] = '\0';
	r->p += len;
	return s;
}

/* Rebuilds the document, checking each size against what remains and against the limits. */
static bool read_doc(struct reader *r, const struct header *h, const struct config *cfg,
		     struct ex_doc *doc)
{
	if (h->format >= EX_FORMAT_COUNT || h->n_pages == 0 || h->n_pages > cfg->limits.max_pages)
		return false;
	doc->format = (enum ex_format)h->format;
	doc->pages = calloc(h->n_pages, sizeof *doc->pages);
	if (!doc->pages)
		return false;
	uint64_t total = 0;
	for (uint32_t i = 0; i < h->n_pages; i++) {
		struct page_header ph;
		struct ex_page *p = &doc->pages[i];
		if (!take(r, &ph, sizeof ph) || ph.width <= 0 || ph.height <= 0 ||
		    ph.width > EX_MAX_DIMENSION || ph.height > EX_MAX_DIMENSION)
			return false;
		doc->n_pages++;
		uint64_t pixels = (uint64_t)ph.width * (uint64_t)ph.height;
		total += pixels;
		if (pixels > cfg->limits.max_page_pixels || total > cfg->limits.max_total_pixels)
			return false;
		*p = (struct ex_page){ .number = ph.number,
				       .width = ph.width,
				       .height = ph.height,
				       .dpi_x = ph.dpi_x,
				       .dpi_y = ph.dpi_y };
		if (ph.text_len != UINT64_MAX) {
			if (ph.text_len > MAX_TEXT_BYTES ||
			    !(p->text = take_string(r, ph.text_len)))
				return false;
		}
		if (ph.n_words > MAX_WORDS ||
		    ph.n_words > (uint64_t)(r->end - r->p) / sizeof(struct word_header))
			return false;
		if (ph.n_words && !(p->words = calloc(ph.n_words, sizeof *p->words)))
			return false;
		for (uint64_t w = 0; w < ph.n_words; w++) {
			struct word_header wh;
			if (!take(r, &wh, sizeof wh))
				return false;
			struct ex_word *wd = &p->words[p->n_words];
			if (!(wd->text = take_string(r, wh.len)))
				return false;
			p->n_words++;
			wd->x0 = wh.x0, wd->y0 = wh.y0, wd->x1 = wh.x1, wd->y1 = wh.y1;
		}
		size_t bytes = (size_t)pixels * 3;
		if ((size_t)(r->end - r->p) < bytes || !(p->rgb = malloc(bytes)))
			return false;
		memcpy(p->rgb, r->p, bytes);
		r->p += bytes;
	}
	return r->p == r->end;
}

static const char *signal_text(int sig)
{
	switch (sig) {
	case SIGKILL:
		return "killed (memory or time limit)";
	case SIGXCPU:
		return "CPU time limit reached";
	case SIGXFSZ:
		return "output size limit reached";
	case SIGSEGV:
		return "crashed (segmentation fault)";
	case SIGABRT:
		return "crashed (abort)";
	case SIGBUS:
		return "crashed (bus error)";
	case SIGSYS:
		return "stopped by the seccomp filter";
	default:
		return "killed by a signal";
	}
}

enum sandbox_outcome sandbox_finish(struct sandbox_child *child, int wstatus,
				    const struct config *cfg, const char *display_name,
				    struct ex_doc **doc, vlm_err *err)
{
	*doc = NULL;
	enum sandbox_outcome outcome = SANDBOX_CRASHED;
	int memfd = child->memfd;
	child->memfd = -1;
	child->pid = -1;
	if (child->timed_out) {
		vlm_err_set(err, -ETIMEDOUT, "sandbox: '%s': parsing took longer than %gs",
			    display_name, cfg->parse_timeout_s);
		goto out;
	}
	if (WIFSIGNALED(wstatus)) {
		vlm_err_set(err, -ECHILD, "sandbox: '%s': parser %s (signal %d)", display_name,
			    signal_text(WTERMSIG(wstatus)), WTERMSIG(wstatus));
		goto out;
	}
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
		vlm_err_set(err, -ECHILD, "sandbox: '%s': parser failed (exit status %d)",
			    display_name, WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
		goto out;
	}
	struct stat st;
	if (fstat(memfd, &st) < 0 || (size_t)st.st_size < sizeof(struct header)) {
		vlm_err_set(err, -EBADMSG, "sandbox: '%s': parser returned no result",
			    display_name);
		goto out;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (map == MAP_FAILED) {
		vlm_err_set(err, -errno, "sandbox: '%s': cannot map the result: %s", display_name,
			    strerror(errno));
		goto out;
	}
	struct reader r = { map, (const uint8_t *)map + st.st_size };
	struct header h;
	take(&r, &h, sizeof h);
	h.msg[sizeof h.msg - 1] = '\0';
	if (memcmp(h.magic, MAGIC, sizeof h.magic) != 0) {
		vlm_err_set(err, -EBADMSG, "sandbox: '%s': parser returned garbage", display_name);
	} else if (h.status < 0) {
		/* ingest names the spool path; the job's own name is what a person recognises. */
		const char *detail = strchr(h.msg, '\'');
		detail = detail ? strchr(detail + 1, '\'') : NULL;
		int reason = h.reason > EX_REASON_NONE && h.reason < EX_REASON_COUNT
				     ? h.reason
				     : EX_REASON_INTERNAL;
		vlm_err_set_reason(err, h.status, reason, "ingest: '%s'%s", display_name,
				   detail ? detail + 1 : ": failed");
		outcome = ex_reason_is_refusal((enum ex_ingest_reason)reason) ? SANDBOX_REFUSED
									      : SANDBOX_CRASHED;
	} else {
		struct ex_doc *d = calloc(1, sizeof *d);
		if (d && (d->path = strdup(display_name)) && read_doc(&r, &h, cfg, d)) {
			*doc = d;
			outcome = SANDBOX_OK;
		} else {
			ex_doc_free(d);
			vlm_err_set(err, -EBADMSG,
				    "sandbox: '%s': parser returned an invalid "
				    "document",
				    display_name);
		}
	}
	munmap(map, (size_t)st.st_size);
out:
	close(memfd);
	return outcome;
}
