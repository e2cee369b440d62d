/* fuzz_config.c - fuzz target for the TOML/YAML readers and the config loader.
 *
 * LLVMFuzzerTestOneInput feeds one input to one of four entry points chosen by its first byte
 * (TOML tree, YAML tree, config from TOML, config from YAML). Built with -DTPD_LIBFUZZER and
 * clang's -fsanitize=fuzzer it is a libFuzzer target:
 *   clang -g -fsanitize=fuzzer,address,undefined -DTPD_LIBFUZZER -D_GNU_SOURCE -Iinclude \
 *     tests/config/fuzz_config.c (every .c of src/config and src/base) -lyaml -ljson-c -lm
 *   ./a.out tests/config/broken tests/config/good
 * Without it, main() is a small deterministic mutation driver used as a ctest smoke run:
 *   tpd_fuzz_config [-n iterations] [-s seed] <file or directory>...
 * It replays every corpus file through all four entry points, then mutates random corpus entries
 * (byte flips, token insertion, deletion, truncation, splicing) for n iterations. Each input is
 * copied into an exact-size heap buffer so ASan reports any read past its length. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tpd/config.h"
#include "tpd/toml.h"
#include "tpd/yaml.h"
#include "tpd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore_warning(void *ud, const char *msg)
{
	size_t *n = ud;

	*n += strlen(msg) > 0;
}

static void run_one(int mode, const uint8_t *data, size_t size)
{
	char err[TPD_ERRLEN];
	char *copy = malloc(size ? size : 1);
	tpd_node *t = NULL;
	tpd_config *cfg = NULL;
	size_t nwarn = 0;

	if (!copy)
		abort();
	memcpy(copy, data, size);
	switch (mode & 3) {
	case 0:
		if (tpd_toml_parse("fuzz", copy, size, &t, err) == TPD_ERR_OK)
			tpd_node_free(t);
		else if (strncmp(err, "fuzz:", 5))
			abort(); /* every error must carry the position prefix */
		break;
	case 1:
		if (tpd_yaml_parse("fuzz", copy, size, &t, err) == TPD_ERR_OK)
			tpd_node_free(t);
		else if (strncmp(err, "fuzz:", 5))
			abort();
		break;
	default:
		if (tpd_config_load_mem("fuzz", copy, size, mode & 1, &cfg, ignore_warning, &nwarn, err) ==
		    TPD_ERR_OK)
			tpd_config_free(cfg);
		else if (strncmp(err, "fuzz:", 5))
			abort();
		break;
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	run_one(data[0], data + 1, size - 1);
	return 0;
}

#ifndef TPD_LIBFUZZER

typedef struct {
	char **data;
	size_t *len;
	size_t n, cap;
} corpus;

static void corpus_add_file(corpus *c, const char *path)
{
	char *text = NULL, err[TPD_ERRLEN];
	size_t len = 0;

	if (tpd_read_file(path, 1 << 20, &text, &len, err)) {
		fprintf(stderr, "skip %s\n", err);
		return;
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->data = xreallocarray(c->data, c->cap, sizeof(*c->data));
		c->len = xreallocarray(c->len, c->cap, sizeof(*c->len));
	}
	c->data[c->n] = text;
	c->len[c->n] = len;
	c->n++;
}

static void corpus_add(corpus *c, const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;

	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		corpus_add_file(c, path);
		return;
	}
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char sub[4096];

		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		corpus_add_file(c, sub);
	}
	closedir(d);
}

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static const char *const tokens[] = {
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "=",
    ".",
    ",",
    "#",
    "\n",
    "\r\n",
    "\\",
    "\\u00e9",
    "\\U0001F600",
    "true",
    "1_000",
    "0x1f",
    "inf",
    "1979-05-27",
    ": ",
    "- ",
    "&a ",
    "*a",
    "---\n",
    "!!str ",
    "? ",
    "|\n  ",
    "\t",
    "\xff",
    "\xc3\xa9",
    "[pagerduty]\n",
    "api_key = \"/\"\n",
    "[teleport]\nidentity = \"x\"\n",
    "[leader_election]\n",
    "RequestAnnotations",
    "\0",
};

int main(int argc, char **argv)
{
	corpus c = {0};
	long iterations = 10000;
	uint64_t seed = 0x2545f4914f6cdd1dull;
	size_t cap = 1 << 16;
	uint8_t *buf = xmalloc(cap);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0) | 1;
		else
			corpus_add(&c, argv[i]);
	}
	if (c.n == 0) {
		fprintf(stderr, "usage: %s [-n iterations] [-s seed] <file or directory>...\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < c.n; i++)
		for (int mode = 0; mode < 4; mode++)
			run_one(mode, (const uint8_t *)c.data[i], c.len[i]);
	for (long it = 0; it < iterations; it++) {
		size_t k = next(&seed) % c.n, len = c.len[k] < cap ? c.len[k] : cap;
		int rounds = 1 + (int)(next(&seed) % 4);

		memcpy(buf, c.data[k], len);
		for (int r = 0; r < rounds; r++) {
			uint64_t op = next(&seed) % 5, pos = len ? next(&seed) % (len + 1) : 0;

			if (op == 0 && len) { /* flip a byte */
				buf[pos % len] = (uint8_t)next(&seed);
			} else if (op == 1) { /* insert a token */
				const char *tok = tokens[next(&seed) % (sizeof(tokens) / sizeof(tokens[0]))];
				size_t tl = tok[0] ? strlen(tok) : 1;

				if (len + tl <= cap) {
					memmove(buf + pos + tl, buf + pos, len - pos);
					memcpy(buf + pos, tok, tl);
					len += tl;
				}
			} else if (op == 2 && len) { /* delete a run */
				size_t n = 1 + next(&seed) % 8;

				if (pos + n > len)
					n = len - pos;
				memmove(buf + pos, buf + pos + n, len - pos - n);
				len -= n;
			} else if (op == 3) { /* truncate */
				len = pos;
			} else { /* splice the tail of another entry */
				size_t o = next(&seed) % c.n, from = c.len[o] ? next(&seed) % c.len[o] : 0;
				size_t n = c.len[o] - from;

				if (pos + n > cap)
					n = cap - pos;
				memcpy(buf + pos, c.data[o] + from, n);
				len = pos + n;
			}
		}
		run_one((int)(next(&seed) & 3), buf, len);
	}
	printf("fuzz smoke: %zu corpus files, %ld mutated inputs, no crash\n", c.n, iterations);
	for (size_t i = 0; i < c.n; i++)
		free(c.data[i]);
	free(c.data);
	free(c.len);
	free(buf);
	return 0;
}

#endif
