/* The schema grammar: a schema compiled to a byte automaton, and the automaton applied to tokens.
 *
 * A schema is not recursive, so the answer's language is regular: compile builds one
 * deterministic automaton over bytes (a state per byte of every key literal, a copy of the string
 * and number automata per field, arrays as loops). A finished number has no closing byte, so its
 * states fall back to the continuation's transitions on any other byte ("exit_to").
 *
 * Token sets: the tokens allowed in a state are found by walking a trie of the vocabulary's byte
 * strings against the automaton (a failing prefix prunes its whole subtree), once per state, and
 * cached (a bitset or a short list, under a lock, lazily). Inside a string or a number the state
 * is (template position, bytes left): the tokens that stay inside the value are the same in
 * every field, so they are one shared bitset per position ("class"); only the few tokens that
 * close the value and go on (`",` `"}` `1,`) depend on the field and are kept per state. A step
 * then costs advancing by the chosen token's bytes plus applying a cached set.
 *
 * Pattern-constrained strings (constrain_pattern) depend on the value so far, so inside one the
 * set is walked at every step, pruned by PCRE2 partial matching at character ends.
 *
 * Does not: tokenize, sample, or check values (validate.c does, after decoding). */
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

#define NONE UINT32_MAX
#define TOKEN_ABSENT 0x80u /* ex_vocab flag: the id spells nothing */

/* ---- Vocabulary ------------------------------------------------------------------------------ */

struct ex_vocab {
	int32_t n_tokens;
	size_t *off, *len; /* token i: data[off[i] .. off[i] + len[i]) */
	uint8_t *flags;    /* EX_TOKEN_* and TOKEN_ABSENT */
	char *data;
};

void ex_vocab_free(struct ex_vocab *v)
{
	if (!v)
		return;
	free(v->off);
	free(v->len);
	free(v->flags);
	free(v->data);
	free(v);
}

int32_t ex_vocab_n_tokens(const struct ex_vocab *vocab)
{
	return vocab->n_tokens;
}

int ex_vocab_new(int32_t n_tokens, const char *const *bytes, const size_t *lens,
		 const uint8_t *flags, struct ex_vocab **out, vlm_err *err)
{
	*out = NULL;
	if (n_tokens < 1)
		return vlm_err_set(err, -EINVAL, "grammar: vocabulary: %d tokens", (int)n_tokens);
	size_t total = 1;
	for (int32_t i = 0; i < n_tokens; i++)
		total += bytes[i] ? lens[i] : 0;
	struct ex_vocab *v = calloc(1, sizeof *v);
	if (!v || !(v->off = calloc((size_t)n_tokens, sizeof *v->off)) ||
	    !(v->len = calloc((size_t)n_tokens, sizeof *v->len)) ||
	    !(v->flags = calloc((size_t)n_tokens, 1)) || !(v->data = malloc(total))) {
		ex_vocab_free(v);
		return vlm_err_set(err, -ENOMEM, "grammar: vocabulary: out of memory");
	}
	v->n_tokens = n_tokens;
	size_t at = 0;
	for (int32_t i = 0; i < n_tokens; i++) {
		v->flags[i] = flags ? flags[i] & (EX_TOKEN_SPECIAL | EX_TOKEN_STOP) : 0;
		if (!bytes[i]) {
			v->flags[i] |= TOKEN_ABSENT;
			continue;
		}
		memcpy(v->data + at, bytes[i], lens[i]);
		v->off[i] = at;
		v->len[i] = lens[i];
		at += lens[i];
	}
	*out = v;
	return 0;
}

int ex_vocab_from_model(const struct vlm_model *model, struct ex_vocab **out, vlm_err *err)
{
	int32_t n = vlm_model_n_tokens(model);
	const char **bytes = calloc((size_t)n + 1, sizeof *bytes);
	size_t *lens = calloc((size_t)n + 1, sizeof *lens);
	uint8_t *flags = calloc((size_t)n + 1, 1);
	int rc;
	if (!bytes || !lens || !flags) {
		rc = vlm_err_set(err, -ENOMEM, "grammar: vocabulary: out of memory");
	} else {
		for (int32_t i = 0; i < n; i++) {
			bytes[i] = vlm_model_token_bytes(model, i, &lens[i]);
			flags[i] =
				(uint8_t)((vlm_model_token_is_special(model, i) ? EX_TOKEN_SPECIAL
										: 0) |
					  (vlm_model_token_is_stop(model, i) ? EX_TOKEN_STOP : 0));
		}
		rc = ex_vocab_new(n, bytes, lens, flags, out, err);
	}
	free(bytes);
	free(lens);
	free(flags);
	return rc;
}

/* ---- The automaton --------------------------------------------------------------------------- */

/* Which shared automaton a state belongs to. Pattern strings have their own (never shared). */
enum tmpl { TMPL_NONE, TMPL_STRING, TMPL_INTEGER, TMPL_NUMBER, TMPL_PATTERN };

/* Positions in a string's body: a character may start (SP_CHAR), or the rest of an escape or of a
 * UTF-8 sequence is due. \u escapes track a leading D (surrogates are refused) and leading zeros
 * (U+0000 is refused). Multi-byte lead bytes with restricted second bytes (E0, ED, F0, F4) have
 * their own positions, so only shortest-form, non-surrogate, <= U+10FFFF UTF-8 is accepted. */
enum str_pos {
	SP_CHAR,
	SP_ESC,
	SP_U1,
	SP_U2,
	SP_U2_D,
	SP_U2_0,
	SP_U3,
	SP_U3_00,
	SP_U4,
	SP_U4_000,
	SP_CONT1,
	SP_CONT2,
	SP_CONT3,
	SP_E0,
	SP_ED,
	SP_F0,
	SP_F4,
	SP_COUNT
};

/* Positions in a number after its first character. jansson refuses integers beyond int64 and
 * reals that overflow a double, so the integer part has at most INT_DIGITS digits (any longer
 * integer would need 19 digits checked against 9223372036854775807) and the exponent two. */
#define INT_DIGITS 18
enum num_pos {
	NP_MINUS,
	NP_ZERO,
	NP_INT, /* NP_INT + k: k + 1 integer digits */
	NP_DOT = NP_INT + INT_DIGITS,
	NP_FRAC,
	NP_E,
	NP_ESIGN,
	NP_EXP1,
	NP_EXP2,
	NP_COUNT
};
_Static_assert(NP_COUNT <= 32 && SP_COUNT <= 32, "a template's positions fit its class range");

enum {
	TR_COST = 1u << 0,  /* the byte counts against the value's max_value_bytes */
	TR_RESET = 1u << 1, /* the byte starts a value: its budget is max_value_bytes again */
};

struct trans {
	uint32_t from, to;
	uint8_t lo, hi;
	uint8_t need;  /* bytes of budget this byte needs (it and what must follow it) */
	uint8_t flags; /* TR_* */
};

struct gstate {
	uint32_t exit_to; /* finished number: the continuation for any byte it has no edge for */
	int32_t span;     /* the value whose text this state is inside, or -1 */
	int32_t cls;      /* shared class (template position) or -1 */
	int32_t arr_open; /* entering resets this array value's element index, or -1 */
	int32_t arr_elem; /* entering starts an element of this array value, or -1 */
	uint8_t tmpl;     /* enum tmpl */
	uint8_t pos;      /* enum str_pos / num_pos inside a template */
	bool final;       /* after the answer's closing brace */
};

/* A value of the schema: one field, at one place (array elements share it). */
struct gvalue {
	const struct ex_field *field;
	int32_t array; /* the innermost array value this one is inside, or -1 */
	/* constrain_pattern: the pattern for prefixes, "(?:P)\z" without PCRE2_ENDANCHORED, which
	 * PCRE2 refuses with partial matching; owned. */
	pcre2_code *prefix_re;
};

/* The vocabulary as a trie in preorder: node i's subtree is [i, end). Tokens spelling the same
 * bytes chain through same_next. */
struct tnode {
	uint32_t end;
	int32_t token;
	uint16_t depth;
	uint8_t byte;
};

/* A cached token set: bits (shared between states of a class, or owned) plus a list. */
struct centry {
	uint64_t key;
	const uint64_t *bits;
	int32_t *list;
	uint32_t n_list;
	uint32_t n_allowed;
	bool own_bits;
};

struct ex_grammar {
	const struct ex_schema *schema;
	const struct ex_vocab *vocab;
	unsigned max_value; /* max_value_bytes */
	unsigned unbounded; /* a value budget from here on cannot matter inside one token */
	size_t n_words;     /* bitset words over the vocabulary */

	struct gstate *states;
	size_t n_states;
	struct trans *trans;
	size_t n_trans;
	uint32_t *next; /* [n_states * 256]: transition index + 1, 0 for none */
	uint32_t start;
	struct gvalue *values;
	size_t n_values;

	struct tnode *nodes;
	size_t n_nodes;
	int32_t *same_next;
	unsigned max_token; /* longest token in the trie */
	int32_t *stops;
	uint32_t n_stops;

	pthread_mutex_t lock; /* guards the cache below */
	struct centry **slots;
	size_t cap, n_cached;
};

/* ---- Building ---------------------------------------------------------------------------------- */

struct builder {
	struct ex_grammar *g;
	size_t cap_states, cap_trans, cap_values;
	int rc;
};

static uint32_t new_state(struct builder *b, enum tmpl tmpl, int pos, int32_t span)
{
	struct ex_grammar *g = b->g;
	if (b->rc)
		return 0;
	if (g->n_states == b->cap_states) {
		size_t cap = b->cap_states ? 2 * b->cap_states : 256;
		struct gstate *s = realloc(g->states, cap * sizeof *s);
		if (!s) {
			b->rc = -ENOMEM;
			return 0;
		}
		g->states = s;
		b->cap_states = cap;
	}
	int32_t cls = tmpl == TMPL_STRING || tmpl == TMPL_INTEGER || tmpl == TMPL_NUMBER
			      ? (int32_t)tmpl * 32 + pos
			      : -1;
	g->states[g->n_states] = (struct gstate){ .exit_to = NONE,
						  .span = span,
						  .cls = cls,
						  .arr_open = -1,
						  .arr_elem = -1,
						  .tmpl = (uint8_t)tmpl,
						  .pos = (uint8_t)pos };
	return (uint32_t)g->n_states++;
}

static void edge(struct builder *b, uint32_t from, int lo, int hi, uint32_t to, int need,
		 unsigned flags)
{
	struct ex_grammar *g = b->g;
	if (b->rc)
		return;
	if (g->n_trans == b->cap_trans) {
		size_t cap = b->cap_trans ? 2 * b->cap_trans : 1024;
		struct trans *t = realloc(g->trans, cap * sizeof *t);
		if (!t) {
			b->rc = -ENOMEM;
			return;
		}
		g->trans = t;
		b->cap_trans = cap;
	}
	g->trans[g->n_trans++] = (struct trans){ .from = from,
						 .to = to,
						 .lo = (uint8_t)lo,
						 .hi = (uint8_t)hi,
						 .need = (uint8_t)need,
						 .flags = (uint8_t)flags };
}

/* Edges for byte ranges given as lo,hi pairs: "09af" is 0-9 and a-f. */
static void edges(struct builder *b, uint32_t from, const char *pairs, uint32_t to, int need)
{
	for (const char *p = pairs; p[0] && p[1]; p += 2)
		edge(b, from, (unsigned char)p[0], (unsigned char)p[1], to, need, TR_COST);
}

/* The state an existing edge of `from` leads to on byte c, or NONE. */
static uint32_t find_edge(const struct builder *b, uint32_t from, uint8_t c)
{
	const struct ex_grammar *g = b->g;
	for (size_t i = 0; i < g->n_trans; i++)
		if (g->trans[i].from == from && g->trans[i].lo <= c && c <= g->trans[i].hi)
			return g->trans[i].to;
	return NONE;
}

/* The bytes s[0..n) from `from` to `to` (NONE: a new state, returned); inner states lie inside
 * value `span`. `merge` follows existing edges, so enum values share their common prefix. */
static uint32_t literal(struct builder *b, uint32_t from, const char *s, size_t n, int32_t span,
			uint32_t to, bool merge)
{
	uint32_t cur = from;
	for (size_t i = 0; i < n && !b->rc; i++) {
		uint8_t c = (uint8_t)s[i];
		bool last = i + 1 == n;
		uint32_t next = merge ? find_edge(b, cur, c) : NONE;
		if (next == NONE) {
			next = last && to != NONE ? to
						  : new_state(b, TMPL_NONE, 0, last ? -1 : span);
			edge(b, cur, c, c, next, 0, 0);
		}
		cur = next;
	}
	return cur;
}

/* `prefix` + s as a JSON string + `suffix`, the one spelling the grammar forces for keys and enum
 * values. NULL when out of memory. */
static char *json_quote(const char *prefix, const char *s, const char *suffix)
{
	size_t n = strlen(prefix) + 6 * strlen(s) + strlen(suffix) + 3, at = 0;
	char *q = malloc(n);
	if (!q)
		return NULL;
	at += (size_t)snprintf(q + at, n - at, "%s\"", prefix);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *esc = *p == '"'    ? "\\\""
				  : *p == '\\' ? "\\\\"
				  : *p == '\n' ? "\\n"
				  : *p == '\r' ? "\\r"
				  : *p == '\t' ? "\\t"
					       : NULL;
		if (esc)
			at += (size_t)snprintf(q + at, n - at, "%s", esc);
		else if (*p < 0x20)
			at += (size_t)snprintf(q + at, n - at, "\\u%04x", *p);
		else
			q[at++] = (char)*p;
	}
	snprintf(q + at, n - at, "\"%s", suffix);
	return q;
}

static int32_t new_value(struct builder *b, const struct ex_field *f, int32_t array)
{
	struct ex_grammar *g = b->g;
	if (b->rc)
		return -1;
	if (g->n_values == b->cap_values) {
		size_t cap = b->cap_values ? 2 * b->cap_values : 64;
		struct gvalue *v = realloc(g->values, cap * sizeof *v);
		if (!v) {
			b->rc = -ENOMEM;
			return -1;
		}
		g->values = v;
		b->cap_values = cap;
	}
	g->values[g->n_values] = (struct gvalue){ f, array, NULL };
	return (int32_t)g->n_values++;
}

/* A JSON string from `from` to `to`: the opening quote starts the value's budget. */
static void string_value(struct builder *b, uint32_t from, int32_t vid, uint32_t to, bool pattern)
{
	uint32_t p[SP_COUNT];
	for (int i = 0; i < SP_COUNT; i++)
		p[i] = new_state(b, pattern ? TMPL_PATTERN : TMPL_STRING, i, vid);
	if (b->rc)
		return;
	edge(b, from, '"', '"', p[SP_CHAR], 0, TR_RESET);
	edge(b, p[SP_CHAR], '"', '"', to, 0, 0);
	edges(b, p[SP_CHAR], " !#[]\x7f", p[SP_CHAR], 1);
	edges(b, p[SP_CHAR], "\\\\", p[SP_ESC], 2);
	edges(b, p[SP_CHAR], "\xc2\xdf", p[SP_CONT1], 2);
	edges(b, p[SP_CHAR], "\xe0\xe0", p[SP_E0], 3);
	edges(b, p[SP_CHAR], "\xe1\xec\xee\xef", p[SP_CONT2], 3);
	edges(b, p[SP_CHAR], "\xed\xed", p[SP_ED], 3);
	edges(b, p[SP_CHAR], "\xf0\xf0", p[SP_F0], 4);
	edges(b, p[SP_CHAR], "\xf1\xf3", p[SP_CONT3], 4);
	edges(b, p[SP_CHAR], "\xf4\xf4", p[SP_F4], 4);
	edges(b, p[SP_CONT3], "\x80\xbf", p[SP_CONT2], 1);
	edges(b, p[SP_CONT2], "\x80\xbf", p[SP_CONT1], 1);
	edges(b, p[SP_CONT1], "\x80\xbf", p[SP_CHAR], 1);
	edges(b, p[SP_E0], "\xa0\xbf", p[SP_CONT1], 1);
	edges(b, p[SP_ED], "\x80\x9f", p[SP_CONT1], 1);
	edges(b, p[SP_F0], "\x90\xbf", p[SP_CONT2], 1);
	edges(b, p[SP_F4], "\x80\x8f", p[SP_CONT2], 1);
	edges(b, p[SP_ESC], "\"\"\\\\//bbffnnrrtt", p[SP_CHAR], 1);
	edges(b, p[SP_ESC], "uu", p[SP_U1], 5);
	edges(b, p[SP_U1], "00", p[SP_U2_0], 4);
	edges(b, p[SP_U1], "DDdd", p[SP_U2_D], 4);
	edges(b, p[SP_U1], "19acefACEF", p[SP_U2], 4);
	edges(b, p[SP_U2], "09afAF", p[SP_U3], 3);
	edges(b, p[SP_U2_D], "07", p[SP_U3], 3);
	edges(b, p[SP_U2_0], "00", p[SP_U3_00], 3);
	edges(b, p[SP_U2_0], "19afAF", p[SP_U3], 3);
	edges(b, p[SP_U3], "09afAF", p[SP_U4], 2);
	edges(b, p[SP_U3_00], "00", p[SP_U4_000], 2);
	edges(b, p[SP_U3_00], "19afAF", p[SP_U4], 2);
	edges(b, p[SP_U4], "09afAF", p[SP_CHAR], 1);
	edges(b, p[SP_U4_000], "19afAF", p[SP_CHAR], 1);
}

/* A JSON number (integer: no fraction or exponent) from `from`; it ends at the first byte it
 * cannot take, which `to` then takes. */
static void number_value(struct builder *b, uint32_t from, int32_t vid, uint32_t to, bool integer)
{
	uint32_t p[NP_COUNT];
	int n = integer ? NP_DOT : NP_COUNT;
	for (int i = 0; i < n; i++)
		p[i] = new_state(b, integer ? TMPL_INTEGER : TMPL_NUMBER, i, vid);
	if (b->rc)
		return;
	edge(b, from, '-', '-', p[NP_MINUS], 2, TR_RESET | TR_COST);
	edge(b, from, '0', '0', p[NP_ZERO], 1, TR_RESET | TR_COST);
	edge(b, from, '1', '9', p[NP_INT], 1, TR_RESET | TR_COST);
	edges(b, p[NP_MINUS], "00", p[NP_ZERO], 1);
	edges(b, p[NP_MINUS], "19", p[NP_INT], 1);
	b->g->states[p[NP_ZERO]].exit_to = to;
	for (int k = 0; k < INT_DIGITS; k++) {
		if (k + 1 < INT_DIGITS)
			edges(b, p[NP_INT + k], "09", p[NP_INT + k + 1], 1);
		if (!integer) {
			edges(b, p[NP_INT + k], "..", p[NP_DOT], 2);
			edges(b, p[NP_INT + k], "eeEE", p[NP_E], 2);
		}
		b->g->states[p[NP_INT + k]].exit_to = to;
	}
	if (integer)
		return;
	edges(b, p[NP_ZERO], "..", p[NP_DOT], 2);
	edges(b, p[NP_ZERO], "eeEE", p[NP_E], 2);
	edges(b, p[NP_DOT], "09", p[NP_FRAC], 1);
	edges(b, p[NP_FRAC], "09", p[NP_FRAC], 1);
	edges(b, p[NP_FRAC], "eeEE", p[NP_E], 2);
	edges(b, p[NP_E], "++--", p[NP_ESIGN], 2);
	edges(b, p[NP_E], "09", p[NP_EXP1], 1);
	edges(b, p[NP_ESIGN], "09", p[NP_EXP1], 1);
	edges(b, p[NP_EXP1], "09", p[NP_EXP2], 1);
	b->g->states[p[NP_FRAC]].exit_to = to;
	b->g->states[p[NP_EXP1]].exit_to = to;
	b->g->states[p[NP_EXP2]].exit_to = to;
}

static void value(struct builder *b, uint32_t from, const struct ex_field *f, int32_t array,
		  uint32_t to);

static int prefix_pattern(const struct ex_field *f, pcre2_code **out)
{
	char *src;
	int code;
	PCRE2_SIZE offset;
	if (asprintf(&src, "(?:%s)\\z", f->pattern) < 0)
		return -ENOMEM;
	*out = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED | PCRE2_UTF,
			     &code, &offset, NULL);
	free(src);
	return *out ? 0 : -EINVAL;
}

/* An object with `fields` from `from` to `to`; *open gets the state after its '{'. */
static void object_value(struct builder *b, uint32_t from, const struct ex_field *fields, size_t n,
			 int32_t array, uint32_t to, uint32_t *open)
{
	uint32_t cur = *open = new_state(b, TMPL_NONE, 0, -1);
	edge(b, from, '{', '{', cur, 0, 0);
	for (size_t i = 0; i < n && !b->rc; i++) {
		char *key = json_quote(i ? "," : "", fields[i].name, ":");
		if (!key) {
			b->rc = -ENOMEM;
			return;
		}
		uint32_t before = literal(b, cur, key, strlen(key), -1, NONE, false);
		free(key);
		cur = new_state(b, TMPL_NONE, 0, -1);
		value(b, before, &fields[i], array, cur);
	}
	edge(b, cur, '}', '}', to, 0, 0);
}

static void value(struct builder *b, uint32_t from, const struct ex_field *f, int32_t array,
		  uint32_t to)
{
	int32_t vid = new_value(b, f, array);
	if (b->rc)
		return;
	if (f->nullable)
		literal(b, from, "null", 4, vid, to, false);
	switch (f->type) {
	case EX_TYPE_STRING:
	case EX_TYPE_DATE:
	case EX_TYPE_DECIMAL: {
		bool pattern = f->type == EX_TYPE_STRING && f->constrain_pattern && f->pattern;
		if (pattern && (b->rc = prefix_pattern(f, &b->g->values[vid].prefix_re)) < 0)
			return;
		string_value(b, from, vid, to, pattern);
		break;
	}
	case EX_TYPE_INTEGER:
	case EX_TYPE_NUMBER:
		number_value(b, from, vid, to, f->type == EX_TYPE_INTEGER);
		break;
	case EX_TYPE_BOOLEAN:
		literal(b, from, "true", 4, vid, to, false);
		literal(b, from, "false", 5, vid, to, false);
		break;
	case EX_TYPE_ENUM:
		for (size_t i = 0; i < f->n_enum_values && !b->rc; i++) {
			char *q = json_quote("", f->enum_values[i], "");
			if (!q) {
				b->rc = -ENOMEM;
				return;
			}
			literal(b, from, q, strlen(q), vid, to, true);
			free(q);
		}
		break;
	case EX_TYPE_OBJECT: {
		uint32_t open;
		object_value(b, from, f->fields, f->n_fields, array, to, &open);
		break;
	}
	case EX_TYPE_ARRAY: {
		/* [ ] or [ {..} (, {..})* ]: one element object, reached from '[' and from ','. */
		uint32_t open = new_state(b, TMPL_NONE, 0, -1),
			 after = new_state(b, TMPL_NONE, 0, -1),
			 comma = new_state(b, TMPL_NONE, 0, -1), elem;
		object_value(b, open, f->fields, f->n_fields, vid, after, &elem);
		if (b->rc)
			return;
		edge(b, from, '[', '[', open, 0, 0);
		edge(b, open, ']', ']', to, 0, 0);
		edge(b, after, ',', ',', comma, 0, 0);
		edge(b, after, ']', ']', to, 0, 0);
		edge(b, comma, '{', '{', elem, 0, 0);
		b->g->states[open].arr_open = vid;
		b->g->states[elem].arr_elem = vid;
		break;
	}
	case EX_TYPE_COUNT:
		break;
	}
}

/* The [state][byte] table of transitions; an automaton with two edges on one byte is a bug. */
static int index_edges(struct ex_grammar *g)
{
	if (!(g->next = calloc(g->n_states * 256, sizeof *g->next)))
		return -ENOMEM;
	for (size_t t = 0; t < g->n_trans; t++)
		for (unsigned c = g->trans[t].lo; c <= g->trans[t].hi; c++) {
			uint32_t *slot = &g->next[(size_t)g->trans[t].from * 256 + c];
			if (*slot)
				return -EINVAL;
			*slot = (uint32_t)t + 1;
		}
	return 0;
}

/* ---- The vocabulary trie ----------------------------------------------------------------------- */

static int cmp_token(const void *a, const void *b, void *ctx)
{
	const struct ex_vocab *v = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	size_t n = v->len[x] < v->len[y] ? v->len[x] : v->len[y];
	int c = memcmp(v->data + v->off[x], v->data + v->off[y], n);
	if (c)
		return c;
	return v->len[x] != v->len[y] ? (v->len[x] < v->len[y] ? -1 : 1) : (x > y) - (x < y);
}

/* Tokens that may appear inside the answer: every token with bytes but special and stop tokens. */
static bool in_answer(const struct ex_vocab *v, int32_t id)
{
	return !(v->flags[id] & (TOKEN_ABSENT | EX_TOKEN_SPECIAL | EX_TOKEN_STOP)) && v->len[id] &&
	       v->len[id] <= UINT16_MAX;
}

static int build_trie(struct ex_grammar *g)
{
	const struct ex_vocab *v = g->vocab;
	int32_t *ids = malloc((size_t)v->n_tokens * sizeof *ids);
	uint32_t *open = NULL;
	size_t n_ids = 0, total = 0;
	int rc = -ENOMEM;
	if (!ids || !(g->same_next = malloc((size_t)v->n_tokens * sizeof *g->same_next)))
		goto out;
	for (int32_t i = 0; i < v->n_tokens; i++)
		if (in_answer(v, i)) {
			ids[n_ids++] = i;
			total += v->len[i];
			g->max_token =
				v->len[i] > g->max_token ? (unsigned)v->len[i] : g->max_token;
		}
	qsort_r(ids, n_ids, sizeof *ids, cmp_token, (void *)v);
	if (!(g->nodes = malloc((total + 1) * sizeof *g->nodes)) ||
	    !(open = malloc(((size_t)g->max_token + 1) * sizeof *open)))
		goto out;
	size_t depth = 0;
	for (size_t k = 0; k < n_ids; k++) {
		int32_t id = ids[k];
		const uint8_t *s = (const uint8_t *)v->data + v->off[id];
		size_t len = v->len[id], lcp = 0;
		if (k) {
			const uint8_t *p = (const uint8_t *)v->data + v->off[ids[k - 1]];
			size_t max = v->len[ids[k - 1]] < len ? v->len[ids[k - 1]] : len;
			while (lcp < max && p[lcp] == s[lcp])
				lcp++;
		}
		for (; depth > lcp; depth--)
			g->nodes[open[depth]].end = (uint32_t)g->n_nodes;
		for (; depth < len; depth++) {
			open[depth + 1] = (uint32_t)g->n_nodes;
			g->nodes[g->n_nodes++] = (struct tnode){ .token = -1,
								 .depth = (uint16_t)(depth + 1),
								 .byte = s[depth] };
		}
		struct tnode *node = &g->nodes[open[len]];
		g->same_next[id] = node->token;
		node->token = id;
	}
	for (; depth > 0; depth--)
		g->nodes[open[depth]].end = (uint32_t)g->n_nodes;
	rc = 0;
out:
	free(ids);
	free(open);
	return rc;
}

/* ---- Stepping ---------------------------------------------------------------------------------- */

/* Where the automaton is: its state, the budget left in the current value, and inside a pattern
 * string the decoded value's length and a \u escape's code point so far. */
struct frame {
	uint32_t st;
	uint32_t dlen;
	uint32_t cp;
	uint16_t rem;
	bool left; /* walks: a byte left the start state's template */
};

/* The decoded value of a pattern string (buf, sized max_value + 8) and PCRE2's match data. */
struct decoder {
	char *buf;
	pcre2_match_data *md;
};

/* Whether the decoded value matches the pattern (complete) or can still grow into a match. */
static bool pattern_viable(const struct gvalue *v, struct decoder *d, size_t len, bool complete)
{
	int rc = complete ? pcre2_match(v->field->re, (PCRE2_SPTR)d->buf, len, 0, 0, d->md, NULL)
			  : pcre2_match(v->prefix_re, (PCRE2_SPTR)d->buf, len, 0,
					PCRE2_PARTIAL_HARD, d->md, NULL);
	return rc >= 0 || (!complete && rc == PCRE2_ERROR_PARTIAL);
}

/* Keeps the decoded value of a pattern string and checks it against the pattern at the end of
 * each character (partially) and at the closing quote (completely). Mid-character prefixes are
 * not checked (PCRE2 refuses truncated UTF-8), so walks accept no token ending there: every
 * token ends on a character checked against the pattern, and none leads to a dead end. */
static bool pattern_step(const struct ex_grammar *g, struct decoder *d, const struct gstate *fs,
			 const struct gstate *ts, uint8_t c, struct frame *out)
{
	const struct gvalue *v = &g->values[ts->tmpl == TMPL_PATTERN ? ts->span : fs->span];
	if (ts->tmpl != TMPL_PATTERN)
		return pattern_viable(v, d, out->dlen, true);
	if (fs->tmpl != TMPL_PATTERN) {
		out->dlen = 0;
		return true;
	}
	static const char unescaped[256] = {
		['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
		['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t'
	};
	switch (fs->pos) {
	case SP_CHAR:
		if (c != '\\')
			d->buf[out->dlen++] = (char)c;
		break;
	case SP_ESC:
		if (c == 'u')
			out->cp = 0;
		else
			d->buf[out->dlen++] = unescaped[c];
		break;
	case SP_U1:
	case SP_U2:
	case SP_U2_D:
	case SP_U2_0:
	case SP_U3:
	case SP_U3_00:
	case SP_U4:
	case SP_U4_000:
		out->cp = out->cp * 16 + (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
		if (ts->pos == SP_CHAR)
			out->dlen +=
				(uint32_t)g_unichar_to_utf8((gunichar)out->cp, d->buf + out->dlen);
		break;
	default:
		d->buf[out->dlen++] = (char)c;
		break;
	}
	return ts->pos != SP_CHAR || pattern_viable(v, d, out->dlen, false);
}

/* One byte: *out is where `in` goes on c, *from the state whose edge took it (exit_to when a
 * number ended). False when the grammar does not allow c here. */
static bool step(const struct ex_grammar *g, struct decoder *d, const struct frame *in, uint8_t c,
		 struct frame *out, uint32_t *from)
{
	uint32_t f = in->st, t = g->next[(size_t)f * 256 + c];
	if (!t && g->states[f].exit_to != NONE) {
		f = g->states[f].exit_to;
		t = g->next[(size_t)f * 256 + c];
	}
	if (!t)
		return false;
	const struct trans *tr = &g->trans[t - 1];
	unsigned rem = tr->flags & TR_RESET ? g->max_value : in->rem;
	if (tr->need > rem)
		return false;
	*out = *in;
	out->st = tr->to;
	out->rem = (uint16_t)(rem - (tr->flags & TR_COST ? 1u : 0u));
	const struct gstate *fs = &g->states[f], *ts = &g->states[tr->to];
	if ((fs->tmpl == TMPL_PATTERN || ts->tmpl == TMPL_PATTERN) &&
	    !pattern_step(g, d, fs, ts, c, out))
		return false;
	*from = f;
	return true;
}

/* ---- Token sets -------------------------------------------------------------------------------- */

struct walker {
	struct frame *fr;   /* [max_token + 1]: one per trie depth */
	struct decoder dec; /* the walked path's decoded pattern value */
	uint64_t *bits;     /* [n_words] */
	int32_t *list;      /* [n_tokens] */
	size_t n_list;
};

/* Walks the vocabulary trie from `start`. Accepted tokens go to w->bits, except, when `split`,
 * those that left the start state's template (closed the string or number): those go to
 * w->list. */
static void walk(const struct ex_grammar *g, struct walker *w, const struct frame *start,
		 bool split)
{
	memset(w->bits, 0, g->n_words * sizeof *w->bits);
	w->n_list = 0;
	uint8_t tmpl = g->states[start->st].tmpl;
	w->fr[0] = *start;
	w->fr[0].left = false;
	for (size_t i = 0; i < g->n_nodes;) {
		const struct tnode *n = &g->nodes[i];
		struct frame *f = &w->fr[n->depth];
		const struct frame *parent = f - 1;
		uint32_t from;
		if (!step(g, &w->dec, parent, n->byte, f, &from)) {
			i = n->end;
			continue;
		}
		const struct gstate *to = &g->states[f->st];
		f->left = parent->left || to->tmpl != tmpl;
		bool mid_char = to->tmpl == TMPL_PATTERN && to->pos != SP_CHAR;
		for (int32_t t = mid_char ? -1 : n->token; t >= 0; t = g->same_next[t]) {
			if (split && f->left)
				w->list[w->n_list++] = t;
			else
				w->bits[t >> 6] |= 1ull << (t & 63);
		}
		i++;
	}
}

static uint32_t popcount(const uint64_t *bits, size_t n_words)
{
	uint32_t n = 0;
	for (size_t i = 0; i < n_words; i++)
		n += (uint32_t)__builtin_popcountll(bits[i]);
	return n;
}

/* Cache keys: a state (or, with the top bit, a class) and the value budget left, which matters
 * only when a token could exhaust it. */
static uint64_t cache_key(const struct ex_grammar *g, const struct frame *f, bool cls)
{
	const struct gstate *s = &g->states[f->st];
	uint64_t budget = s->tmpl == TMPL_NONE || f->rem >= g->unbounded ? g->unbounded : f->rem;
	return cls ? 1ull << 63 | (uint64_t)s->cls << 16 | budget : (uint64_t)f->st << 16 | budget;
}

static size_t slot_of(uint64_t key, size_t cap)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static struct centry *cache_get(const struct ex_grammar *g, uint64_t key)
{
	for (size_t i = slot_of(key, g->cap); g->slots[i]; i = (i + 1) & (g->cap - 1))
		if (g->slots[i]->key == key)
			return g->slots[i];
	return NULL;
}

static void centry_free(struct centry *e)
{
	if (!e)
		return;
	if (e->own_bits)
		free((void *)e->bits);
	free(e->list);
	free(e);
}

/* Takes ownership of e (freed on failure). */
static int cache_put(struct ex_grammar *g, struct centry *e)
{
	if (2 * (g->n_cached + 1) > g->cap) {
		size_t cap = 2 * g->cap;
		struct centry **slots = calloc(cap, sizeof *slots);
		if (!slots) {
			centry_free(e);
			return -ENOMEM;
		}
		for (size_t k = 0; k < g->cap; k++) {
			if (!g->slots[k])
				continue;
			size_t i = slot_of(g->slots[k]->key, cap);
			while (slots[i])
				i = (i + 1) & (cap - 1);
			slots[i] = g->slots[k];
		}
		free(g->slots);
		g->slots = slots;
		g->cap = cap;
	}
	size_t i = slot_of(e->key, g->cap);
	while (g->slots[i])
		i = (i + 1) & (g->cap - 1);
	g->slots[i] = e;
	g->n_cached++;
	return 0;
}

static uint64_t *bits_dup(const struct ex_grammar *g, const uint64_t *bits)
{
	uint64_t *b = malloc(g->n_words * sizeof *b);
	if (b)
		memcpy(b, bits, g->n_words * sizeof *b);
	return b;
}

/* The token set of the frame's state, walked and cached on first use. Lock held. A state in a
 * string or number shares the class's bitset and keeps its own list of value-closing tokens; any
 * other state keeps a list when that is smaller than a bitset. */
static int cached_set(struct ex_grammar *g, struct walker *w, const struct frame *f,
		      const struct centry **out)
{
	uint64_t key = cache_key(g, f, false);
	struct centry *e = cache_get(g, key);
	if (e) {
		*out = e;
		return 0;
	}
	bool split = g->states[f->st].cls >= 0;
	walk(g, w, f, split);
	uint32_t n_bits = popcount(w->bits, g->n_words);
	if (!(e = calloc(1, sizeof *e)))
		return -ENOMEM;
	e->key = key;
	int32_t *list = split ? w->list : NULL;
	size_t n_list = split ? w->n_list : 0;
	if (split) {
		uint64_t ckey = cache_key(g, f, true);
		struct centry *c = cache_get(g, ckey);
		if (!c) {
			uint64_t *bits = bits_dup(g, w->bits);
			int rc;
			if (!bits || !(c = calloc(1, sizeof *c))) {
				free(bits);
				free(e);
				return -ENOMEM;
			}
			*c = (struct centry){
				.key = ckey, .bits = bits, .n_allowed = n_bits, .own_bits = true
			};
			if ((rc = cache_put(g, c)) < 0) {
				free(e);
				return rc;
			}
		}
		e->bits = c->bits;
		n_bits = c->n_allowed;
	} else if (n_bits < 2 * g->n_words) {
		for (size_t i = 0; i < g->n_words; i++)
			for (uint64_t m = w->bits[i]; m; m &= m - 1)
				w->list[n_list++] = (int32_t)(i * 64 + (size_t)__builtin_ctzll(m));
		list = w->list;
	} else if (!(e->bits = bits_dup(g, w->bits))) {
		free(e);
		return -ENOMEM;
	} else {
		e->own_bits = true;
	}
	if (n_list && !(e->list = malloc(n_list * sizeof *e->list))) {
		centry_free(e);
		return -ENOMEM;
	}
	if (n_list)
		memcpy(e->list, list, n_list * sizeof *e->list);
	e->n_list = (uint32_t)n_list;
	e->n_allowed = n_bits + (uint32_t)(split ? n_list : 0);
	int rc = cache_put(g, e);
	*out = rc < 0 ? NULL : e;
	return rc;
}

/* Sets every logit outside bits + list to -INFINITY; `saved` holds the listed logits meanwhile. */
static void apply(const struct ex_grammar *g, const uint64_t *bits, const int32_t *list,
		  size_t n_list, float *saved, float *logits, int64_t n_vocab)
{
	for (size_t k = 0; k < n_list; k++)
		saved[k] = list[k] < n_vocab ? logits[list[k]] : 0;
	int64_t covered = 0;
	if (bits) {
		for (size_t w = 0; w < g->n_words; w++)
			for (uint64_t m = ~bits[w]; m; m &= m - 1) {
				int64_t i = (int64_t)(w * 64) + __builtin_ctzll(m);
				if (i >= n_vocab)
					break;
				logits[i] = -INFINITY;
			}
		covered = (int64_t)g->n_words * 64;
	}
	for (int64_t i = covered; i < n_vocab; i++)
		logits[i] = -INFINITY;
	for (size_t k = 0; k < n_list; k++)
		if (list[k] < n_vocab)
			logits[list[k]] = saved[k];
}

/* ---- Compiling --------------------------------------------------------------------------------- */

void ex_grammar_free(struct ex_grammar *g)
{
	if (!g)
		return;
	for (size_t i = 0; g->slots && i < g->cap; i++)
		centry_free(g->slots[i]);
	if (g->slots)
		pthread_mutex_destroy(&g->lock);
	free(g->slots);
	free(g->states);
	free(g->trans);
	free(g->next);
	for (size_t i = 0; i < g->n_values; i++)
		pcre2_code_free(g->values[i].prefix_re);
	free(g->values);
	free(g->nodes);
	free(g->same_next);
	free(g->stops);
	free(g);
}

int ex_grammar_compile_opts(const struct ex_schema *schema, const struct ex_vocab *vocab,
			    const struct ex_grammar_opts *opts, struct ex_grammar **out,
			    vlm_err *err)
{
	*out = NULL;
	size_t max =
		opts && opts->max_value_bytes ? opts->max_value_bytes : EX_GRAMMAR_MAX_VALUE_BYTES;
	if (max > UINT16_MAX)
		return vlm_err_set(err, -EINVAL,
				   "grammar: schema '%s': max_value_bytes %zu is "
				   "above 65535",
				   schema->name, max);
	struct ex_grammar *g = calloc(1, sizeof *g);
	if (!g)
		return vlm_err_set(err, -ENOMEM, "grammar: schema '%s': out of memory",
				   schema->name);
	g->schema = schema;
	g->vocab = vocab;
	g->max_value = (unsigned)max;
	g->n_words = ((size_t)vocab->n_tokens + 63) / 64;
	int rc = -ENOMEM;
	if (!(g->stops = malloc((size_t)vocab->n_tokens * sizeof *g->stops)))
		goto fail;
	for (int32_t i = 0; i < vocab->n_tokens; i++)
		if ((vocab->flags[i] & (EX_TOKEN_STOP | TOKEN_ABSENT)) == EX_TOKEN_STOP)
			g->stops[g->n_stops++] = i;
	if (!g->n_stops) {
		ex_grammar_free(g);
		return vlm_err_set(err, -EINVAL,
				   "grammar: schema '%s': the vocabulary has no stop "
				   "token, so the answer could never end",
				   schema->name);
	}
	if ((rc = build_trie(g)) < 0)
		goto fail;
	g->unbounded = g->max_token + 8 < UINT16_MAX ? g->max_token + 8 : UINT16_MAX;

	struct builder b = { .g = g };
	g->start = new_state(&b, TMPL_NONE, 0, -1);
	uint32_t final = new_state(&b, TMPL_NONE, 0, -1), open;
	object_value(&b, g->start, schema->fields, schema->n_fields, -1, final, &open);
	if ((rc = b.rc) < 0 || (rc = index_edges(g)) < 0)
		goto fail;
	g->states[final].final = true;
	g->cap = 1024;
	if (!(g->slots = calloc(g->cap, sizeof *g->slots)))
		goto fail;
	pthread_mutex_init(&g->lock, NULL);
	*out = g;
	return 0;
fail:
	ex_grammar_free(g);
	return vlm_err_set(err, rc, "grammar: schema '%s': %s", schema->name,
			   rc == -ENOMEM ? "out of memory" : "cannot be compiled to a grammar");
}

void ex_grammar_stats(const struct ex_grammar *g, struct ex_grammar_stats *out)
{
	struct ex_grammar *m = (struct ex_grammar *)g; /* the lock is the mutable part */
	*out = (struct ex_grammar_stats){ 0 };
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < g->cap; i++)
		if (g->slots[i] && g->slots[i]->key >> 63)
			out->n_shared++;
		else if (g->slots[i])
			out->n_sets++;
	pthread_mutex_unlock(&m->lock);
}

int ex_grammar_compile(const struct ex_schema *schema, const struct ex_vocab *vocab,
		       struct ex_grammar **out, vlm_err *err)
{
	return ex_grammar_compile_opts(schema, vocab, NULL, out, err);
}

/* ---- One generation ---------------------------------------------------------------------------- */

/* A value of the answer: its concrete path and the tokens that spelled it. */
struct evrec {
	char *path;
	size_t first, n;
	bool started;
};

struct ex_grammar_state {
	const struct ex_grammar *g;
	struct frame cur;
	struct decoder value; /* the current pattern string's decoded value */
	struct walker w;      /* walks for the cache and for pattern strings */
	float *saved;         /* [n_tokens] */
	int64_t *index;       /* [n_values]: an array value's current element index */
	size_t n_seen;        /* tokens taken in */
	char *text;
	size_t len, cap;
	struct evrec *ev;
	size_t n_ev, cap_ev;
	int failed; /* the first error, sticky */
	vlm_err err;
};

void ex_grammar_state_free(struct ex_grammar_state *s)
{
	if (!s)
		return;
	for (size_t k = 0; k < s->n_ev; k++)
		free(s->ev[k].path);
	free(s->ev);
	free(s->text);
	free(s->index);
	free(s->saved);
	free(s->w.fr);
	free(s->w.dec.buf);
	free(s->w.bits);
	free(s->w.list);
	free(s->value.buf);
	pcre2_match_data_free(s->value.md);
	free(s);
}

void ex_grammar_state_reset(struct ex_grammar_state *s)
{
	for (size_t k = 0; k < s->n_ev; k++)
		free(s->ev[k].path);
	s->n_ev = 0;
	s->cur = (struct frame){ .st = s->g->start, .rem = (uint16_t)s->g->max_value };
	for (size_t k = 0; k < s->g->n_values; k++)
		s->index[k] = -1;
	s->n_seen = 0;
	s->len = 0;
	s->text[0] = 0;
	s->failed = 0;
	s->err = (vlm_err){ 0 };
}

int ex_grammar_state_new(const struct ex_grammar *g, struct ex_grammar_state **out, vlm_err *err)
{
	struct ex_grammar_state *s = calloc(1, sizeof *s);
	size_t n_tokens = (size_t)g->vocab->n_tokens;
	*out = NULL;
	if (!s || !(s->w.fr = calloc((size_t)g->max_token + 1, sizeof *s->w.fr)) ||
	    !(s->w.dec.buf = malloc(g->max_value + 8)) ||
	    !(s->value.buf = malloc(g->max_value + 8)) ||
	    !(s->w.bits = calloc(g->n_words, sizeof *s->w.bits)) ||
	    !(s->w.list = malloc(n_tokens * sizeof *s->w.list)) ||
	    !(s->saved = malloc(n_tokens * sizeof *s->saved)) ||
	    !(s->index = malloc((g->n_values + 1) * sizeof *s->index)) ||
	    !(s->text = malloc(s->cap = 256)) ||
	    !(s->value.md = pcre2_match_data_create(1, NULL))) {
		ex_grammar_state_free(s);
		return vlm_err_set(err, -ENOMEM, "grammar: schema '%s': out of memory",
				   g->schema->name);
	}
	s->w.dec.md = s->value.md;
	s->g = g;
	ex_grammar_state_reset(s);
	*out = s;
	return 0;
}

static int fail(struct ex_grammar_state *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ex_grammar_state *s, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlm_err_setv(&s->err, code, fmt, ap);
	va_end(ap);
	return s->failed = code;
}

/* The end of the answer so far, for messages. */
static const char *tail(const struct ex_grammar_state *s)
{
	return s->text + (s->len > 60 ? s->len - 60 : 0);
}

/* The concrete path of value `vid` now: its schema path with each "[]" replaced by the index of
 * the array it stands for (outermost first). */
static char *concrete_path(const struct ex_grammar *g, const int64_t *index, int32_t vid)
{
	const char *p = g->values[vid].field->path;
	size_t m = 0;
	for (int32_t a = g->values[vid].array; a >= 0; a = g->values[a].array)
		m++;
	size_t size = strlen(p) + 24 * m + 1, at = 0, k = 0;
	char *out = malloc(size);
	while (out && *p) {
		if (p[0] == '[' && p[1] == ']' && k < m) {
			int32_t a = g->values[vid].array;
			for (size_t up = m - 1 - k; up > 0; up--)
				a = g->values[a].array;
			at += (size_t)snprintf(out + at, size - at, "[%lld]", (long long)index[a]);
			k++;
			p += 2;
		} else {
			out[at++] = *p++;
		}
	}
	if (out)
		out[at] = 0;
	return out;
}

static int open_value(struct ex_grammar_state *s, int32_t vid)
{
	if (s->n_ev == s->cap_ev) {
		size_t cap = s->cap_ev ? 2 * s->cap_ev : 32;
		struct evrec *ev = realloc(s->ev, cap * sizeof *ev);
		if (!ev)
			return fail(s, -ENOMEM, "grammar: out of memory");
		s->ev = ev;
		s->cap_ev = cap;
	}
	char *path = concrete_path(s->g, s->index, vid);
	if (!path)
		return fail(s, -ENOMEM, "grammar: out of memory");
	s->ev[s->n_ev++] = (struct evrec){ .path = path };
	return 0;
}

/* Advances by one generated token: its bytes, the values it spells, the array indices. */
static int take_token(struct ex_grammar_state *s, int32_t tok)
{
	const struct ex_grammar *g = s->g;
	const struct ex_vocab *v = g->vocab;
	size_t i = s->n_seen;
	if (tok < 0 || tok >= v->n_tokens || !in_answer(v, tok) || g->states[s->cur.st].final)
		return fail(s, -EBADMSG,
			    "grammar: schema '%s': token %d (number %zu) cannot come "
			    "after '%s'",
			    g->schema->name, (int)tok, i + 1, tail(s));
	const uint8_t *bytes = (const uint8_t *)v->data + v->off[tok];
	size_t n = v->len[tok];
	if (s->len + n + 1 > s->cap) {
		size_t cap = 2 * (s->len + n + 1);
		char *text = realloc(s->text, cap);
		if (!text)
			return fail(s, -ENOMEM, "grammar: out of memory");
		s->text = text;
		s->cap = cap;
	}
	bool counted = false;
	for (size_t k = 0; k < n; k++) {
		struct frame next;
		uint32_t from;
		if (!step(g, &s->value, &s->cur, bytes[k], &next, &from))
			return fail(s, -EBADMSG,
				    "grammar: schema '%s': token %d (number %zu) "
				    "breaks the answer's JSON after '%s'",
				    g->schema->name, (int)tok, i + 1, tail(s));
		const struct gstate *to = &g->states[next.st];
		int32_t vf = g->states[from].span, vt = to->span;
		if (to->arr_open >= 0)
			s->index[to->arr_open] = -1;
		if (to->arr_elem >= 0)
			s->index[to->arr_elem]++;
		if (vt >= 0 && vt != vf && open_value(s, vt) < 0)
			return s->failed;
		if (!counted && (vf >= 0 || vt >= 0)) {
			struct evrec *r = &s->ev[s->n_ev - 1];
			if (!r->started)
				r->first = i;
			r->started = true;
			r->n = i - r->first + 1;
			counted = true;
		}
		s->cur = next;
		s->text[s->len++] = (char)bytes[k];
		s->text[s->len] = 0;
	}
	s->n_seen++;
	return 0;
}

static int take_tokens(struct ex_grammar_state *s, const int32_t *tokens, size_t n)
{
	if (s->failed)
		return s->failed;
	if (n < s->n_seen)
		return fail(s, -EINVAL,
			    "grammar: schema '%s': %zu tokens given after %zu were taken "
			    "in",
			    s->g->schema->name, n, s->n_seen);
	int rc = 0;
	while (s->n_seen < n && (rc = take_token(s, tokens[s->n_seen])) == 0) {
	}
	return rc;
}

int ex_grammar_mask(void *state, const int32_t *generated, size_t n_generated, float *logits,
		    int64_t n_vocab)
{
	struct ex_grammar_state *s = state;
	/* The cache is the one mutable part of a compiled grammar, guarded by its lock. */
	struct ex_grammar *g = (struct ex_grammar *)s->g;
	int rc = take_tokens(s, generated, n_generated);
	if (rc < 0)
		return rc;
	const uint64_t *bits = NULL;
	const int32_t *list = g->stops;
	size_t n_list = g->n_stops, n_allowed = g->n_stops;
	const struct gstate *st = &g->states[s->cur.st];
	if (st->tmpl == TMPL_PATTERN) {
		memcpy(s->w.dec.buf, s->value.buf, s->cur.dlen);
		walk(g, &s->w, &s->cur, false);
		bits = s->w.bits;
		n_list = 0;
		n_allowed = popcount(bits, g->n_words);
	} else if (!st->final) {
		const struct centry *e;
		pthread_mutex_lock(&g->lock);
		rc = cached_set(g, &s->w, &s->cur, &e);
		pthread_mutex_unlock(&g->lock);
		if (rc < 0)
			return fail(s, rc, "grammar: schema '%s': out of memory", g->schema->name);
		bits = e->bits;
		list = e->list;
		n_list = e->n_list;
		n_allowed = e->n_allowed;
	}
	if (!n_allowed)
		return fail(s, -EBADMSG,
			    "grammar: schema '%s': no token can continue the answer "
			    "after '%s'",
			    g->schema->name, tail(s));
	apply(g, bits, list, n_list, s->saved, logits, n_vocab);
	return 0;
}

bool ex_grammar_complete(const struct ex_grammar_state *s)
{
	return s->g->states[s->cur.st].final;
}

int ex_grammar_finish(struct ex_grammar_state *s, const int32_t *tokens, size_t n_tokens,
		      vlm_err *err)
{
	if (take_tokens(s, tokens, n_tokens) == 0 && !ex_grammar_complete(s))
		fail(s, -EBADMSG,
		     "grammar: schema '%s': the answer stopped after %zu tokens, "
		     "before its closing brace (token limit?)",
		     s->g->schema->name, s->n_seen);
	if (!s->failed)
		return 0;
	if (err)
		*err = s->err;
	return s->failed;
}

const char *ex_grammar_json(const struct ex_grammar_state *s)
{
	return s->text;
}

int ex_grammar_evidence(const struct ex_grammar_state *s, const float *logprobs, size_t n_logprobs,
			int page, struct ex_field_evidence **out, size_t *n_out, vlm_err *err)
{
	*out = NULL;
	*n_out = 0;
	if (n_logprobs < s->n_seen)
		return vlm_err_set(err, -EINVAL,
				   "grammar: schema '%s': %zu log-probabilities for "
				   "%zu tokens",
				   s->g->schema->name, n_logprobs, s->n_seen);
	struct ex_field_evidence *ev = calloc(s->n_ev + 1, sizeof *ev);
	if (!ev)
		return vlm_err_set(err, -ENOMEM, "grammar: out of memory");
	for (size_t k = 0; k < s->n_ev; k++)
		ev[k] = (struct ex_field_evidence){ s->ev[k].path, logprobs + s->ev[k].first,
						    s->ev[k].n, page };
	*out = ev;
	*n_out = s->n_ev;
	return 0;
}
