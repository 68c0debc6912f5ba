/* What the fuzz targets share: the libFuzzer entry points, a check that aborts (so libFuzzer and
 * the replay runner both report the input), a way to hand bytes to an API that only takes a path,
 * and the source tree where the fixtures and shipped schemas are.
 *
 * Each fuzz_<target>.c defines LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize when it loads
 * something once). Built with clang's -fsanitize=fuzzer it is a libFuzzer binary; built with
 * replay.c it is a plain program that runs the committed corpus and regressions (any compiler). */
#ifndef INTAKE_FUZZ_H
#define INTAKE_FUZZ_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the code under test broke: report it and abort, which both runners treat as a
 * crash with this input. */
#define FUZZ_CHECK(cond)                                                                      \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, \
				#cond);                                                       \
			abort();                                                              \
		}                                                                             \
	} while (0)

/* A failure of the harness itself (not of the code under test). */
#define FUZZ_DIE(what)        \
	do {                  \
		perror(what); \
		exit(2);      \
	} while (0)

/* The source tree: $INTAKE_SOURCE_DIR when set (CTest sets it), else where CMake saw it. */
static inline const char *fuzz_source_dir(void)
{
	const char *dir = getenv("INTAKE_SOURCE_DIR");
	return dir && *dir ? dir : INTAKE_FUZZ_SOURCE_DIR;
}

/* DIR/NAME in `buf` (size FUZZ_PATH_SIZE). */
#define FUZZ_PATH_SIZE 4096
static inline const char *fuzz_path(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, FUZZ_PATH_SIZE, "%s/%s", dir, name);
	if (n < 0 || n >= FUZZ_PATH_SIZE)
		FUZZ_DIE(name);
	return buf;
}

/* `rel` under the source tree, in `buf` (size FUZZ_PATH_SIZE). */
static inline const char *fuzz_source_path(char *buf, const char *rel)
{
	return fuzz_path(buf, fuzz_source_dir(), rel);
}

/* The input as a file for loaders that take a path: one memfd per process, rewritten for each
 * input, named through /proc/self/fd (no disk, nothing to clean up). Returns its path. */
static inline const char *fuzz_memfile(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz-input", MFD_CLOEXEC);
		if (fd < 0)
			FUZZ_DIE("memfd_create");
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		FUZZ_DIE("memfd write");
	return path;
}

#endif
