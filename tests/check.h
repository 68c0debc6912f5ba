/* A tiny assertion header for intake's tests: each failed check prints file, line, the expression
 * and both values, and the test exits 1 at the end (so one run reports every failure). */
#ifndef INTAKE_CHECK_H
#define INTAKE_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
			check_failures++;                                                        \
		}                                                                                \
	} while (0)

#define CHECK_INT(a, b)                                                                     \
	do {                                                                                \
		long long va_ = (long long)(a), vb_ = (long long)(b);                       \
		if (va_ != vb_) {                                                           \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, \
				__LINE__, #a, #b, va_, vb_);                                \
			check_failures++;                                                   \
		}                                                                           \
	} while (0)

#define CHECK_STR(a, b)                                                                         \
	do {                                                                                    \
		const char *sa_ = (a), *sb_ = (b);                                              \
		if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                    \
			fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
				__LINE__, #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");  \
			check_failures++;                                                       \
		}                                                                               \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                          \
	do {                                                                                 \
		const char *h_ = (hay), *n_ = (needle);                                      \
		if (!h_ || !strstr(h_, n_)) {                                                \
			fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, \
				__LINE__, h_ ? h_ : "(null)", n_);                           \
			check_failures++;                                                    \
		}                                                                            \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
	do {                                                                                       \
		double da_ = (double)(a), db_ = (double)(b);                                       \
		if (!(fabs(da_ - db_) <= (tol))) {                                                 \
			fprintf(stderr, "%s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, \
				__LINE__, #a, #b, (double)(tol), da_, db_);                        \
			check_failures++;                                                          \
		}                                                                                  \
	} while (0)

/* Ends main(): 0 when every check passed. */
#define CHECK_DONE() \
	(check_failures ? (fprintf(stderr, "%d check(s) failed\n", check_failures), 1) : 0)

/* Exit code CTest reads as "skipped" (SKIP_RETURN_CODE). */
#define CHECK_SKIP 77

#endif
