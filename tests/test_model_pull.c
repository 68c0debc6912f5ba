/* Unit tests of model_pull.c's pieces that the end-to-end test (e2e_model_pull.sh, against a
 * loopback hub) cannot reach reliably: a write failing with ENOSPC mid-download (/dev/full
 * fails every write that way), the sentence for each hub failure, the default directory, and the
 * unpinned model id of a directory without a manifest. Expected hashes were computed with
 * sha256sum and Python's hashlib. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model_pull.h"

static void test_sink_disk_full(void)
{
	int fd = open("/dev/full", O_WRONLY);
	if (fd < 0) {
		fprintf(stderr, "note: no /dev/full: ENOSPC case skipped\n");
		return;
	}
	struct ex_pull_sink s = { .fd = fd, .path = "m/.intake-download/x.incomplete", .have = 7 };
	vlm_err err = { 0 };
	CHECK_INT(ex_pull_sink_write(&s, "abc", 3, &err), -ENOSPC);
	CHECK_INT(err.code, -ENOSPC);
	CHECK_CONTAINS(err.msg, "model pull: 'm/.intake-download/x.incomplete': disk full after 7 "
				"bytes");
	CHECK_CONTAINS(err.msg, "run pull again");
	CHECK_INT(s.have, 7);
	close(fd);
}

static void test_sink_hashes(void)
{
	char path[] = "/tmp/test_model_pull.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	struct ex_pull_sink s = { .fd = fd,
				  .path = path,
				  .sha256 = g_checksum_new(G_CHECKSUM_SHA256) };
	CHECK_INT(ex_pull_sink_write(&s, "a", 1, NULL), 0);
	CHECK_INT(ex_pull_sink_write(&s, "bc", 2, NULL), 0);
	CHECK_INT(s.have, 3);
	/* FIPS 180-2, appendix B.1: SHA-256("abc"). */
	CHECK_STR(g_checksum_get_string(s.sha256),
		  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	char back[4] = { 0 };
	CHECK_INT(pread(fd, back, 3, 0), 3);
	CHECK_STR(back, "abc");
	g_checksum_free(s.sha256);
	close(fd);
	unlink(path);
}

static void test_http_errors(void)
{
	const char *r = "org/model";
	vlm_err err = { 0 };
	CHECK_INT(
		ex_pull_http_error(401, "GatedRepo", "", r, "main", "revision 'main'", false, &err),
		-EACCES);
	CHECK_CONTAINS(err.msg, "'org/model' is gated (HTTP 401)");
	CHECK_CONTAINS(err.msg, "set HF_TOKEN");
	CHECK_INT(ex_pull_http_error(403, "GatedRepo", "", r, "main", "x", true, &err), -EACCES);
	CHECK_CONTAINS(err.msg, "token in HF_TOKEN has no access (HTTP 403)");
	CHECK_INT(ex_pull_http_error(401, "", "Invalid credentials in Authorization header", r,
				     "main", "x", true, &err),
		  -EACCES);
	CHECK_CONTAINS(err.msg, "HF_TOKEN is invalid or expired");
	/* The hub's 401 for a missing repository: it will not tell missing from private. */
	CHECK_INT(ex_pull_http_error(401, "RepoNotFound", "", r, "main", "x", false, &err),
		  -EACCES);
	CHECK_CONTAINS(err.msg, "'org/model' not found (HTTP 401)");
	CHECK_CONTAINS(err.msg, "if it is private or gated, set HF_TOKEN");
	CHECK_INT(ex_pull_http_error(404, "RepoNotFound", "", r, "main", "x", false, &err),
		  -ENOENT);
	CHECK_INT(ex_pull_http_error(404, "RevisionNotFound", "", r, "v9", "x", false, &err),
		  -ENOENT);
	CHECK_CONTAINS(err.msg, "revision 'v9' not found (HTTP 404)");
	CHECK_INT(ex_pull_http_error(404, "EntryNotFound", "", r, "main", "file 'config.json'",
				     false, &err),
		  -ENOENT);
	CHECK_CONTAINS(err.msg, "file 'config.json' not found");
	CHECK_INT(ex_pull_http_error(403, "", "Forbidden", r, "main", "file 'a'", false, &err),
		  -EACCES);
	CHECK_CONTAINS(err.msg, "access denied (HTTP 403): Forbidden");
	CHECK_INT(ex_pull_http_error(503, "", "", r, "main", "file 'a'", false, &err), -EIO);
	CHECK_CONTAINS(err.msg, "file 'a': HTTP 503");
}

static void test_default_dir(void)
{
	char dir[256];
	unsetenv("INTAKE_MODEL_DIR");
	CHECK_INT(ex_model_default_dir("zai-org/GLM-4.6V-Flash", dir, sizeof dir, NULL), 0);
	CHECK_STR(dir, "/var/lib/intake/models/zai-org--GLM-4.6V-Flash");
	CHECK_INT(ex_model_default_dir("zai-org/GLM-4.6V-Flash", dir, 20, NULL), -ENAMETOOLONG);
	setenv("INTAKE_MODEL_DIR", "/srv/model", 1);
	CHECK_INT(ex_model_default_dir("zai-org/GLM-4.6V-Flash", dir, sizeof dir, NULL), 0);
	CHECK_STR(dir, "/srv/model");
	unsetenv("INTAKE_MODEL_DIR");
}

static void write_file(const char *dir, const char *name, const void *data, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (f) {
		CHECK_INT(fwrite(data, 1, n, f), n);
		fclose(f);
	}
}

static void test_model_id(void)
{
	char id[256], fixture[512];
	vlm_err err = { 0 };
	snprintf(fixture, sizeof fixture, "%s/tests/fixtures/tiny-glm4v",
		 getenv("INTAKE_SOURCE_DIR") ? getenv("INTAKE_SOURCE_DIR") : "..");
	CHECK_INT(ex_model_id(fixture, id, sizeof id, &err), 0);
	CHECK_STR(id, "unpinned@sha256:"
		      "897cacea6ad610878c3e1a4315aba9e04de4eff0ba97beb7f0712a8a15608c89");

	/* One model.safetensors: the id hashes its 8-byte length and JSON header only. */
	char dir[] = "/tmp/test_model_id.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	static const char header[] =
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
	unsigned char file[8 + sizeof header - 1 + 4] = { sizeof header - 1 };
	memcpy(file + 8, header, sizeof header - 1);
	memcpy(file + 8 + sizeof header - 1, "\1\2\3\4", 4);
	write_file(dir, "model.safetensors", file, sizeof file);
	CHECK_INT(ex_model_id(dir, id, sizeof id, &err), 0);
	CHECK_STR(id, "unpinned@sha256:"
		      "b423f62ed78b46d96e95db20f2d5bd3a211eb3044612ec7f25193435a0a604e0");

	/* A manifest that is not complete makes the directory no pulled model at all. */
	static const char partial[] = "{\"format\": 1, \"repo\": \"a/b\"}";
	write_file(dir, EX_MODEL_MANIFEST, partial, sizeof partial - 1);
	CHECK_INT(ex_model_id(dir, id, sizeof id, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "incomplete manifest");
	static const char wrong_id[] =
		"{\"format\": 1, \"repo\": \"a/b\", \"revision\": \"main\", \"commit\": "
		"\"0123456789abcdef0123456789abcdef01234567\", \"model_id\": \"a/b@main\", "
		"\"files\": [{\"path\": \"model.safetensors\", \"size\": 66, \"sha256\": "
		"\"b423f62ed78b46d96e95db20f2d5bd3a211eb3044612ec7f25193435a0a604e0\"}]}";
	write_file(dir, EX_MODEL_MANIFEST, wrong_id, sizeof wrong_id - 1);
	CHECK_INT(ex_model_id(dir, id, sizeof id, &err), -EBADMSG);
	CHECK_CONTAINS(err.msg, "is not repo@commit");
	static const char good[] =
		"{\"format\": 1, \"repo\": \"a/b\", \"revision\": \"main\", \"commit\": "
		"\"0123456789abcdef0123456789abcdef01234567\", \"model_id\": "
		"\"a/b@0123456789abcdef0123456789abcdef01234567\", \"files\": [{\"path\": "
		"\"model.safetensors\", \"size\": 66, \"sha256\": "
		"\"b423f62ed78b46d96e95db20f2d5bd3a211eb3044612ec7f25193435a0a604e0\"}]}";
	write_file(dir, EX_MODEL_MANIFEST, good, sizeof good - 1);
	CHECK_INT(ex_model_id(dir, id, sizeof id, &err), 0);
	CHECK_STR(id, "a/b@0123456789abcdef0123456789abcdef01234567");

	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, EX_MODEL_MANIFEST);
	unlink(path);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_sink_disk_full();
	test_sink_hashes();
	test_http_errors();
	test_default_dir();
	test_model_id();
	return CHECK_DONE();
}
