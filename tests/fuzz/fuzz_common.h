/* fuzz_common.h - shared helpers for the libFuzzer targets in tests/fuzz.
 *
 * The targets check the promises the headers make about hostile input, not just "no crash":
 * error texts are NUL-terminated within TPD_ERRLEN and one line, a parsed tree can be walked
 * completely, a loaded config's warnings never contain its API key. A broken promise calls
 * fuzz_fail(), which aborts so that libFuzzer records the input as a crash. */
#ifndef TPD_FUZZ_COMMON_H
#define TPD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reports a broken promise and aborts (libFuzzer saves the input as crash-<sha1>). */
#define fuzz_fail(...)                                                                                       \
	do {                                                                                                 \
		fprintf(stderr, "FUZZ INVARIANT BROKEN at %s:%d: ", __FILE__, __LINE__);                     \
		fprintf(stderr, __VA_ARGS__);                                                                \
		fputc('\n', stderr);                                                                         \
		abort();                                                                                     \
	} while (0)

/* A copy of the input with a terminating NUL (the parsers under test take (text, len) but the
 * string entry points need C strings). Caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* FUZZ_AVOID_KNOWN=1 in the environment steers around the known, reported and not yet fixed bugs
 * listed in tests/fuzz/README.md ("Known open crashes"), so that the ctest can keep fuzzing the
 * rest; run.sh without it reproduces them. */
static inline int fuzz_avoid_known(void)
{
	static int v = -1;
	if (v < 0)
		v = getenv("FUZZ_AVOID_KNOWN") && strcmp(getenv("FUZZ_AVOID_KNOWN"), "0") != 0;
	return v;
}

/* Prepares an error buffer before a call the way a caller's uninitialised `char err[TPD_ERRLEN]`
 * looks: no NUL anywhere, so code that reads err on a success path (where nobody wrote it) is
 * caught by ASan (found scrub() in src/pagerduty/pagerduty.c doing so; regressions/fuzz_pd_client). */
static inline void fuzz_err_init(char *err)
{
	memset(err, 0x55, TPD_ERRLEN);
}

/* An error text after a failed call: non-empty, terminated within TPD_ERRLEN, a single line. */
static inline void fuzz_check_err(const char *what, const char *err)
{
	const char *nul = memchr(err, '\0', TPD_ERRLEN);
	if (!nul)
		fuzz_fail("%s: error text not NUL-terminated within TPD_ERRLEN", what);
	if (err[0] == '\0')
		fuzz_fail("%s: failed without an error text", what);
	if (strchr(err, '\n'))
		fuzz_fail("%s: error text spans several lines: %s", what, err);
}

#endif
