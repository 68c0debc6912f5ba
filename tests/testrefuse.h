/* The decoder tests' common check for a refused input: the bytes are written to the scratch
 * directory and loaded; the load must fail with `code` and `reason`, name the file and say
 * `detail`, and return no document. Include after check.h, ex.h and testfiles.h. */
#ifndef INTAKE_TESTREFUSE_H
#define INTAKE_TESTREFUSE_H

static void expect_refused(const char *name, const struct bytes *file, int code, int reason,
			   const char *detail)
{
	char path[SCRATCH_PATH_SIZE];
	struct ex_doc *doc = NULL;
	vlm_err err = { 0 };
	int rc = ex_doc_load(scratch_write(path, name, file->data, file->size), NULL, &doc, &err);
	CHECK_INT(rc, code);
	CHECK_INT(err.code, code);
	CHECK_INT(err.reason, reason);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, detail);
	CHECK(doc == NULL);
	ex_doc_free(doc);
}

#endif
