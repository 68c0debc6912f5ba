/* Scratch files for the decoder tests: a growable byte buffer to build a file in memory (so a
 * test can truncate or damage it), and one mkdtemp directory per test program where the bytes are
 * written for ex_doc_load, removed with its files at the end. Test code only: failures of the
 * harness itself abort the test. */
#ifndef INTAKE_TESTFILES_H
#define INTAKE_TESTFILES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bytes {
	uint8_t *data;
	size_t size, cap;
};

static inline void bytes_append(struct bytes *b, const void *data, size_t n)
{
	if (b->size + n > b->cap) {
		b->cap = (b->size + n) * 2;
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			abort();
	}
	memcpy(b->data + b->size, data, n);
	b->size += n;
}

static inline void bytes_free(struct bytes *b)
{
	free(b->data);
	*b = (struct bytes){ 0 };
}

static char scratch_dir[] = "/tmp/intake-test-XXXXXX";

static void scratch_init(void)
{
	if (!mkdtemp(scratch_dir)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* The path of `name` inside the scratch directory, in a buffer of SCRATCH_PATH_SIZE bytes. */
#define SCRATCH_PATH_SIZE 512
static inline const char *scratch_path(char *buf, const char *name)
{
	int n = snprintf(buf, SCRATCH_PATH_SIZE, "%s/%s", scratch_dir, name);
	if (n < 0 || n >= SCRATCH_PATH_SIZE)
		abort();
	return buf;
}

/* Writes `n` bytes to scratch file `name`; returns its path in `buf`. */
static inline const char *scratch_write(char *buf, const char *name, const void *data, size_t n)
{
	FILE *fp = fopen(scratch_path(buf, name), "wb");
	if (!fp || fwrite(data, 1, n, fp) != n || fclose(fp) != 0) {
		perror(buf);
		exit(1);
	}
	return buf;
}

/* How many entries of the scratch directory end in `suffix` (leftover temporary files). */
static inline int scratch_count_suffix(const char *suffix)
{
	DIR *d = opendir(scratch_dir);
	int n = 0;
	size_t ls = strlen(suffix);
	for (struct dirent *e; d && (e = readdir(d));) {
		size_t l = strlen(e->d_name);
		n += l >= ls && strcmp(e->d_name + l - ls, suffix) == 0;
	}
	if (d)
		closedir(d);
	return n;
}

/* Removes every file in the scratch directory and the directory itself. */
static void scratch_done(void)
{
	DIR *d = opendir(scratch_dir);
	if (!d)
		return;
	char path[SCRATCH_PATH_SIZE];
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
			if (unlink(scratch_path(path, e->d_name)) != 0)
				rmdir(path);
	closedir(d);
	rmdir(scratch_dir);
}

#endif
