/* Getting the model: `intake model pull` and `intake model verify`.
 *
 * Owns the conversation with a Hugging Face hub (or a mirror at $HF_ENDPOINT): the revision is
 * resolved to a commit, the commit's file tree gives every file's size and hash (LFS files their
 * SHA-256, small files their git blob id), and the files the engine reads are downloaded from
 * {endpoint}/{repo}/resolve/{commit}/{name} with libcurl (redirects to the CDN followed, proxies
 * taken from the environment by libcurl itself).
 *
 * Invariants: a byte reaches DIR/NAME only by the rename of a file whose hash matched; partial
 * downloads live in DIR/.intake-download/NAME.incomplete and resume with a Range request. The
 * manifest DIR/intake-model.json is removed before a pull replaces the first file of a previous
 * model and written last, after the engine's loader accepted the directory, so a directory with a
 * manifest is always one complete model at one commit.
 *
 * Does not parse safetensors itself (the engine's config and weights loaders judge the tensors),
 * never downloads files the engine does not read, and never deletes files it did not write. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "model_pull.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define DOWNLOAD_DIR ".intake-download"
#define INCOMPLETE ".incomplete"
#define API_MAX_BYTES (64u << 20) /* a listing of a repository with many thousands of files */
#define ERROR_BODY_MAX 4096u      /* error pages are kept only to be discarded */
#define INDEX_MAX_BYTES (64 << 20)
#define ST_HEADER_MAX (100 << 20) /* the safetensors format's own header limit */
#define MAX_ATTEMPTS 4
#define HASH_CHUNK (1 << 20)
#define PATH_SIZE 4096

/* ---- Small helpers --------------------------------------------------------------------------- */

static int path_join(char *buf, const char *dir, const char *name, const char *suffix, vlm_err *err)
{
	int n = snprintf(buf, PATH_SIZE, "%s/%s%s", dir, name, suffix);
	if (n < 0 || n >= PATH_SIZE)
		return vlm_err_set(err, -ENAMETOOLONG, "model: '%s/%s': path too long", dir, name);
	return 0;
}

/* A file name the hub may give us that is safe to join to DIR: no directories, nothing hidden
 * (our own .intake-download and the manifest's temporary file start with a dot). */
static bool is_plain_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || s[0] == '.' || strcmp(s, EX_MODEL_MANIFEST) == 0)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* "owner/name" with the hub's characters; checked so it can go into URLs and paths as is. */
static bool is_repo_name(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!g_ascii_isalnum(*s) && !strchr("/._-", *s))
			return false;
	return true;
}

static bool is_hex(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!g_ascii_isxdigit(s[i]) || g_ascii_isupper(s[i]))
			return false;
	return true;
}

static void human_bytes(char *buf, size_t size, double bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;
	while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Git names a blob by SHA-1 over "blob SIZE\0" and the content; the hub lists that id for files
 * not stored in LFS, so priming the checksum lets those be checked too. */
static void git_blob_prime(GChecksum *sha1, int64_t size)
{
	char head[40];
	int n = snprintf(head, sizeof head, "blob %" PRId64, size);
	g_checksum_update(sha1, (const guchar *)head, n + 1);
}

/* Feeds bytes [0, n) of fd to the checksums (either may be NULL). */
static int hash_fd(int fd, int64_t n, GChecksum *sha256, GChecksum *sha1, const char *path,
		   vlm_err *err)
{
	guchar *buf = malloc(HASH_CHUNK);
	if (!buf)
		return vlm_err_set(err, -ENOMEM, "model: out of memory");
	int rc = 0;
	for (int64_t at = 0; at < n && rc == 0;) {
		size_t want = n - at < HASH_CHUNK ? (size_t)(n - at) : HASH_CHUNK;
		ssize_t got = pread(fd, buf, want, at);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			rc = vlm_err_set(err, got < 0 ? -errno : -EIO,
					 "model: '%s': read failed: %s", path,
					 got < 0 ? strerror(errno) : "file shrank");
			break;
		}
		if (sha256)
			g_checksum_update(sha256, buf, got);
		if (sha1)
			g_checksum_update(sha1, buf, got);
		at += got;
	}
	free(buf);
	return rc;
}

/* Opens a regular file without following symlinks; *size is its length. */
static int open_regular(const char *path, int flags, int64_t *size, vlm_err *err)
{
	int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return vlm_err_set(err, -errno, "model: '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return vlm_err_set(err, -EINVAL, "model: '%s': not a regular file", path);
	}
	*size = st.st_size;
	return fd;
}

int ex_pull_sink_write(struct ex_pull_sink *s, const void *buf, size_t n, vlm_err *err)
{
	const char *p = buf;
	size_t left = n;
	while (left > 0) {
		ssize_t w = write(s->fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			if (e == ENOSPC || e == EDQUOT)
				return vlm_err_set(err, -e,
						   "model pull: '%s': disk full after %" PRId64
						   " bytes: free some space and run pull again (it "
						   "resumes)",
						   s->path, s->have + (int64_t)(n - left));
			return vlm_err_set(err, -e, "model pull: '%s': write failed: %s", s->path,
					   strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	if (s->sha256)
		g_checksum_update(s->sha256, buf, n);
	if (s->sha1)
		g_checksum_update(s->sha1, buf, n);
	s->have += (int64_t)n;
	return 0;
}

int ex_pull_http_error(long status, const char *error_code, const char *error_message,
		       const char *repo, const char *revision, const char *what, bool have_token,
		       vlm_err *err)
{
	if (strcmp(error_code, "GatedRepo") == 0) {
		if (have_token)
			return vlm_err_set(err, -EACCES,
					   "model pull: repository '%s' is gated and the token in "
					   "HF_TOKEN has no access (HTTP %ld): accept its terms on "
					   "the hub with that token's account",
					   repo, status);
		return vlm_err_set(err, -EACCES,
				   "model pull: repository '%s' is gated (HTTP %ld): accept its "
				   "terms on the hub and set HF_TOKEN to an access token of that "
				   "account",
				   repo, status);
	}
	if (status == 401 && have_token && strstr(error_message, "Invalid credentials"))
		return vlm_err_set(err, -EACCES,
				   "model pull: repository '%s': the token in HF_TOKEN is invalid "
				   "or expired (HTTP 401)",
				   repo);
	if (strcmp(error_code, "RevisionNotFound") == 0)
		return vlm_err_set(
			err, -ENOENT,
			"model pull: repository '%s': revision '%s' not found (HTTP %ld)", repo,
			revision, status);
	if (strcmp(error_code, "EntryNotFound") == 0)
		return vlm_err_set(err, -ENOENT,
				   "model pull: repository '%s' at '%s': %s not found (HTTP %ld)",
				   repo, revision, what, status);
	/* The hub answers 401 for a repository that does not exist as well as for a private one
	 * asked for without a token: it will not say which. */
	if (status == 401 || strcmp(error_code, "RepoNotFound") == 0)
		return vlm_err_set(err, status == 401 ? -EACCES : -ENOENT,
				   "model pull: repository '%s' not found (HTTP %ld): check the "
				   "name%s",
				   repo, status,
				   have_token ? ", and that the token in HF_TOKEN may read it"
					      : "; if it is private or gated, set HF_TOKEN");
	if (status == 403)
		return vlm_err_set(err, -EACCES,
				   "model pull: repository '%s': %s: access denied (HTTP 403)%s%s: "
				   "%s",
				   repo, what, *error_message ? ": " : "", error_message,
				   have_token ? "check the permissions of the token in HF_TOKEN"
					      : "set HF_TOKEN to an access token");
	if (status == 404)
		return vlm_err_set(
			err, -ENOENT,
			"model pull: repository '%s': %s not found (HTTP 404): check the "
			"repository and revision '%s'",
			repo, what, revision);
	return vlm_err_set(err, -EIO, "model pull: repository '%s': %s: HTTP %ld%s%s", repo, what,
			   status, *error_message ? ": " : "", error_message);
}

/* ---- The manifest ---------------------------------------------------------------------------- */

struct manifest_file {
	const char *name;
	int64_t size;
	const char *sha256;
};

/* A parsed DIR/intake-model.json; the strings point into `root`. */
struct manifest {
	json_t *root;
	const char *repo, *revision, *commit, *model_id;
	struct manifest_file *files;
	size_t n_files;
};

static void manifest_done(struct manifest *m)
{
	free(m->files);
	json_decref(m->root);
	memset(m, 0, sizeof *m);
}

/* Reads and checks DIR's manifest. -ENOENT when there is none (err filled all the same),
 * -EBADMSG when it is incomplete or invalid: such a directory is not a pulled model. */
static int manifest_read(const char *dir, struct manifest *m, vlm_err *err)
{
	memset(m, 0, sizeof *m);
	char path[PATH_SIZE];
	int rc = path_join(path, dir, EX_MODEL_MANIFEST, "", err);
	if (rc < 0)
		return rc;
	int64_t size;
	int fd = open_regular(path, O_RDONLY, &size, err);
	if (fd < 0)
		return fd;
	json_error_t jerr;
	m->root = size <= INDEX_MAX_BYTES ? json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	close(fd);
	if (!m->root)
		return vlm_err_set(err, -EBADMSG, "model: '%s': invalid JSON (line %d): %s", path,
				   jerr.line, size <= INDEX_MAX_BYTES ? jerr.text : "too large");
	json_t *files = NULL;
	json_int_t format = 0;
	if (json_unpack(m->root, "{s:I, s:s, s:s, s:s, s:s, s:o}", "format", &format, "repo",
			&m->repo, "revision", &m->revision, "commit", &m->commit, "model_id",
			&m->model_id, "files", &files) != 0 ||
	    format != 1 || !json_is_array(files) || json_array_size(files) == 0) {
		manifest_done(m);
		return vlm_err_set(
			err, -EBADMSG,
			"model: '%s': incomplete manifest (format 1 with repo, revision, "
			"commit, model_id and files expected)",
			path);
	}
	char id[512];
	snprintf(id, sizeof id, "%s@%s", m->repo, m->commit);
	if (!is_hex(m->commit, 40) || strcmp(id, m->model_id) != 0) {
		rc = vlm_err_set(err, -EBADMSG, "model: '%s': model_id '%s' is not repo@commit",
				 path, m->model_id);
		manifest_done(m);
		return rc;
	}
	m->files = calloc(json_array_size(files), sizeof *m->files);
	if (!m->files) {
		manifest_done(m);
		return vlm_err_set(err, -ENOMEM, "model: out of memory");
	}
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
	{
		struct manifest_file *mf = &m->files[i];
		json_int_t fsize = -1;
		if (json_unpack(f, "{s:s, s:I, s:s}", "path", &mf->name, "size", &fsize, "sha256",
				&mf->sha256) != 0 ||
		    !is_plain_name(mf->name) || fsize < 0 || !is_hex(mf->sha256, 64)) {
			manifest_done(m);
			return vlm_err_set(
				err, -EBADMSG,
				"model: '%s': files[%zu]: path, size and sha256 expected", path, i);
		}
		mf->size = fsize;
		m->n_files++;
	}
	return 0;
}

static const struct manifest_file *manifest_find(const struct manifest *m, const char *name)
{
	for (size_t i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].name, name) == 0)
			return &m->files[i];
	return NULL;
}

/* ---- Verification ---------------------------------------------------------------------------- */

/* SHA-256 of dir/name into hex[65]; *size is the file's length. */
static int hash_file(const char *dir, const char *name, char hex[65], int64_t *size, vlm_err *err)
{
	char path[PATH_SIZE];
	int rc = path_join(path, dir, name, "", err);
	if (rc < 0)
		return rc;
	int fd = open_regular(path, O_RDONLY, size, err);
	if (fd < 0)
		return fd;
	GChecksum *sha = g_checksum_new(G_CHECKSUM_SHA256);
	rc = hash_fd(fd, *size, sha, NULL, path, err);
	if (rc == 0)
		snprintf(hex, 65, "%s", g_checksum_get_string(sha));
	g_checksum_free(sha);
	close(fd);
	return rc;
}

/* The engine's own loaders decide whether the directory holds a usable model: config.json and
 * every tensor the config implies, with its shape. */
/* Loads the directory the way the engine does (config, every tensor's name and shape, the
 * tokenizer), so a verified model is one the engine accepts. */
static int check_structure(const char *dir, struct ex_model_check *out, vlm_err *err)
{
	struct vlm_model *m = NULL;
	int rc = vlm_model_load(dir, &(struct vlm_model_opts){ .n_threads = 1 }, &m, err);
	if (rc < 0)
		return rc;
	struct vlm_model_info info;
	vlm_model_get_info(m, &info);
	out->n_tensors = (size_t)info.n_tensors;
	out->n_params = info.n_params;
	vlm_model_free(m);
	return 0;
}

static int unpinned_id(const char *dir, char *id, size_t size, vlm_err *err)
{
	char path[PATH_SIZE], hex[65];
	int64_t n;
	int rc = hash_file(dir, "model.safetensors.index.json", hex, &n, NULL);
	if (rc == -ENOENT) {
		/* One model file: its header names every tensor with dtype, shape and offsets, which
		 * identifies the weights without reading gigabytes. */
		rc = path_join(path, dir, "model.safetensors", "", err);
		int fd = rc < 0 ? rc : open_regular(path, O_RDONLY, &n, err);
		if (fd < 0)
			return fd;
		uint8_t len8[8];
		uint64_t len = 0;
		if (pread(fd, len8, 8, 0) == 8)
			for (int i = 7; i >= 0; i--)
				len = len << 8 | len8[i];
		if (len == 0 || len > ST_HEADER_MAX || (int64_t)len > n - 8) {
			close(fd);
			return vlm_err_set(err, -EBADMSG, "model: '%s': not a safetensors file",
					   path);
		}
		GChecksum *sha = g_checksum_new(G_CHECKSUM_SHA256);
		rc = hash_fd(fd, (int64_t)len + 8, sha, NULL, path, err);
		if (rc == 0)
			snprintf(hex, sizeof hex, "%s", g_checksum_get_string(sha));
		g_checksum_free(sha);
		close(fd);
	} else if (rc < 0) {
		return hash_file(dir, "model.safetensors.index.json", hex, &n, err);
	}
	if (rc == 0)
		snprintf(id, size, "unpinned@sha256:%s", hex);
	return rc;
}

int ex_model_id(const char *dir, char *id, size_t size, vlm_err *err)
{
	struct manifest m;
	int rc = manifest_read(dir, &m, err);
	if (rc == -ENOENT)
		return unpinned_id(dir, id, size, err);
	if (rc == 0 && (size_t)snprintf(id, size, "%s", m.model_id) >= size)
		rc = vlm_err_set(err, -ENAMETOOLONG, "model: '%s': model id too long", dir);
	manifest_done(&m);
	return rc;
}

int ex_model_verify(const char *dir, struct ex_model_check *out, vlm_err *err)
{
	memset(out, 0, sizeof *out);
	struct manifest m;
	int rc = manifest_read(dir, &m, err);
	if (rc == -ENOENT)
		rc = unpinned_id(dir, out->model_id, sizeof out->model_id, err);
	else if (rc < 0)
		return rc;
	else
		out->pinned = true;

	size_t n_bad = 0;
	vlm_err first = { 0 };
	for (size_t i = 0; out->pinned && i < m.n_files; i++) {
		const struct manifest_file *f = &m.files[i];
		char hex[65];
		int64_t size;
		vlm_err e = { 0 };
		int frc = hash_file(dir, f->name, hex, &size, &e);
		if (frc == 0 && size != f->size)
			frc = vlm_err_set(&e, -EBADMSG,
					  "model verify: '%s/%s': %" PRId64
					  " bytes, the manifest says %" PRId64,
					  dir, f->name, size, f->size);
		else if (frc == 0 && strcmp(hex, f->sha256) != 0)
			frc = vlm_err_set(
				&e, -EBADMSG,
				"model verify: '%s/%s': SHA-256 mismatch (expected %.12s..., "
				"found %.12s...)",
				dir, f->name, f->sha256, hex);
		if (frc < 0 && n_bad++ == 0)
			first = e;
		out->n_files++;
		out->n_bytes += f->size;
	}
	if (n_bad > 0) {
		rc = first.code;
		if (n_bad > 1)
			vlm_err_set(err, rc, "%s (and %zu more bad files)", first.msg, n_bad - 1);
		else
			vlm_err_set(err, rc, "%s", first.msg);
	}
	if (rc == 0 && out->pinned)
		snprintf(out->model_id, sizeof out->model_id, "%s", m.model_id);
	manifest_done(&m);
	if (rc == 0)
		rc = check_structure(dir, out, err);
	if (rc < 0)
		out->pinned = false;
	return rc;
}

int ex_model_default_dir(const char *repo, char *dir, size_t size, vlm_err *err)
{
	const char *env = getenv("INTAKE_MODEL_DIR");
	int n;
	if (env && *env) {
		n = snprintf(dir, size, "%s", env);
	} else {
		gchar **parts = g_strsplit(repo, "/", -1);
		gchar *name = g_strjoinv("--", parts);
		n = snprintf(dir, size, "/var/lib/intake/models/%s", name);
		g_free(name);
		g_strfreev(parts);
	}
	if (n < 0 || (size_t)n >= size)
		return vlm_err_set(err, -ENAMETOOLONG, "model: directory for '%s': path too long",
				   repo);
	return 0;
}

/* ---- Talking to the hub ---------------------------------------------------------------------- */

struct hub_file {
	char *name;
	int64_t size;
	char oid[41];          /* git blob id, what the hub lists for files not in LFS */
	char sha256[65];       /* the LFS object id; "" when the file is not in LFS */
	char local_sha256[65]; /* what the file in DIR hashes to, for the manifest */
	bool want;
};

/* A file being downloaded into DIR/.intake-download/NAME.incomplete. */
struct download {
	const struct hub_file *file;
	struct ex_pull_sink sink;
	int index, count;      /* for the progress bar: [index/count] */
	int64_t have_at_start; /* where this attempt started, for the rate */
	double t_start, t_drawn;
};

/* The response being received. The header callback resets it at each status line, so after a
 * redirect it describes the final response only. */
struct response {
	long status;
	char error_code[64];     /* X-Error-Code */
	char error_message[256]; /* X-Error-Message */
	char next[2048];         /* Link: <URL>; rel="next" (listing pages) */
	int64_t range_start;     /* Content-Range's first byte, -1 when absent */
	char *body;              /* API answers and error pages */
	size_t n_body;
	bool started; /* the download accepted the start of this 2xx body */
	int write_rc; /* a callback's own failure; err is already filled */
};

struct pull {
	const char *repo, *revision, *dir;
	char endpoint[1024];
	const char *token;
	bool progress;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	char commit[41];
	struct hub_file *files;
	size_t n_files;
	struct manifest old; /* the previous pull's manifest (root NULL when none) */
	bool old_removed;
	char dl_dir[PATH_SIZE];
	struct response rsp;
	struct download *dl; /* NULL while talking to the API */
	vlm_err *err;
};

/* Copies a header value, trimmed, with control characters (which a terminal would obey)
 * replaced. */
static void header_copy(char *dst, size_t size, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	dst[n] = '\0';
}

static const char *header_value(const char *line, const char *name)
{
	size_t n = strlen(name);
	return g_ascii_strncasecmp(line, name, n) == 0 && line[n] == ':' ? line + n + 1 : NULL;
}

/* Link: <url>; rel="next"[, <url>; rel="last"] (the GitHub-style pagination the hub uses). */
static void parse_link_next(char *dst, size_t size, const char *v)
{
	for (const char *lt = strchr(v, '<'); lt; lt = strchr(lt + 1, '<')) {
		const char *gt = strchr(lt, '>');
		if (!gt)
			return;
		const char *comma = strchr(gt, ',');
		const char *rel = strstr(gt, "rel=\"next\"");
		if (rel && (!comma || rel < comma) && (size_t)(gt - lt - 1) < size) {
			memcpy(dst, lt + 1, gt - lt - 1);
			dst[gt - lt - 1] = '\0';
			return;
		}
	}
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user)
{
	struct pull *p = user;
	struct response *r = &p->rsp;
	size_t n = size * nmemb;
	char line[4096];
	size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
	memcpy(line, data, k);
	line[k] = '\0';
	const char *v;
	if (strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = strchr(line, ' ');
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->error_code[0] = r->error_message[0] = r->next[0] = '\0';
		r->range_start = -1;
		r->n_body = 0;
	} else if ((v = header_value(line, "X-Error-Code"))) {
		header_copy(r->error_code, sizeof r->error_code, v);
	} else if ((v = header_value(line, "X-Error-Message"))) {
		header_copy(r->error_message, sizeof r->error_message, v);
	} else if ((v = header_value(line, "Link"))) {
		parse_link_next(r->next, sizeof r->next, v);
	} else if ((v = header_value(line, "Content-Range"))) {
		const char *bytes = strstr(v, "bytes ");
		if (bytes && g_ascii_isdigit(bytes[6]))
			r->range_start = strtoll(bytes + 6, NULL, 10);
	}
	return n;
}

/* The first bytes of a 2xx body: a 206 must continue where the file ends; a 200 (a server or
 * proxy that ignored Range) restarts the file from zero. */
static int download_start(struct pull *p)
{
	struct download *d = p->dl;
	if (p->rsp.status == 206 && p->rsp.range_start == d->sink.have)
		return 0;
	if (p->rsp.status == 206)
		return vlm_err_set(p->err, -EIO,
				   "model pull: '%s': the server sent bytes from %" PRId64
				   ", not the %" PRId64 " asked for",
				   d->file->name, p->rsp.range_start, d->sink.have);
	if (d->sink.have == 0)
		return 0;
	if (ftruncate(d->sink.fd, 0) < 0 || lseek(d->sink.fd, 0, SEEK_SET) < 0)
		return vlm_err_set(p->err, -errno, "model pull: '%s': %s", d->sink.path,
				   strerror(errno));
	g_checksum_reset(d->sink.sha256);
	if (d->sink.sha1) {
		g_checksum_reset(d->sink.sha1);
		git_blob_prime(d->sink.sha1, d->file->size);
	}
	d->sink.have = d->have_at_start = 0;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct pull *p = user;
	struct response *r = &p->rsp;
	struct download *d = p->dl;
	size_t n = size * nmemb;
	bool ok = r->status / 100 == 2;
	if (d && ok) {
		if (!r->started) {
			r->write_rc = download_start(p);
			if (r->write_rc < 0)
				return 0;
			r->started = true;
		}
		if (d->sink.have + (int64_t)n > d->file->size) {
			r->write_rc = vlm_err_set(p->err, -EBADMSG,
						  "model pull: '%s': the server sent more than the "
						  "%" PRId64 " bytes the file listing gives",
						  d->file->name, d->file->size);
			return 0;
		}
		r->write_rc = ex_pull_sink_write(&d->sink, data, n, p->err);
		return r->write_rc < 0 ? 0 : n;
	}
	size_t max = d || !ok ? ERROR_BODY_MAX : API_MAX_BYTES;
	if (r->n_body + n > max) {
		if (!ok)
			return n; /* the rest of an error page is not needed */
		r->write_rc =
			vlm_err_set(p->err, -E2BIG, "model pull: '%s': an answer over %zu bytes",
				    p->endpoint, max);
		return 0;
	}
	char *body = realloc(r->body, r->n_body + n + 1);
	if (!body) {
		r->write_rc = vlm_err_set(p->err, -ENOMEM, "model pull: out of memory");
		return 0;
	}
	memcpy(body + r->n_body, data, n);
	r->body = body;
	r->n_body += n;
	body[r->n_body] = '\0';
	return n;
}

static void progress_draw(struct download *d, bool done)
{
	double t = now_seconds();
	if (!done && t - d->t_drawn < 0.1)
		return;
	d->t_drawn = t;
	double elapsed = t - d->t_start > 1e-3 ? t - d->t_start : 1e-3;
	double rate = (double)(d->sink.have - d->have_at_start) / elapsed;
	int64_t size = d->file->size;
	char have[32], total[32], speed[32], eta[32] = "--:--";
	human_bytes(have, sizeof have, (double)d->sink.have);
	human_bytes(total, sizeof total, (double)size);
	human_bytes(speed, sizeof speed, rate);
	if (rate > 0 && d->sink.have < size) {
		long s = (long)((double)(size - d->sink.have) / rate);
		snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
	}
	int pct = size ? (int)(d->sink.have * 100 / size) : 100;
	fprintf(stderr, "\r[%d/%d] %-36.36s %3d%%  %9s / %-9s  %9s/s  ETA %s\033[K", d->index,
		d->count, d->file->name, pct, have, total, speed, eta);
	if (done)
		fputc('\n', stderr);
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct pull *p = user;
	if (p->dl)
		progress_draw(p->dl, false);
	return 0;
}

/* A dropped connection or a stalled transfer is worth another attempt (a download resumes where
 * it stopped); a refused connection or an unknown host is not. */
static bool is_transient(CURLcode c)
{
	switch (c) {
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static int curl_fail(struct pull *p, CURLcode c, const char *what)
{
	const char *detail = p->errbuf[0] ? p->errbuf : curl_easy_strerror(c);
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return vlm_err_set(p->err, -EHOSTUNREACH,
				   "model pull: %s from '%s': cannot resolve the host (no network "
				   "or DNS, or a wrong HF_ENDPOINT): %s",
				   what, p->endpoint, detail);
	case CURLE_COULDNT_RESOLVE_PROXY:
		return vlm_err_set(
			p->err, -EHOSTUNREACH,
			"model pull: %s: cannot resolve the proxy (check HTTPS_PROXY): %s", what,
			detail);
	case CURLE_COULDNT_CONNECT:
		return vlm_err_set(
			p->err, -ECONNREFUSED,
			"model pull: %s from '%s': cannot connect (no network, or nothing "
			"listening at HF_ENDPOINT or the proxy): %s",
			what, p->endpoint, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return vlm_err_set(p->err, -ETIMEDOUT,
				   "model pull: %s from '%s': timed out (network down?): %s", what,
				   p->endpoint, detail);
	default:
		return vlm_err_set(p->err, -EIO, "model pull: %s from '%s': %s%s", what,
				   p->endpoint, is_transient(c) ? "connection lost: " : "", detail);
	}
}

/* GETs url: with p->dl set, a 2xx body goes to that download (asking only for the bytes it
 * lacks), else to p->rsp.body. Transient failures are retried, a download resuming each time. */
static int http_get(struct pull *p, const char *url, const char *what)
{
	struct response *r = &p->rsp;
	for (int attempt = 1;; attempt++) {
		r->status = 0;
		r->n_body = 0;
		r->started = false;
		r->write_rc = 0;
		r->error_code[0] = r->error_message[0] = r->next[0] = '\0';
		p->errbuf[0] = '\0';
		char range[32];
		bool ranged = p->dl && p->dl->sink.have > 0;
		if (ranged)
			snprintf(range, sizeof range, "%" PRId64 "-", p->dl->sink.have);
		if (p->dl) {
			p->dl->have_at_start = p->dl->sink.have;
			p->dl->t_start = now_seconds();
		}
		curl_easy_setopt(p->curl, CURLOPT_URL, url);
		curl_easy_setopt(p->curl, CURLOPT_RANGE, ranged ? range : NULL);
		curl_easy_setopt(p->curl, CURLOPT_NOPROGRESS, p->dl && p->progress ? 0L : 1L);
		CURLcode c = curl_easy_perform(p->curl);
		if (r->write_rc < 0)
			return r->write_rc;
		int rc;
		bool retry;
		if (c != CURLE_OK) {
			rc = curl_fail(p, c, what);
			retry = is_transient(c);
		} else if (r->status / 100 != 2) {
			rc = ex_pull_http_error(r->status, r->error_code, r->error_message, p->repo,
						p->revision, what, p->token != NULL, p->err);
			retry = r->status >= 500 || r->status == 429;
		} else {
			return 0;
		}
		if (!retry || attempt == MAX_ATTEMPTS)
			return rc;
		sleep((unsigned)attempt - 1);
	}
}

static int parse_body(struct pull *p, const char *what, json_t **out)
{
	json_error_t jerr;
	*out = json_loadb(p->rsp.body ? p->rsp.body : "", p->rsp.n_body, 0, &jerr);
	if (!*out)
		return vlm_err_set(p->err, -EBADMSG,
				   "model pull: %s from '%s': not JSON (line %d): %s", what,
				   p->endpoint, jerr.line, jerr.text);
	return 0;
}

/* The revision (branch, tag or commit) -> the commit everything else is fetched at, so a
 * branch that moves during the pull cannot mix two versions. */
static int hub_commit(struct pull *p)
{
	char *rev = curl_easy_escape(p->curl, p->revision, 0);
	char url[PATH_SIZE], what[320];
	snprintf(what, sizeof what, "revision '%s'", p->revision);
	int n = rev ? snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", p->endpoint,
			       p->repo, rev)
		    : -1;
	curl_free(rev);
	if (n < 0 || n >= (int)sizeof url)
		return vlm_err_set(p->err, -ENAMETOOLONG, "model pull: revision '%s': URL too long",
				   p->revision);
	json_t *root;
	int rc = http_get(p, url, what);
	if (rc == 0)
		rc = parse_body(p, what, &root);
	if (rc < 0)
		return rc;
	const char *sha = json_string_value(json_object_get(root, "sha"));
	if (is_hex(sha, 40))
		memcpy(p->commit, sha, 41);
	else
		rc = vlm_err_set(
			p->err, -EBADMSG,
			"model pull: repository '%s' %s: the hub's answer has no commit sha",
			p->repo, what);
	json_decref(root);
	return rc;
}

static int hub_add_file(struct pull *p, json_t *e)
{
	const char *type = "", *name = "", *oid = "";
	json_int_t size = -1;
	if (json_unpack(e, "{s:s, s:s, s?I, s?s}", "type", &type, "path", &name, "size", &size,
			"oid", &oid) != 0)
		return vlm_err_set(p->err, -EBADMSG,
				   "model pull: file listing of '%s': an entry "
				   "without type and path",
				   p->repo);
	if (strcmp(type, "file") != 0 || !is_plain_name(name))
		return 0; /* folders and files inside them: the engine reads none */
	json_t *lfs = json_object_get(e, "lfs");
	const char *sha256 = lfs ? json_string_value(json_object_get(lfs, "oid")) : NULL;
	if (size < 0 || (lfs ? !is_hex(sha256, 64) : !is_hex(oid, 40)))
		return vlm_err_set(p->err, -EBADMSG,
				   "model pull: file listing of '%s': '%s' has no size or hash",
				   p->repo, name);
	struct hub_file *files = realloc(p->files, (p->n_files + 1) * sizeof *files);
	if (!files)
		return vlm_err_set(p->err, -ENOMEM, "model pull: out of memory");
	p->files = files;
	struct hub_file *f = &files[p->n_files];
	memset(f, 0, sizeof *f);
	f->name = strdup(name);
	if (!f->name)
		return vlm_err_set(p->err, -ENOMEM, "model pull: out of memory");
	p->n_files++;
	f->size = size;
	snprintf(f->oid, sizeof f->oid, "%s", lfs ? "" : oid);
	snprintf(f->sha256, sizeof f->sha256, "%s", lfs ? sha256 : "");
	return 0;
}

/* Every file at the commit with its size and hash, following the listing's pages. */
static int hub_tree(struct pull *p)
{
	char url[PATH_SIZE];
	snprintf(url, sizeof url, "%s/api/models/%s/tree/%s?recursive=1", p->endpoint, p->repo,
		 p->commit);
	size_t n_endpoint = strlen(p->endpoint);
	while (url[0]) {
		json_t *root = NULL;
		int rc = http_get(p, url, "file listing");
		if (rc == 0)
			rc = parse_body(p, "file listing", &root);
		if (rc < 0)
			return rc;
		if (!json_is_array(root))
			rc = vlm_err_set(p->err, -EBADMSG,
					 "model pull: file listing of '%s': not a JSON array",
					 p->repo);
		size_t i;
		json_t *e;
		json_array_foreach(root, i, e)
		{
			if (rc == 0)
				rc = hub_add_file(p, e);
		}
		json_decref(root);
		if (rc < 0)
			return rc;
		/* Only pages on the same endpoint: the token must not go anywhere else. */
		if (strncmp(p->rsp.next, p->endpoint, n_endpoint) == 0 &&
		    p->rsp.next[n_endpoint] == '/')
			snprintf(url, sizeof url, "%s", p->rsp.next);
		else
			url[0] = '\0';
	}
	return 0;
}

static struct hub_file *hub_find(struct pull *p, const char *name)
{
	for (size_t i = 0; i < p->n_files; i++)
		if (strcmp(p->files[i].name, name) == 0)
			return &p->files[i];
	return NULL;
}

/* ---- Downloading ----------------------------------------------------------------------------- */

/* 1 when DIR/NAME already holds the listed file: an LFS file a previous pull's manifest records
 * with the same hash is trusted (verify re-hashes it), anything else is hashed. */
static int file_in_place(struct pull *p, struct hub_file *f, const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != f->size)
		return 0;
	const struct manifest_file *mf = p->old.root ? manifest_find(&p->old, f->name) : NULL;
	if (f->sha256[0] && mf && mf->size == f->size && strcmp(mf->sha256, f->sha256) == 0) {
		memcpy(f->local_sha256, f->sha256, 65);
		return 1;
	}
	int64_t size;
	int fd = open_regular(path, O_RDONLY, &size, p->err);
	if (fd < 0)
		return fd;
	GChecksum *sha256 = g_checksum_new(G_CHECKSUM_SHA256);
	GChecksum *sha1 = f->sha256[0] ? NULL : g_checksum_new(G_CHECKSUM_SHA1);
	if (sha1)
		git_blob_prime(sha1, f->size);
	int rc = hash_fd(fd, size, sha256, sha1, path, p->err);
	close(fd);
	if (rc == 0) {
		const char *got = g_checksum_get_string(sha256);
		rc = strcmp(sha1 ? g_checksum_get_string(sha1) : got, sha1 ? f->oid : f->sha256) ==
		     0;
		if (rc)
			snprintf(f->local_sha256, sizeof f->local_sha256, "%s", got);
	}
	g_checksum_free(sha256);
	if (sha1)
		g_checksum_free(sha1);
	return rc;
}

/* Renames a verified download into DIR. The first file a pull replaces removes the previous
 * manifest, so the directory stops being a pulled model until the new manifest is written. */
static int install(struct pull *p, const char *part, const char *path)
{
	if (!p->old_removed) {
		char manifest[PATH_SIZE];
		int rc = path_join(manifest, p->dir, EX_MODEL_MANIFEST, "", p->err);
		if (rc < 0)
			return rc;
		if (unlink(manifest) < 0 && errno != ENOENT)
			return vlm_err_set(p->err, -errno, "model pull: '%s': %s", manifest,
					   strerror(errno));
		p->old_removed = true;
	}
	if (rename(part, path) < 0)
		return vlm_err_set(p->err, -errno, "model pull: '%s': rename: %s", path,
				   strerror(errno));
	return 0;
}

static int fetch_file(struct pull *p, struct hub_file *f, int index, int count)
{
	char path[PATH_SIZE], part[PATH_SIZE], url[PATH_SIZE], what[320];
	int rc = path_join(path, p->dir, f->name, "", p->err);
	if (rc == 0)
		rc = path_join(part, p->dl_dir, f->name, INCOMPLETE, p->err);
	if (rc == 0)
		rc = file_in_place(p, f, path);
	if (rc != 0)
		return rc < 0 ? rc : 0;

	int64_t have;
	int fd = open_regular(part, O_RDWR | O_CREAT, &have, p->err);
	if (fd < 0)
		return fd;
	struct download d = {
		.file = f, .sink = { .fd = fd, .path = part }, .index = index, .count = count
	};
	d.sink.sha256 = g_checksum_new(G_CHECKSUM_SHA256);
	if (!f->sha256[0]) {
		d.sink.sha1 = g_checksum_new(G_CHECKSUM_SHA1);
		git_blob_prime(d.sink.sha1, f->size);
	}
	if (have > f->size && ftruncate(fd, 0) == 0)
		have = 0;
	/* What an interrupted pull left is hashed once, then the rest streams through. */
	rc = hash_fd(fd, have, d.sink.sha256, d.sink.sha1, part, p->err);
	d.sink.have = have;
	if (rc == 0 && lseek(fd, have, SEEK_SET) < 0)
		rc = vlm_err_set(p->err, -errno, "model pull: '%s': %s", part, strerror(errno));
	if (rc == 0 && have < f->size) {
		char *name = curl_easy_escape(p->curl, f->name, 0);
		int n = name ? snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", p->endpoint,
					p->repo, p->commit, name)
			     : -1;
		curl_free(name);
		snprintf(what, sizeof what, "file '%s'", f->name);
		if (n < 0 || n >= (int)sizeof url)
			rc = vlm_err_set(p->err, -ENAMETOOLONG, "model pull: %s: URL too long",
					 what);
		p->dl = &d;
		if (rc == 0)
			rc = http_get(p, url, what);
		p->dl = NULL;
		if (p->progress)
			progress_draw(&d, true);
	}
	if (rc == 0 && d.sink.have != f->size)
		rc = vlm_err_set(p->err, -EIO,
				 "model pull: '%s': the server sent %" PRId64 " of %" PRId64
				 " bytes: run pull again to resume",
				 f->name, d.sink.have, f->size);
	if (rc == 0) {
		const char *got = g_checksum_get_string(d.sink.sha256);
		const char *got_id = d.sink.sha1 ? g_checksum_get_string(d.sink.sha1) : got;
		const char *want = d.sink.sha1 ? f->oid : f->sha256;
		if (strcmp(got_id, want) == 0) {
			snprintf(f->local_sha256, sizeof f->local_sha256, "%s", got);
		} else {
			unlink(part);
			rc = vlm_err_set(
				p->err, -EBADMSG,
				"model pull: '%s': checksum mismatch (the hub lists %s "
				"%.12s..., the download has %.12s...): the file was removed, "
				"the others kept; run pull again",
				f->name, d.sink.sha1 ? "git id" : "SHA-256", want, got_id);
		}
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = vlm_err_set(p->err, -errno, "model pull: '%s': fsync: %s", part,
				 strerror(errno));
	close(fd);
	g_checksum_free(d.sink.sha256);
	if (d.sink.sha1)
		g_checksum_free(d.sink.sha1);
	return rc == 0 ? install(p, part, path) : rc;
}

/* Fails early when the files still to download cannot fit, rather than after hours. */
static int check_space(struct pull *p)
{
	int64_t need = 0;
	for (size_t i = 0; i < p->n_files; i++) {
		const struct hub_file *f = &p->files[i];
		char path[PATH_SIZE], part[PATH_SIZE];
		struct stat st;
		if (!f->want || path_join(path, p->dir, f->name, "", NULL) < 0 ||
		    (stat(path, &st) == 0 && st.st_size == f->size))
			continue;
		need += f->size;
		if (path_join(part, p->dl_dir, f->name, INCOMPLETE, NULL) == 0 &&
		    stat(part, &st) == 0 && st.st_size <= f->size)
			need -= st.st_size;
	}
	struct statvfs vfs;
	if (statvfs(p->dl_dir, &vfs) < 0)
		return 0; /* the writes will tell */
	int64_t avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
	if (need <= avail)
		return 0;
	char need_s[32], avail_s[32];
	human_bytes(need_s, sizeof need_s, (double)need);
	human_bytes(avail_s, sizeof avail_s, (double)avail);
	return vlm_err_set(p->err, -ENOSPC,
			   "model pull: '%s': disk full: the model needs %s more, %s free", p->dir,
			   need_s, avail_s);
}

/* Marks the shards model.safetensors.index.json names (now in DIR) as wanted. */
static int want_shards(struct pull *p)
{
	char path[PATH_SIZE];
	int rc = path_join(path, p->dir, "model.safetensors.index.json", "", p->err);
	if (rc < 0)
		return rc;
	json_error_t jerr;
	json_t *index = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	json_t *map = json_object_get(index, "weight_map");
	if (!json_is_object(map)) {
		json_decref(index);
		return vlm_err_set(p->err, -EBADMSG, "model pull: '%s': no weight_map object",
				   path);
	}
	const char *tensor;
	json_t *shard;
	json_object_foreach(map, tensor, shard)
	{
		const char *name = json_string_value(shard);
		struct hub_file *f =
			name && is_plain_name(name) && g_str_has_suffix(name, ".safetensors")
				? hub_find(p, name)
				: NULL;
		if (!f) {
			rc = vlm_err_set(p->err, -EBADMSG,
					 "model pull: '%s': tensor '%s': shard '%s' is not a "
					 "safetensors file of the repository",
					 path, tensor, name ? name : "(not a string)");
			break;
		}
		f->want = true;
	}
	json_decref(index);
	return rc;
}

static int write_manifest(struct pull *p, const char *model_id)
{
	json_t *files = json_array();
	for (size_t i = 0; i < p->n_files; i++) {
		const struct hub_file *f = &p->files[i];
		if (f->want)
			json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "path", f->name,
							       "size", (json_int_t)f->size,
							       "sha256", f->local_sha256));
	}
	char when[32];
	time_t t = time(NULL);
	struct tm tm;
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	json_t *root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o}", "format", 1, "repo",
				 p->repo, "revision", p->revision, "commit", p->commit, "model_id",
				 model_id, "pulled_at", when, "files", files);
	char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	json_decref(root);
	if (!text)
		return vlm_err_set(p->err, -ENOMEM, "model pull: out of memory");

	char tmp[PATH_SIZE], path[PATH_SIZE];
	int rc = path_join(tmp, p->dir, EX_MODEL_MANIFEST, ".tmp", p->err);
	if (rc == 0)
		rc = path_join(path, p->dir, EX_MODEL_MANIFEST, "", p->err);
	int fd = rc < 0 ? rc
			: open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (rc == 0 && fd < 0)
		rc = vlm_err_set(p->err, -errno, "model pull: '%s': %s", tmp, strerror(errno));
	if (rc == 0) {
		struct ex_pull_sink sink = { .fd = fd, .path = tmp };
		rc = ex_pull_sink_write(&sink, text, strlen(text), p->err);
		if (rc == 0)
			rc = ex_pull_sink_write(&sink, "\n", 1, p->err);
		if (rc == 0 && fsync(fd) < 0)
			rc = vlm_err_set(p->err, -errno, "model pull: '%s': fsync: %s", tmp,
					 strerror(errno));
		close(fd);
		if (rc == 0 && rename(tmp, path) < 0)
			rc = vlm_err_set(p->err, -errno, "model pull: '%s': %s", path,
					 strerror(errno));
		if (rc < 0)
			unlink(tmp);
	}
	free(text);
	/* The renames into DIR are durable once the directory itself is synced. */
	int dfd = rc == 0 ? open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return rc;
}

static bool env_true(const char *name)
{
	const char *v = getenv(name);
	return v && (strcmp(v, "1") == 0 || g_ascii_strcasecmp(v, "true") == 0 ||
		     g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "on") == 0);
}

/* Offline: DIR must already hold a pull of this repository and revision, which is verified. */
static int pull_offline(const struct ex_pull_opts *o, struct ex_model_check *check, vlm_err *err)
{
	struct manifest m;
	int rc = manifest_read(o->dir, &m, err);
	if (rc == -ENOENT)
		return vlm_err_set(err, -ENOENT,
				   "model pull: '%s': no pulled model there (no %s), and offline: "
				   "run pull without --offline or HF_HUB_OFFLINE first",
				   o->dir, EX_MODEL_MANIFEST);
	if (rc < 0)
		return rc;
	size_t n = strlen(o->revision);
	bool same = strcmp(m.repo, o->repo) == 0 &&
		    (strcmp(m.revision, o->revision) == 0 ||
		     (n >= 7 && strncmp(m.commit, o->revision, n) == 0));
	if (!same)
		rc = vlm_err_set(err, -ENOENT,
				 "model pull: '%s' holds %s (revision '%s'), not '%s' at '%s', and "
				 "offline: nothing was fetched",
				 o->dir, m.model_id, m.revision, o->repo, o->revision);
	manifest_done(&m);
	return rc < 0 ? rc : ex_model_verify(o->dir, check, err);
}

/* The engine's files in the order they are fetched; the weights follow. */
static const struct {
	const char *name;
	bool required;
} model_files[] = {
	{ "config.json", true },
	{ "generation_config.json", false },
	{ "preprocessor_config.json", false },
	{ "tokenizer.json", true },
	{ "tokenizer_config.json", false },
	{ "chat_template.jinja", false },
	{ "model.safetensors.index.json", false },
};

static int pull_files(struct pull *p)
{
	size_t n_meta = sizeof model_files / sizeof model_files[0];
	for (size_t i = 0; i < n_meta; i++) {
		struct hub_file *f = hub_find(p, model_files[i].name);
		if (f)
			f->want = true;
		else if (model_files[i].required)
			return vlm_err_set(p->err, -ENOENT,
					   "model pull: repository '%s' at %s has no '%s': not a "
					   "model intake can run",
					   p->repo, p->commit, model_files[i].name);
	}
	struct hub_file *index = hub_find(p, "model.safetensors.index.json");
	struct hub_file *single = hub_find(p, "model.safetensors");
	if (!index && !single)
		return vlm_err_set(p->err, -ENOENT,
				   "model pull: repository '%s' at %s has no safetensors weights",
				   p->repo, p->commit);
	int count = 0;
	for (size_t i = 0; i < p->n_files; i++)
		count += p->files[i].want;

	/* A checksum mismatch removes that file and goes on, so the next pull fetches only it;
	 * anything else (network, disk) stops here. */
	int first = 0, at = 0;
	for (size_t i = 0; i < n_meta; i++) {
		struct hub_file *f = hub_find(p, model_files[i].name);
		int rc = f ? fetch_file(p, f, ++at, count) : 0;
		if (rc < 0 && (rc != -EBADMSG || f == index))
			return rc;
		first = first ? first : rc;
	}
	int rc = index ? want_shards(p) : 0;
	if (rc < 0)
		return rc;
	if (!index)
		single->want = true;
	count = 0;
	for (size_t i = 0; i < p->n_files; i++)
		count += p->files[i].want;
	rc = check_space(p);
	for (size_t i = 0; i < p->n_files && rc == 0; i++) {
		struct hub_file *f = &p->files[i];
		if (!f->want || !g_str_has_suffix(f->name, ".safetensors"))
			continue;
		rc = fetch_file(p, f, ++at, count);
		if (rc == -EBADMSG) {
			first = first ? first : rc;
			rc = 0;
		}
	}
	return rc < 0 ? rc : first;
}

static int pull_setup(struct pull *p, const struct ex_pull_opts *o, int *lock_fd)
{
	const char *endpoint = o->endpoint ? o->endpoint : getenv("HF_ENDPOINT");
	if (!endpoint || !*endpoint)
		endpoint = DEFAULT_ENDPOINT;
	size_t n = strlen(endpoint);
	while (n > 0 && endpoint[n - 1] == '/')
		n--;
	if ((strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) ||
	    n >= sizeof p->endpoint)
		return vlm_err_set(p->err, -EINVAL,
				   "model pull: endpoint '%s': expected an http:// or https:// URL "
				   "(HF_ENDPOINT)",
				   endpoint);
	memcpy(p->endpoint, endpoint, n);
	p->endpoint[n] = '\0';
	p->token = o->token ? o->token : getenv("HF_TOKEN");
	if (p->token && !*p->token)
		p->token = NULL;

	if (g_mkdir_with_parents(o->dir, 0755) < 0)
		return vlm_err_set(p->err, -errno, "model pull: directory '%s': %s", o->dir,
				   strerror(errno));
	int rc = path_join(p->dl_dir, o->dir, DOWNLOAD_DIR, "", p->err);
	if (rc < 0)
		return rc;
	if (mkdir(p->dl_dir, 0755) < 0 && errno != EEXIST)
		return vlm_err_set(p->err, -errno, "model pull: '%s': %s", p->dl_dir,
				   strerror(errno));
	char lock[PATH_SIZE];
	rc = path_join(lock, p->dl_dir, "lock", "", p->err);
	*lock_fd = rc < 0 ? rc : open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (rc == 0 && *lock_fd < 0)
		return vlm_err_set(p->err, -errno, "model pull: '%s': %s", lock, strerror(errno));
	if (rc == 0 && flock(*lock_fd, LOCK_EX | LOCK_NB) < 0)
		return vlm_err_set(p->err, -EBUSY,
				   "model pull: '%s': another pull is running into it", o->dir);
	if (rc < 0)
		return rc;
	manifest_read(o->dir, &p->old, NULL); /* none, or an invalid one: every file is hashed */

	p->curl = curl_easy_init();
	if (!p->curl)
		return vlm_err_set(p->err, -ENOMEM, "model pull: cannot start libcurl");
	CURL *c = p->curl;
	/* No CURLOPT_PROXY: libcurl then honours https_proxy, HTTPS_PROXY and NO_PROXY itself. */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "intake/" INTAKE_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L); /* a stall of a minute is a failure */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, p);
	if (p->token) {
		/* libcurl sends it to the endpoint's host only, never to the CDN a redirect names. */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, p->token);
	}
	return 0;
}

int ex_model_pull(const struct ex_pull_opts *o, struct ex_model_check *check, vlm_err *err)
{
	struct ex_model_check scratch;
	if (!check)
		check = &scratch;
	memset(check, 0, sizeof *check);
	if (!o->repo || !is_repo_name(o->repo))
		return vlm_err_set(err, -EINVAL, "model pull: repository '%s': expected OWNER/NAME",
				   o->repo ? o->repo : "");
	bool bad_rev = !o->revision || !*o->revision || strlen(o->revision) > 255;
	for (const char *c = o->revision; !bad_rev && *c; c++)
		bad_rev = (unsigned char)*c <= 0x20 || *c == 0x7f;
	if (bad_rev || !o->dir || !*o->dir)
		return vlm_err_set(err, -EINVAL, "model pull: revision '%s' or directory: invalid",
				   o->revision ? o->revision : "");
	if (o->offline || env_true("HF_HUB_OFFLINE"))
		return pull_offline(o, check, err);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return vlm_err_set(err, -ENOMEM, "model pull: cannot initialise libcurl");
	struct pull p = { .repo = o->repo,
			  .revision = o->revision,
			  .dir = o->dir,
			  .progress = o->progress,
			  .err = err };
	int lock_fd = -1;
	int rc = pull_setup(&p, o, &lock_fd);
	if (rc == 0)
		rc = hub_commit(&p);
	if (rc == 0)
		rc = hub_tree(&p);
	if (rc == 0)
		rc = pull_files(&p);
	/* The engine's loaders have the last word: a manifest is written only for a directory
	 * they accept. */
	if (rc == 0)
		rc = check_structure(p.dir, check, err);
	char model_id[sizeof check->model_id];
	snprintf(model_id, sizeof model_id, "%s@%s", p.repo, p.commit);
	if (rc == 0)
		rc = write_manifest(&p, model_id);
	if (rc == 0) {
		char lock[PATH_SIZE];
		if (path_join(lock, p.dl_dir, "lock", "", NULL) == 0)
			unlink(lock);
		rmdir(p.dl_dir); /* stays when it holds downloads of files no longer wanted */
		check->pinned = true;
		snprintf(check->model_id, sizeof check->model_id, "%s", model_id);
		for (size_t i = 0; i < p.n_files; i++) {
			check->n_files += p.files[i].want;
			check->n_bytes += p.files[i].want ? p.files[i].size : 0;
		}
	}
	if (lock_fd >= 0)
		close(lock_fd);
	for (size_t i = 0; i < p.n_files; i++)
		free(p.files[i].name);
	free(p.files);
	free(p.rsp.body);
	manifest_done(&p.old);
	curl_easy_cleanup(p.curl);
	curl_global_cleanup();
	return rc;
}
