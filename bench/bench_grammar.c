/* bench_grammar: the schema grammar's mask cost at the real vocabulary size.
 *
 * A synthetic vocabulary of 151552 tokens shaped like GLM-4's byte-level BPE (the 256 byte
 * symbols, English subwords with and without a leading space, CJK characters and pairs, digit
 * runs of 1-3, punctuation and white-space runs, JSON-ish pieces, special and stop tokens last)
 * and a schema (default schemas/invoice.yaml). A random walk (uniform among allowed tokens, so
 * strings run to the value limit) measures every mask call: the first call in a state walks the
 * trie (cold), the replay of the same tokens only applies cached sets (steady state). Costs are
 * compared with a decode step of the 9B model: 19.2 GB of BF16 weights read per token, at
 * 25 GB/s on a CPU (0.77 s) and 3 TB/s on an H100 (6.4 ms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "grammar.h"

#define N_VOCAB 151552
#define N_SPECIAL 20
#define MAX_STEPS 40000

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Token texts, appended into one arena. */
struct vocab_build {
	char *data;
	size_t len, cap;
	size_t off[N_VOCAB], n[N_VOCAB];
	int count;
};

static void add(struct vocab_build *b, const char *s, size_t n)
{
	if (b->count >= N_VOCAB - N_SPECIAL)
		return;
	if (b->len + n > b->cap) {
		b->cap = 2 * (b->len + n);
		if (!(b->data = realloc(b->data, b->cap)))
			exit(1);
	}
	memcpy(b->data + b->len, s, n);
	b->off[b->count] = b->len;
	b->n[b->count++] = n;
	b->len += n;
}

/* A code point as UTF-8 into out; its byte count. */
static size_t utf8(char *out, uint32_t cp)
{
	return (size_t)g_unichar_to_utf8((gunichar)cp, out);
}

static void make_vocab(struct vocab_build *b)
{
	char t[64];
	for (int i = 0; i < 256; i++) {
		t[0] = (char)i;
		add(b, t, 1);
	}
	static const char *const json[] = { "\",",    "\":\"",   "\"}",       "{\"",      "},{\"",
					    "\":",    "\"]",     "\"],\"",    "}]",       "]}",
					    "\",\"",  "\\\"",    "\\u00",     "\\n",      "\\\\",
					    "\":{\"", "\":[",    "\":[{\"",   "null",     "true",
					    "false",  "\":null", "\":true",   "\":false", ",\"",
					    "\n",     "\n\n",    "\":\"\",\"" };
	for (size_t i = 0; i < sizeof json / sizeof json[0]; i++)
		add(b, json[i], strlen(json[i]));
	for (int i = 0; i < 1000; i++) { /* digit runs: 0-9, 00-99, 000-999 */
		add(b, t, (size_t)snprintf(t, sizeof t, "%d", i));
		if (i < 100)
			add(b, t, (size_t)snprintf(t, sizeof t, "%02d", i));
		if (i < 10)
			add(b, t, (size_t)snprintf(t, sizeof t, "%03d", i));
	}
	for (int i = 1; i <= 16; i++) { /* white-space runs */
		memset(t, ' ', (size_t)i);
		add(b, t, (size_t)i);
	}
	static const char punct[] = ".,;:!?-_=*#/\\()[]{}<>\"'%&+|~`@$^";
	for (int i = 0; i < 6000; i++) {
		size_t n = 1 + rng() % 4;
		for (size_t k = 0; k < n; k++)
			t[k] = punct[rng() % (sizeof punct - 1)];
		add(b, t, n);
	}
	for (uint32_t cp = 0x4e00; cp < 0x9fa6; cp++) /* CJK characters */
		add(b, t, utf8(t, cp));
	for (int i = 0; i < 24000; i++) { /* CJK pairs */
		size_t n = utf8(t, 0x4e00 + (uint32_t)(rng() % 3000));
		add(b, t, n + utf8(t + n, 0x4e00 + (uint32_t)(rng() % 3000)));
	}
	for (uint32_t cp = 0x400; cp < 0x530; cp++) /* Cyrillic, Armenian */
		add(b, t, utf8(t, cp));
	static const char cons[] = "bcdfghjklmnprstvwz", vow[] = "aeiouy";
	while (b->count < N_VOCAB - N_SPECIAL) { /* English-like subwords */
		size_t n = 0;
		if (rng() % 2)
			t[n++] = ' ';
		size_t syl = 1 + rng() % 3;
		for (size_t k = 0; k < syl; k++) {
			t[n++] = cons[rng() % (sizeof cons - 1)];
			t[n++] = vow[rng() % (sizeof vow - 1)];
			if (rng() % 2)
				t[n++] = cons[rng() % (sizeof cons - 1)];
		}
		if (rng() % 8 == 0) /* capitalised */
			t[t[0] == ' '] = (char)(t[t[0] == ' '] - 32);
		add(b, t, n);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *what, double *t, size_t n)
{
	if (!n) {
		printf("%-34s none\n", what);
		return;
	}
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += t[i];
	qsort(t, n, sizeof *t, cmp_double);
	double mean = sum / (double)n, p99 = t[(size_t)((double)(n - 1) * 0.99)], max = t[n - 1];
	printf("%-34s n %6zu  mean %9.1f us  p99 %9.1f us  max %9.1f us\n", what, n, mean * 1e6,
	       p99 * 1e6, max * 1e6);
	printf("%-34s mean %.4f%% / p99 %.4f%% of a CPU step (0.77 s), mean %.2f%% / p99 %.2f%% "
	       "of an H100 step (6.4 ms)\n",
	       "", mean / 0.77 * 100, p99 / 0.77 * 100, mean / 6.4e-3 * 100, p99 / 6.4e-3 * 100);
}

int main(int argc, char **argv)
{
	const char *schema_path = argc > 1 ? argv[1] : "schemas/invoice.yaml";
	static struct vocab_build b;
	make_vocab(&b);
	const char **bytes = calloc(N_VOCAB, sizeof *bytes);
	uint8_t *flags = calloc(N_VOCAB, 1);
	static char special[N_SPECIAL][32];
	for (int i = 0; i < b.count; i++)
		bytes[i] = b.data + b.off[i];
	for (int i = 0; i < N_SPECIAL; i++) {
		int id = N_VOCAB - N_SPECIAL + i;
		b.n[id] = (size_t)snprintf(special[i], sizeof special[i], "<|special_%d|>", i);
		bytes[id] = special[i];
		flags[id] = (uint8_t)(EX_TOKEN_SPECIAL | (i < 3 ? EX_TOKEN_STOP : 0));
	}

	struct ex_schema *schema = NULL;
	struct ex_vocab *v = NULL;
	struct ex_grammar *g = NULL;
	struct ex_grammar_state *s = NULL;
	vlm_err err = { 0 };
	double t0 = now();
	if (ex_schema_load(schema_path, &schema, &err) < 0 ||
	    ex_vocab_new(N_VOCAB, bytes, b.n, flags, &v, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	double t1 = now();
	if (ex_grammar_compile(schema, v, &g, &err) < 0 || ex_grammar_state_new(g, &s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	double t2 = now();
	printf("schema %s, vocabulary %d tokens (%zu bytes)\n", schema_path, N_VOCAB, b.len);
	printf("vocabulary copy %.1f ms, compile (trie + automaton) %.1f ms\n", (t1 - t0) * 1e3,
	       (t2 - t1) * 1e3);

	float *logits = malloc(N_VOCAB * sizeof *logits);
	int32_t *gen = malloc(MAX_STEPS * sizeof *gen);
	double *cold = malloc(MAX_STEPS * sizeof *cold), *warm = malloc(MAX_STEPS * sizeof *warm),
	       *first = malloc(MAX_STEPS * sizeof *first);
	size_t n_cold = 0, n_first = 0, n_warm = 0, n_answers = 0, n_bytes = 0;
	struct ex_grammar_stats st0, st1;
	/* Answers until the walk is long: each a walk (cold where a call walked new sets, else
	 * cached), then its replay (the same tokens, every set cached). */
	while (n_warm < MAX_STEPS / 2) {
		size_t n = 0;
		ex_grammar_state_reset(s);
		for (;;) {
			for (int i = 0; i < N_VOCAB; i++)
				logits[i] = 0;
			ex_grammar_stats(g, &st0);
			double a = now();
			int rc = ex_grammar_mask(s, gen, n, logits, N_VOCAB);
			double d = now() - a;
			if (rc < 0 || n + n_warm + 1 >= MAX_STEPS) {
				ex_grammar_finish(s, gen, n, &err);
				fprintf(stderr, "walk stopped at %zu: %s\n", n, err.msg);
				return 1;
			}
			ex_grammar_stats(g, &st1);
			if (st1.n_sets > st0.n_sets)
				cold[n_cold++] = d;
			else
				first[n_first++] = d;
			size_t n_ok = 0;
			for (int i = 0; i < N_VOCAB; i++)
				n_ok += logits[i] == 0;
			size_t pick = rng() % n_ok;
			int t = 0;
			while (logits[t] != 0 || pick-- > 0)
				t++;
			if (flags[t] & EX_TOKEN_STOP)
				break;
			gen[n++] = t;
		}
		if (ex_grammar_finish(s, gen, n, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		n_bytes += strlen(ex_grammar_json(s));
		ex_grammar_state_reset(s);
		for (size_t k = 0; k <= n; k++) {
			for (int i = 0; i < N_VOCAB; i++)
				logits[i] = 0;
			double a = now();
			ex_grammar_mask(s, gen, k, logits, N_VOCAB);
			warm[n_warm++] = now() - a;
		}
		n_answers++;
	}
	ex_grammar_stats(g, &st1);
	printf("walk: %zu answers, %zu tokens, %zu bytes of JSON; %zu token sets cached, %zu "
	       "shared bitsets\n",
	       n_answers, n_warm, n_bytes, st1.n_sets, st1.n_shared);
	report("cold (first mask in a state)", cold, n_cold);
	report("walk, state already cached", first, n_first);
	report("steady state (replay)", warm, n_warm);

	free(cold);
	free(warm);
	free(first);
	free(gen);
	free(logits);
	ex_grammar_state_free(s);
	ex_grammar_free(g);
	ex_vocab_free(v);
	ex_schema_free(schema);
	free(bytes);
	free(flags);
	free(b.data);
	return 0;
}
