/* A main() for the fuzz targets when they are not built with libFuzzer: runs the target once on
 * every file named on the command line, or in every directory named (not recursively), so the
 * ordinary test suite replays the committed seed corpus and every regression input under
 * whatever sanitizers the build uses. A crash is the target aborting; then the file's name is
 * the last line printed before it. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		fprintf(stderr, "replay: '%s': %s\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(fp), &st) != 0) {
		fclose(fp);
		return -1;
	}
	size_t n = (size_t)st.st_size;
	/* A fresh buffer of exactly n bytes, so ASan sees a read one byte past the input. */
	uint8_t *data = malloc(n ? n : 1);
	if (!data || fread(data, 1, n, fp) != n) {
		fprintf(stderr, "replay: '%s': cannot read\n", path);
		free(data);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	fprintf(stderr, "replay: %s\n", path);
	LLVMFuzzerTestOneInput(data, n);
	free(data);
	return 0;
}

static int run_dir(const char *dir, int *n_inputs)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "replay: '%s': %s\n", dir, strerror(errno));
		return -1;
	}
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue; /* ".", ".." and a README-like .keep */
		char path[FUZZ_PATH_SIZE];
		int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (len < 0 || len >= (int)sizeof path)
			return -1;
		rc = run_file(path);
		(*n_inputs)++;
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	int n_inputs = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: '%s': %s\n", argv[i], strerror(errno));
			return 1;
		}
		int rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &n_inputs)
					     : (n_inputs++, run_file(argv[i]));
		if (rc != 0)
			return 1;
	}
	fprintf(stderr, "replay: %d inputs, no crash\n", n_inputs);
	return 0;
}
