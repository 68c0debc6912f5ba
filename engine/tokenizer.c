/* Byte-level BPE tokenizer loaded from tokenizer.json, behaving like the Hugging Face `tokenizers`
 * library for the structure GLM-4 uses (see docs glm4v.md §8).
 *
 * Owns: the vocabulary (string -> id hash, id -> string and id -> decoded bytes tables), the merge
 * table ((left id, right id) -> rank and merged id), the added tokens, the compiled pre-tokenizer
 * regex, and the UTF-8 repair used by decoding. Encoding splits on added tokens (two passes, as HF:
 * tokens with normalized=false first, then normalized ones in the gaps; with no normalizer both see
 * the same text), regex-splits each gap with PCRE2, maps bytes to the GPT-2 alphabet and merges by
 * rank with a priority queue. It does not apply post-processors or chat templates (chat.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>

#include "tokenizer.h"

/* Ids are stored as int32 and offsets as uint32; a real vocabulary is ~151k tokens. */
#define TOK_MAX_ID (1 << 24)

enum {
	TOK_PRESENT = 1, /* the id names a vocabulary entry or an added token */
	TOK_ADDED = 2,
	TOK_SPECIAL = 4,
};

/* A string inside one of the tokenizer's arenas. */
struct strref {
	uint32_t off, len;
};

/* Open-addressing hash from a string to an index whose string lives in refs[index]. */
struct strtab {
	struct strtab_slot {
		uint32_t hash;
		int32_t idx; /* -1: empty */
	} * slots;
	size_t mask;
};

struct merge_slot {
	uint64_t key; /* left id << 32 | right id; UINT64_MAX: empty */
	uint32_t rank;
	int32_t id;
};

struct added_token {
	int32_t id; /* content: tok->added_ref[index], in tok->added_text */
	bool special, lstrip, rstrip, single_word, normalized;
};

struct vlm_tokenizer {
	int32_t n_ids;            /* max id + 1 */
	uint8_t *flags;           /* [n_ids] TOK_* */
	struct strref *vocab_ref; /* [n_ids] the vocabulary spelling, in vocab_text */
	struct strref *bytes_ref; /* [n_ids] what the token decodes to, in bytes_text */
	char *vocab_text, *bytes_text;
	size_t max_token_bytes;
	struct strtab vocab;

	struct merge_slot *merges;
	size_t merge_mask;
	bool ignore_merges;
	uint16_t byte_cp[256]; /* the GPT-2 byte-level alphabet */
	int32_t byte_id[256];  /* token of each byte's one-character spelling */

	struct added_token *added;
	struct strref *added_ref;
	size_t n_added;
	char *added_text;
	struct strtab added_lookup;
	/* added[] indices grouped by first byte, longest first: by_first[first[b]..first[b + 1]) */
	uint32_t first[257];
	uint32_t *by_first;

	pcre2_code *split_re;
	pcre2_code *word_re; /* one word character, for single_word tokens; NULL when none has it */
};

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Length of the character whose lead byte is `b`, for text already known to be valid. */
static size_t utf8_char_len(uint8_t b)
{
	return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

/* Second-byte range and sequence length for a lead byte (Unicode Table 3-7); false when `b`
 * cannot start a sequence. */
static bool utf8_lead(uint8_t b, uint8_t *total, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (b >= 0xc2 && b <= 0xdf)
		*total = 2;
	else if (b >= 0xe0 && b <= 0xef)
		*total = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		*total = 4;
	else
		return false;
	if (b == 0xe0)
		*lo = 0xa0;
	else if (b == 0xed)
		*hi = 0x9f;
	else if (b == 0xf0)
		*lo = 0x90;
	else if (b == 0xf4)
		*hi = 0x8f;
	return true;
}

/* Offset of the first invalid byte of s[0..n), or n when it is all valid UTF-8. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t total, lo, hi;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (!utf8_lead(s[i], &total, &lo, &hi) || n - i < total)
			return i;
		for (uint8_t k = 1; k < total; k++) {
			if (s[i + k] < lo || s[i + k] > hi)
				return i;
			lo = 0x80;
			hi = 0xbf;
		}
		i += total;
	}
	return n;
}

static uint32_t utf8_decode(const uint8_t *s, size_t *len)
{
	*len = utf8_char_len(s[0]);
	static const uint8_t lead_mask[5] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t cp = s[0] & lead_mask[*len];
	for (size_t k = 1; k < *len; k++)
		cp = cp << 6 | (s[k] & 0x3fu);
	return cp;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	out[0] = (char)(0xe0 | cp >> 12);
	out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

/* Rust's char::is_whitespace (Unicode White_Space), which HF uses for lstrip/rstrip. */
static bool is_unicode_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Lossy UTF-8 repair, one byte at a time, replacing each maximal invalid subsequence with one
 * U+FFFD exactly as Rust's String::from_utf8_lossy does (so HF's decode). Holds at most the
 * three leading bytes of an unfinished character. */
struct utf8_repair {
	uint8_t held[4];
	uint8_t n_held, total, lo, hi;
};

static size_t put_replacement(char *out)
{
	memcpy(out, "\xef\xbf\xbd", 3);
	return 3;
}

/* Writes at most 6 bytes (and never more than 3 per byte fed since the last complete output). */
static size_t utf8_repair_feed(struct utf8_repair *u, uint8_t b, char *out)
{
	size_t n = 0;
	if (u->n_held) {
		if (b >= u->lo && b <= u->hi) {
			u->held[u->n_held++] = b;
			u->lo = 0x80;
			u->hi = 0xbf;
			if (u->n_held < u->total)
				return 0;
			memcpy(out, u->held, u->n_held);
			n = u->n_held;
			u->n_held = 0;
			return n;
		}
		n = put_replacement(out);
		u->n_held = 0;
	}
	if (b < 0x80) {
		out[n++] = (char)b;
	} else if (utf8_lead(b, &u->total, &u->lo, &u->hi)) {
		u->held[0] = b;
		u->n_held = 1;
	} else {
		n += put_replacement(out + n);
	}
	return n;
}

static size_t utf8_repair_flush(struct utf8_repair *u, char *out)
{
	if (!u->n_held)
		return 0;
	u->n_held = 0;
	return put_replacement(out);
}

/* ---- GPT-2 byte-level alphabet --------------------------------------------------------------- */

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes take code points 256.. in byte
 * order, so that every byte is one visible character. */
static void byte_alphabet(uint16_t cp_of[256])
{
	uint16_t next = 256;
	for (unsigned b = 0; b < 256; b++) {
		bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
		cp_of[b] = printable ? (uint16_t)b : next++;
	}
}

/* ---- hash tables ----------------------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33; /* murmur3 finaliser */
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Capacity: a power of two at least twice n, so probes stay short. */
static size_t table_size(size_t n)
{
	size_t size = 16;
	while (size < 2 * n)
		size *= 2;
	return size;
}

static int strtab_init(struct strtab *t, size_t n)
{
	size_t size = table_size(n);
	t->slots = malloc(size * sizeof *t->slots);
	if (!t->slots)
		return -ENOMEM;
	for (size_t i = 0; i < size; i++)
		t->slots[i].idx = -1;
	t->mask = size - 1;
	return 0;
}

/* The slot holding string s[0..n) (hash h), or the empty slot where it would go. */
static size_t strtab_probe(const struct strtab *t, const char *arena, const struct strref *refs,
			   const char *s, size_t n, uint32_t h)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct strtab_slot *slot = &t->slots[i];
		if (slot->idx < 0)
			return i;
		const struct strref *r = &refs[slot->idx];
		if (slot->hash == h && r->len == n && memcmp(arena + r->off, s, n) == 0)
			return i;
	}
}

/* The index of string s[0..n), or -1. */
static int32_t strtab_find(const struct strtab *t, const char *arena, const struct strref *refs,
			   const char *s, size_t n)
{
	return t->slots[strtab_probe(t, arena, refs, s, n, hash_bytes(s, n))].idx;
}

/* Adds refs[idx] (whose text is arena + refs[idx].off); returns the index already holding the
 * same string, or -1 when it was new. */
static int32_t strtab_insert(struct strtab *t, const char *arena, const struct strref *refs,
			     int32_t idx)
{
	const char *s = arena + refs[idx].off;
	uint32_t h = hash_bytes(s, refs[idx].len);
	struct strtab_slot *slot = &t->slots[strtab_probe(t, arena, refs, s, refs[idx].len, h)];
	if (slot->idx >= 0)
		return slot->idx;
	*slot = (struct strtab_slot){ h, idx };
	return -1;
}

static const struct merge_slot *merge_find(const struct vlm_tokenizer *tok, int32_t left,
					   int32_t right)
{
	uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
	for (size_t i = hash_u64(key) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
		const struct merge_slot *slot = &tok->merges[i];
		if (slot->key == key)
			return slot;
		if (slot->key == UINT64_MAX)
			return NULL;
	}
}

/* ---- loading --------------------------------------------------------------------------------- */

struct loader {
	const char *path;
	vlm_err *err;
	struct vlm_tokenizer *tok;
};

static int load_fail(struct loader *l, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int load_fail(struct loader *l, int code, const char *fmt, ...)
{
	char detail[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	return vlm_err_set(l->err, code, "tokenizer: file '%s': %s", l->path, detail);
}

/* A JSON value that is absent or null. */
static bool json_absent(const json_t *v)
{
	return !v || json_is_null(v);
}

static bool json_flag(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

static const char *json_type_name(const json_t *obj)
{
	const char *type = json_string_value(json_object_get(obj, "type"));
	return type ? type : "(none)";
}

/* Checks the parts of tokenizer.json we do not implement are absent or compatible, and compiles
 * the Split regex. */
static int load_pipeline(struct loader *l, const json_t *root)
{
	const json_t *norm = json_object_get(root, "normalizer");
	if (!json_absent(norm))
		return load_fail(l, -ENOTSUP, "normalizer '%s' is not supported",
				 json_type_name(norm));
	const json_t *dec = json_object_get(root, "decoder");
	if (!json_is_object(dec) || strcmp(json_type_name(dec), "ByteLevel") != 0)
		return load_fail(l, -ENOTSUP, "decoder '%s' is not supported (only ByteLevel)",
				 json_absent(dec) ? "null" : json_type_name(dec));

	const json_t *pre = json_object_get(root, "pre_tokenizer");
	const json_t *list = json_object_get(pre, "pretokenizers");
	const json_t *split = json_array_get(list, 0), *bytelevel = json_array_get(list, 1);
	if (!json_is_object(pre) || strcmp(json_type_name(pre), "Sequence") != 0 ||
	    json_array_size(list) != 2 || strcmp(json_type_name(split), "Split") != 0 ||
	    strcmp(json_type_name(bytelevel), "ByteLevel") != 0)
		return load_fail(l, -ENOTSUP,
				 "pre_tokenizer must be Sequence[Split, ByteLevel] (found '%s')",
				 json_absent(pre) ? "null" : json_type_name(pre));
	const char *behavior = json_string_value(json_object_get(split, "behavior"));
	if (!behavior || strcmp(behavior, "Isolated") != 0 || json_flag(split, "invert"))
		return load_fail(l, -ENOTSUP,
				 "pre_tokenizer Split: behavior '%s'%s is not supported (only "
				 "Isolated, not inverted)",
				 behavior ? behavior : "(none)",
				 json_flag(split, "invert") ? " inverted" : "");
	if (json_flag(bytelevel, "add_prefix_space") || json_flag(bytelevel, "use_regex"))
		return load_fail(l, -ENOTSUP,
				 "pre_tokenizer ByteLevel with add_prefix_space or "
				 "use_regex is not supported");

	const json_t *pattern = json_object_get(split, "pattern");
	const json_t *regex = json_object_get(pattern, "Regex");
	const json_t *literal = json_object_get(pattern, "String");
	const json_t *source = json_is_string(regex) ? regex : literal;
	if (!json_is_string(source))
		return load_fail(l, -EBADMSG, "pre_tokenizer Split: pattern needs Regex or String");
	int code;
	PCRE2_SIZE at;
	uint32_t options = PCRE2_UTF | PCRE2_UCP | (source == literal ? PCRE2_LITERAL : 0);
	l->tok->split_re = pcre2_compile((PCRE2_SPTR)json_string_value(source),
					 json_string_length(source), options, &code, &at, NULL);
	if (!l->tok->split_re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof msg);
		return load_fail(l, -EBADMSG, "pre_tokenizer Split: regex error at offset %zu: %s",
				 (size_t)at, (const char *)msg);
	}
	/* Without JIT the interpreter gives the same result, only slower. */
	pcre2_jit_compile(l->tok->split_re, PCRE2_JIT_COMPLETE);
	return 0;
}

/* Checks the BPE model options we rely on. */
static int load_model_options(struct loader *l, const json_t *model)
{
	if (!json_is_object(model))
		return load_fail(l, -EBADMSG, "no \"model\" object");
	const char *type = json_string_value(json_object_get(model, "type"));
	if (!type || strcmp(type, "BPE") != 0)
		return load_fail(l, -ENOTSUP, "model type '%s' is not supported (only BPE)",
				 type ? type : "(none)");
	if (json_flag(model, "byte_fallback"))
		return load_fail(l, -ENOTSUP, "BPE byte_fallback is not supported");
	const json_t *dropout = json_object_get(model, "dropout");
	if (!json_absent(dropout) && json_number_value(dropout) != 0.0)
		return load_fail(l, -ENOTSUP, "BPE dropout is not supported");
	const char *affixes[] = { "continuing_subword_prefix", "end_of_word_suffix" };
	for (size_t i = 0; i < sizeof affixes / sizeof affixes[0]; i++) {
		const char *v = json_string_value(json_object_get(model, affixes[i]));
		if (v && *v)
			return load_fail(l, -ENOTSUP, "BPE %s is not supported", affixes[i]);
	}
	l->tok->ignore_merges = json_flag(model, "ignore_merges");
	return 0;
}

/* Largest id in the vocabulary and added tokens, checking each id's type and range. */
static int load_max_id(struct loader *l, const json_t *vocab, const json_t *added, int32_t *max)
{
	const char *key;
	size_t key_len;
	const json_t *v;
	*max = -1;
	json_object_keylen_foreach((json_t *)vocab, key, key_len, v)
	{
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 0 || id >= TOK_MAX_ID)
			return load_fail(l, -EBADMSG, "vocab entry '%.*s': id is not in [0, %d)",
					 (int)(key_len > 64 ? 64 : key_len), key, TOK_MAX_ID);
		if (id > *max)
			*max = (int32_t)id;
	}
	size_t i;
	json_array_foreach(added, i, v)
	{
		const json_t *idv = json_object_get(v, "id");
		json_int_t id = json_integer_value(idv);
		if (!json_is_integer(idv) || id < 0 || id >= TOK_MAX_ID ||
		    !json_is_string(json_object_get(v, "content")))
			return load_fail(l, -EBADMSG,
					 "added_tokens[%zu]: needs an id in [0, %d) and "
					 "a content string",
					 i, TOK_MAX_ID);
		if (id > *max)
			*max = (int32_t)id;
	}
	return 0;
}

/* Fills the id tables and the string -> id hash from model.vocab. */
static int load_vocab(struct loader *l, const json_t *vocab)
{
	struct vlm_tokenizer *tok = l->tok;
	const char *key;
	size_t key_len, total = 0;
	const json_t *v;
	json_object_keylen_foreach((json_t *)vocab, key, key_len, v) total += key_len;
	if (total >= UINT32_MAX)
		return load_fail(l, -E2BIG, "vocabulary text is too large");
	tok->vocab_text = malloc(total + 1);
	if (!tok->vocab_text || strtab_init(&tok->vocab, json_object_size(vocab)))
		return load_fail(l, -ENOMEM, "out of memory for the vocabulary");
	uint32_t off = 0;
	json_object_keylen_foreach((json_t *)vocab, key, key_len, v)
	{
		int32_t id = (int32_t)json_integer_value(v);
		if (tok->flags[id] & TOK_PRESENT)
			return load_fail(l, -EBADMSG, "vocab: id %d is used twice", id);
		memcpy(tok->vocab_text + off, key, key_len);
		tok->vocab_ref[id] = (struct strref){ off, (uint32_t)key_len };
		tok->flags[id] = TOK_PRESENT;
		strtab_insert(&tok->vocab, tok->vocab_text, tok->vocab_ref, id);
		off += (uint32_t)key_len;
	}
	byte_alphabet(tok->byte_cp);
	for (unsigned b = 0; b < 256; b++) {
		char spelling[4];
		size_t n = utf8_encode(tok->byte_cp[b], spelling);
		tok->byte_id[b] =
			strtab_find(&tok->vocab, tok->vocab_text, tok->vocab_ref, spelling, n);
		if (tok->byte_id[b] < 0)
			return load_fail(
				l, -EBADMSG,
				"vocab: no token for byte 0x%02x ('%.*s') of the byte-level "
				"alphabet",
				b, (int)n, spelling);
	}
	return 0;
}

/* One merge entry: "left right" or ["left", "right"]. */
static int load_merge_pair(struct loader *l, const json_t *m, size_t rank, const char **left,
			   size_t *left_len, const char **right, size_t *right_len)
{
	if (json_is_string(m)) {
		const char *s = json_string_value(m);
		size_t n = json_string_length(m);
		const char *space = memchr(s, ' ', n);
		if (!space || memchr(space + 1, ' ', n - (size_t)(space + 1 - s)))
			return load_fail(l, -EBADMSG,
					 "merges[%zu] '%s': not two tokens separated "
					 "by one space",
					 rank, s);
		*left = s;
		*left_len = (size_t)(space - s);
		*right = space + 1;
		*right_len = n - *left_len - 1;
		return 0;
	}
	const json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
	if (json_array_size(m) != 2 || !json_is_string(a) || !json_is_string(b))
		return load_fail(l, -EBADMSG, "merges[%zu]: neither \"a b\" nor [a, b]", rank);
	*left = json_string_value(a);
	*left_len = json_string_length(a);
	*right = json_string_value(b);
	*right_len = json_string_length(b);
	return 0;
}

static int load_merges(struct loader *l, const json_t *merges)
{
	struct vlm_tokenizer *tok = l->tok;
	if (!json_is_array(merges))
		return load_fail(l, -EBADMSG, "model.merges is missing or not an array");
	size_t n = json_array_size(merges), size = table_size(n), max_len = 0;
	if (n >= UINT32_MAX)
		return load_fail(l, -E2BIG, "too many merges");
	tok->merges = malloc(size * sizeof *tok->merges);
	for (int32_t id = 0; id < tok->n_ids; id++)
		if (tok->vocab_ref[id].len > max_len)
			max_len = tok->vocab_ref[id].len;
	char *joined = malloc(2 * max_len + 1);
	if (!tok->merges || !joined) {
		free(joined);
		return load_fail(l, -ENOMEM, "out of memory for %zu merges", n);
	}
	for (size_t i = 0; i < size; i++)
		tok->merges[i].key = UINT64_MAX;
	tok->merge_mask = size - 1;

	int rc = 0;
	for (size_t rank = 0; rank < n && !rc; rank++) {
		const char *a = NULL, *b = NULL;
		size_t na = 0, nb = 0;
		rc = load_merge_pair(l, json_array_get(merges, rank), rank, &a, &na, &b, &nb);
		if (rc)
			break;
		int32_t ia = strtab_find(&tok->vocab, tok->vocab_text, tok->vocab_ref, a, na);
		int32_t ib = strtab_find(&tok->vocab, tok->vocab_text, tok->vocab_ref, b, nb);
		int32_t merged = -1;
		if (ia >= 0 && ib >= 0) {
			memcpy(joined, a, na);
			memcpy(joined + na, b, nb);
			merged = strtab_find(&tok->vocab, tok->vocab_text, tok->vocab_ref, joined,
					     na + nb);
		}
		if (merged < 0) {
			rc = load_fail(l, -EBADMSG,
				       "merges[%zu] '%.*s' + '%.*s': %s is not in the vocabulary",
				       rank, (int)na, a, (int)nb, b,
				       ia < 0   ? "the left token"
				       : ib < 0 ? "the right token"
						: "the merged token");
			break;
		}
		/* A repeated pair takes its last rank, as the HF hash map does. */
		uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
		size_t s = hash_u64(key) & tok->merge_mask;
		while (tok->merges[s].key != UINT64_MAX && tok->merges[s].key != key)
			s = (s + 1) & tok->merge_mask;
		tok->merges[s] = (struct merge_slot){ key, (uint32_t)rank, merged };
	}
	free(joined);
	return rc;
}

static int cmp_added_by_first(const void *pa, const void *pb, void *ctx)
{
	const struct vlm_tokenizer *tok = ctx;
	const struct strref *a = &tok->added_ref[*(const uint32_t *)pa];
	const struct strref *b = &tok->added_ref[*(const uint32_t *)pb];
	uint8_t fa = (uint8_t)tok->added_text[a->off], fb = (uint8_t)tok->added_text[b->off];
	if (fa != fb)
		return fa < fb ? -1 : 1;
	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	return 0;
}

static int load_added(struct loader *l, const json_t *list)
{
	struct vlm_tokenizer *tok = l->tok;
	size_t n = json_array_size(list), total = 0, i;
	const json_t *v;
	json_array_foreach(list, i, v) total += json_string_length(json_object_get(v, "content"));
	if (total >= UINT32_MAX)
		return load_fail(l, -E2BIG, "added token text is too large");
	tok->added = calloc(n + 1, sizeof *tok->added);
	tok->added_ref = calloc(n + 1, sizeof *tok->added_ref);
	tok->added_text = malloc(total + 1);
	tok->by_first = malloc((n + 1) * sizeof *tok->by_first);
	if (!tok->added || !tok->added_ref || !tok->added_text || !tok->by_first ||
	    strtab_init(&tok->added_lookup, n))
		return load_fail(l, -ENOMEM, "out of memory for %zu added tokens", n);
	uint32_t off = 0;
	bool any_single_word = false;
	json_array_foreach(list, i, v)
	{
		const json_t *content = json_object_get(v, "content");
		const char *text = json_string_value(content);
		size_t len = json_string_length(content);
		struct added_token *a = &tok->added[i];
		*a = (struct added_token){
			.id = (int32_t)json_integer_value(json_object_get(v, "id")),
			.special = json_flag(v, "special"),
			.lstrip = json_flag(v, "lstrip"),
			.rstrip = json_flag(v, "rstrip"),
			.single_word = json_flag(v, "single_word"),
			.normalized = json_flag(v, "normalized"),
		};
		if (len == 0)
			return load_fail(l, -EBADMSG, "added_tokens[%zu]: empty content", i);
		if (tok->flags[a->id] & TOK_ADDED)
			return load_fail(l, -EBADMSG, "added_tokens[%zu] '%s': id %d is used twice",
					 i, text, a->id);
		memcpy(tok->added_text + off, text, len);
		tok->added_ref[i] = (struct strref){ off, (uint32_t)len };
		if (strtab_insert(&tok->added_lookup, tok->added_text, tok->added_ref,
				  (int32_t)i) >= 0)
			return load_fail(l, -EBADMSG, "added_tokens[%zu] '%s': content repeated", i,
					 text);
		off += (uint32_t)len;
		tok->flags[a->id] = TOK_PRESENT | TOK_ADDED | (a->special ? TOK_SPECIAL : 0);
		tok->by_first[i] = (uint32_t)i;
		any_single_word |= a->single_word;
	}
	tok->n_added = n;
	qsort_r(tok->by_first, n, sizeof *tok->by_first, cmp_added_by_first, tok);
	size_t k = 0;
	for (unsigned b = 0; b <= 256; b++) {
		while (k < n && (uint8_t)tok->added_text[tok->added_ref[tok->by_first[k]].off] < b)
			k++;
		tok->first[b] = (uint32_t)k;
	}
	if (any_single_word) {
		/* Word characters as the Rust regex crate's \w, which HF's single_word test uses. */
		static const char word[] = "[\\p{L}\\p{Nl}\\p{Nd}\\p{M}\\p{Pc}]";
		int code;
		PCRE2_SIZE at;
		tok->word_re =
			pcre2_compile((PCRE2_SPTR)word, PCRE2_ZERO_TERMINATED,
				      PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &at, NULL);
		if (!tok->word_re)
			return load_fail(l, -ENOMEM, "cannot compile the word-character class");
	}
	return 0;
}

/* What each id decodes to: an added token its content; a vocabulary entry the bytes its
 * byte-level characters stand for, or its own UTF-8 when a character is outside the alphabet (as
 * the HF ByteLevel decoder does). */
static int load_decode_table(struct loader *l)
{
	struct vlm_tokenizer *tok = l->tok;
	size_t total = 0;
	for (int32_t id = 0; id < tok->n_ids; id++)
		total += tok->vocab_ref[id].len;
	for (size_t i = 0; i < tok->n_added; i++)
		total += tok->added_ref[i].len;
	tok->bytes_text = malloc(total + 1);
	if (!tok->bytes_text)
		return load_fail(l, -ENOMEM, "out of memory for the decode table");
	int16_t inverse[512]; /* byte_cp's largest code point is 323 */
	for (unsigned cp = 0; cp < 512; cp++)
		inverse[cp] = -1;
	for (unsigned b = 0; b < 256; b++)
		inverse[tok->byte_cp[b]] = (int16_t)b;

	uint32_t off = 0;
	for (int32_t id = 0; id < tok->n_ids; id++) {
		const struct strref *r = &tok->vocab_ref[id];
		const uint8_t *s = (const uint8_t *)tok->vocab_text + r->off;
		uint32_t n = 0;
		bool mapped = true;
		for (size_t i = 0, len; i < r->len && mapped; i += len) {
			uint32_t cp = utf8_decode(s + i, &len);
			mapped = cp < 512 && inverse[cp] >= 0;
			if (mapped)
				tok->bytes_text[off + n++] = (char)inverse[cp];
		}
		if (!mapped) {
			memcpy(tok->bytes_text + off, s, r->len);
			n = r->len;
		}
		tok->bytes_ref[id] = (struct strref){ off, n };
		off += n;
	}
	for (size_t i = 0; i < tok->n_added; i++) {
		const struct strref *r = &tok->added_ref[i];
		memcpy(tok->bytes_text + off, tok->added_text + r->off, r->len);
		tok->bytes_ref[tok->added[i].id] = (struct strref){ off, r->len };
		off += r->len;
	}
	for (int32_t id = 0; id < tok->n_ids; id++)
		if (tok->bytes_ref[id].len > tok->max_token_bytes)
			tok->max_token_bytes = tok->bytes_ref[id].len;
	return 0;
}

static int load_json(struct loader *l, const json_t *root)
{
	struct vlm_tokenizer *tok = l->tok;
	const json_t *model = json_object_get(root, "model");
	int rc = load_model_options(l, model);
	if (rc)
		return rc;
	const json_t *vocab = json_object_get(model, "vocab");
	const json_t *added = json_object_get(root, "added_tokens");
	if (!json_is_object(vocab))
		return load_fail(l, -EBADMSG, "model.vocab is missing or not an object");
	if (!json_absent(added) && !json_is_array(added))
		return load_fail(l, -EBADMSG, "added_tokens is not an array");
	int32_t max_id;
	rc = load_max_id(l, vocab, added, &max_id);
	if (rc)
		return rc;
	tok->n_ids = max_id + 1;
	size_t n = (size_t)tok->n_ids + 1;
	tok->flags = calloc(n, sizeof *tok->flags);
	tok->vocab_ref = calloc(n, sizeof *tok->vocab_ref);
	tok->bytes_ref = calloc(n, sizeof *tok->bytes_ref);
	if (!tok->flags || !tok->vocab_ref || !tok->bytes_ref)
		return load_fail(l, -ENOMEM, "out of memory for %d token ids", tok->n_ids);
	if ((rc = load_vocab(l, vocab)) ||
	    (rc = load_merges(l, json_object_get(model, "merges"))) ||
	    (rc = load_added(l, added)) || (rc = load_decode_table(l)) ||
	    (rc = load_pipeline(l, root)))
		return rc;
	return 0;
}

int vlm_tokenizer_load(const char *path, struct vlm_tokenizer **out, vlm_err *err)
{
	struct loader l = { .path = path, .err = err };
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return load_fail(&l, -errno, "cannot open: %s", strerror(errno));
	json_error_t jerr;
	json_t *root = json_loadf(f, JSON_ALLOW_NUL, &jerr);
	fclose(f);
	if (!json_is_object(root)) {
		int rc = root ? load_fail(&l, -EBADMSG, "not a JSON object")
			      : load_fail(&l, -EBADMSG, "not JSON: line %d: %s", jerr.line,
					  jerr.text);
		json_decref(root);
		return rc;
	}
	l.tok = calloc(1, sizeof *l.tok);
	int rc = l.tok ? load_json(&l, root) : load_fail(&l, -ENOMEM, "out of memory");
	json_decref(root);
	if (rc) {
		vlm_tokenizer_free(l.tok);
		return rc;
	}
	*out = l.tok;
	return 0;
}

void vlm_tokenizer_free(struct vlm_tokenizer *tok)
{
	if (!tok)
		return;
	free(tok->flags);
	free(tok->vocab_ref);
	free(tok->bytes_ref);
	free(tok->vocab_text);
	free(tok->bytes_text);
	free(tok->vocab.slots);
	free(tok->merges);
	free(tok->added);
	free(tok->added_ref);
	free(tok->added_text);
	free(tok->added_lookup.slots);
	free(tok->by_first);
	pcre2_code_free(tok->split_re);
	pcre2_code_free(tok->word_re);
	free(tok);
}

/* ---- lookups --------------------------------------------------------------------------------- */

int32_t vlm_tokenizer_vocab_size(const struct vlm_tokenizer *tok)
{
	return tok->n_ids;
}

int32_t vlm_token_id(const struct vlm_tokenizer *tok, const char *text)
{
	size_t n = strlen(text);
	int32_t i = strtab_find(&tok->added_lookup, tok->added_text, tok->added_ref, text, n);
	if (i >= 0)
		return tok->added[i].id;
	return strtab_find(&tok->vocab, tok->vocab_text, tok->vocab_ref, text, n);
}

static bool token_valid(const struct vlm_tokenizer *tok, int32_t id)
{
	return id >= 0 && id < tok->n_ids && (tok->flags[id] & TOK_PRESENT);
}

bool vlm_token_is_special(const struct vlm_tokenizer *tok, int32_t id)
{
	return token_valid(tok, id) && (tok->flags[id] & TOK_SPECIAL);
}

const char *vlm_token_bytes(const struct vlm_tokenizer *tok, int32_t id, size_t *len)
{
	if (!token_valid(tok, id)) {
		*len = 0;
		return NULL;
	}
	*len = tok->bytes_ref[id].len;
	return tok->bytes_text + tok->bytes_ref[id].off;
}

/* ---- encoding -------------------------------------------------------------------------------- */

struct bpe_symbol {
	int32_t id, prev, next; /* prev/next: neighbouring live symbols, -1 at the ends */
	bool live;
};

/* A candidate merge of the symbol at pos with its right neighbour into id. */
struct bpe_merge {
	uint32_t rank, pos;
	int32_t id;
};

/* Pieces up to this many bytes are merged in the encoder's inline scratch. */
#define BPE_INLINE 64

struct encoder {
	const struct vlm_tokenizer *tok;
	const char *text;
	const struct vlm_text_span *literal;
	size_t n_literal;
	int32_t *ids;
	size_t cap, n; /* n counts every id, also those past cap */
	pcre2_match_data *md;
	vlm_err *err;
	/* Scratch for one piece of up to scratch_cap bytes: n symbols, 3n merges (n - 1 initial
	 * pairs plus at most two per merge), 2n bytes of byte-level spelling. */
	struct bpe_symbol *syms;
	struct bpe_merge *heap;
	char *spelled;
	size_t scratch_cap;
	void *scratch_alloc;
	struct bpe_symbol syms_inline[BPE_INLINE];
	struct bpe_merge heap_inline[3 * BPE_INLINE];
	char spelled_inline[2 * BPE_INLINE];
};

static void emit(struct encoder *e, int32_t id)
{
	if (e->n < e->cap)
		e->ids[e->n] = id;
	e->n++;
}

static int scratch_reserve(struct encoder *e, size_t n)
{
	if (n <= e->scratch_cap)
		return 0;
	size_t cap = e->scratch_cap * 2 > n ? e->scratch_cap * 2 : n;
	void *block = malloc(cap * (sizeof(struct bpe_symbol) + 3 * sizeof(struct bpe_merge) + 2));
	if (!block)
		return vlm_err_set(e->err, -ENOMEM,
				   "tokenizer: input text: out of memory for a "
				   "%zu-byte piece",
				   n);
	free(e->scratch_alloc);
	e->scratch_alloc = block;
	e->syms = block;
	e->heap = (struct bpe_merge *)(e->syms + cap);
	e->spelled = (char *)(e->heap + 3 * cap);
	e->scratch_cap = cap;
	return 0;
}

static bool merge_before(const struct bpe_merge *a, const struct bpe_merge *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct bpe_merge *heap, size_t *n, struct bpe_merge m)
{
	size_t i = (*n)++;
	while (i > 0 && merge_before(&m, &heap[(i - 1) / 2])) {
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = m;
}

static struct bpe_merge heap_pop(struct bpe_merge *heap, size_t *n)
{
	struct bpe_merge top = heap[0], last = heap[--*n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && merge_before(&heap[c + 1], &heap[c]))
			c++;
		if (!merge_before(&heap[c], &last))
			break;
		heap[i] = heap[c];
		i = c;
	}
	heap[i] = last;
	return top;
}

static void push_pair(struct encoder *e, size_t *n_heap, int32_t left_pos)
{
	const struct bpe_symbol *left = &e->syms[left_pos];
	if (left->next < 0)
		return;
	const struct merge_slot *m = merge_find(e->tok, left->id, e->syms[left->next].id);
	if (m)
		heap_push(e->heap, n_heap,
			  (struct bpe_merge){ m->rank, (uint32_t)left_pos, m->id });
}

/* Encodes one pre-tokenized piece: lowest-ranked adjacent pair first, leftmost on ties, as HF. */
static int encode_piece(struct encoder *e, const uint8_t *s, size_t n)
{
	const struct vlm_tokenizer *tok = e->tok;
	if (n == 1) {
		emit(e, tok->byte_id[s[0]]);
		return 0;
	}
	int rc = scratch_reserve(e, n);
	if (rc)
		return rc;
	if (tok->ignore_merges) {
		size_t len = 0;
		for (size_t i = 0; i < n; i++)
			len += utf8_encode(tok->byte_cp[s[i]], e->spelled + len);
		int32_t id =
			strtab_find(&tok->vocab, tok->vocab_text, tok->vocab_ref, e->spelled, len);
		if (id >= 0) {
			emit(e, id);
			return 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		e->syms[i] = (struct bpe_symbol){ tok->byte_id[s[i]], (int32_t)i - 1,
						  i + 1 < n ? (int32_t)i + 1 : -1, true };
	size_t n_heap = 0;
	for (size_t i = 0; i + 1 < n; i++)
		push_pair(e, &n_heap, (int32_t)i);
	while (n_heap) {
		struct bpe_merge top = heap_pop(e->heap, &n_heap);
		struct bpe_symbol *left = &e->syms[top.pos];
		if (!left->live || left->next < 0)
			continue;
		struct bpe_symbol *right = &e->syms[left->next];
		/* Entries go stale when a neighbour merged since they were queued. */
		const struct merge_slot *m = merge_find(tok, left->id, right->id);
		if (!m || m->id != top.id)
			continue;
		left->id = top.id;
		right->live = false;
		left->next = right->next;
		if (right->next >= 0)
			e->syms[right->next].prev = (int32_t)top.pos;
		if (left->prev >= 0)
			push_pair(e, &n_heap, left->prev);
		push_pair(e, &n_heap, (int32_t)top.pos);
	}
	for (int32_t i = 0; i >= 0; i = e->syms[i].next)
		emit(e, e->syms[i].id);
	return 0;
}

static int regex_fail(struct encoder *e, int code)
{
	PCRE2_UCHAR msg[160];
	pcre2_get_error_message(code, msg, sizeof msg);
	return vlm_err_set(e->err, code == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EIO,
			   "tokenizer: input text: pre-tokenizer regex failed: %s",
			   (const char *)msg);
}

/* Text between added tokens: every regex match is a piece and so is every gap between matches
 * (Split behaviour "Isolated"). The segment is the whole subject, so lookarounds stop at its
 * edges as in HF, which splits each segment as a separate string. */
static int encode_plain(struct encoder *e, size_t start, size_t end)
{
	const uint8_t *seg = (const uint8_t *)e->text + start;
	size_t len = end - start, done = 0, from = 0;
	int rc = 0;
	while (from < len && !rc) {
		int m = pcre2_match(e->tok->split_re, seg, len, from, PCRE2_NO_UTF_CHECK, e->md,
				    NULL);
		if (m == PCRE2_ERROR_NOMATCH)
			break;
		if (m < 0)
			return regex_fail(e, m);
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
		if (ov[1] == ov[0]) {
			from = ov[0] + utf8_char_len(seg[ov[0]]);
			continue;
		}
		if (ov[0] > done)
			rc = encode_piece(e, seg + done, ov[0] - done);
		if (!rc)
			rc = encode_piece(e, seg + ov[0], ov[1] - ov[0]);
		done = from = ov[1];
	}
	if (!rc && done < len)
		rc = encode_piece(e, seg + done, len - done);
	return rc;
}

static bool overlaps_literal(const struct encoder *e, size_t start, size_t end)
{
	for (size_t i = 0; i < e->n_literal; i++)
		if (start < e->literal[i].start + e->literal[i].len && e->literal[i].start < end)
			return true;
	return false;
}

/* Start of the character that ends at `pos` (pos > 0, valid UTF-8). */
static size_t char_before(const char *text, size_t pos)
{
	do
		pos--;
	while (pos > 0 && ((uint8_t)text[pos] & 0xc0) == 0x80);
	return pos;
}

static bool space_at(const char *text, size_t pos)
{
	size_t len;
	return is_unicode_space(utf8_decode((const uint8_t *)text + pos, &len));
}

static bool word_at(const struct encoder *e, size_t pos)
{
	uint8_t b = (uint8_t)e->text[pos];
	if (b < 0x80)
		return (b >= '0' && b <= '9') || ((b | 0x20) >= 'a' && (b | 0x20) <= 'z') ||
		       b == '_';
	return pcre2_match(e->tok->word_re, (PCRE2_SPTR)e->text + pos, utf8_char_len(b), 0,
			   PCRE2_NO_UTF_CHECK, e->md, NULL) > 0;
}

/* Leftmost-longest added token of this pass starting in [pos, end). */
static bool find_added(const struct encoder *e, bool normalized, size_t pos, size_t end,
		       size_t *index, size_t *at)
{
	const struct vlm_tokenizer *tok = e->tok;
	for (size_t p = pos; p < end; p++) {
		uint8_t b = (uint8_t)e->text[p];
		for (uint32_t k = tok->first[b]; k < tok->first[b + 1]; k++) {
			size_t i = tok->by_first[k];
			const struct strref *r = &tok->added_ref[i];
			if (tok->added[i].normalized == normalized && r->len <= end - p &&
			    memcmp(e->text + p, tok->added_text + r->off, r->len) == 0) {
				*index = i;
				*at = p;
				return true;
			}
		}
	}
	return false;
}

static int encode_added(struct encoder *e, size_t start, size_t end, bool normalized);

/* The stage after an added-token pass: the normalized-token pass, then plain text. */
static int encode_segment(struct encoder *e, size_t start, size_t end, bool normalized)
{
	return normalized ? encode_plain(e, start, end) : encode_added(e, start, end, true);
}

/* One pass of added-token splitting over text[start, end) (HF AddedVocabulary: matches of
 * tokens with this `normalized` flag become ids; the gaps go to the next stage). */
static int encode_added(struct encoder *e, size_t start, size_t end, bool normalized)
{
	const struct vlm_tokenizer *tok = e->tok;
	size_t done = start, pos = start, index, at;
	int rc = 0;
	while (!rc && pos < end && find_added(e, normalized, pos, end, &index, &at)) {
		const struct added_token *a = &tok->added[index];
		size_t stop = at + tok->added_ref[index].len;
		pos = stop;
		if (a->special && overlaps_literal(e, at, stop))
			continue;
		if (a->single_word && ((at > start && word_at(e, char_before(e->text, at))) ||
				       (stop < end && word_at(e, stop))))
			continue;
		if (a->lstrip)
			while (at > done && space_at(e->text, char_before(e->text, at)))
				at = char_before(e->text, at);
		if (a->rstrip)
			while (stop < end && space_at(e->text, stop))
				stop += utf8_char_len((uint8_t)e->text[stop]);
		if (at > done)
			rc = encode_segment(e, done, at, normalized);
		emit(e, a->id);
		done = pos = stop;
	}
	if (!rc && done < end)
		rc = encode_segment(e, done, end, normalized);
	return rc;
}

int vlm_tokenize_spans(const struct vlm_tokenizer *tok, const char *text, size_t len,
		       const struct vlm_text_span *literal, size_t n_literal, int32_t *ids,
		       size_t cap, size_t *n_ids, vlm_err *err)
{
	*n_ids = 0;
	size_t bad = utf8_check((const uint8_t *)text, len);
	if (bad < len)
		return vlm_err_set(err, -EINVAL, "tokenizer: input text: invalid UTF-8 at byte %zu",
				   bad);
	for (size_t i = 0; i < n_literal; i++)
		if (literal[i].start > len || literal[i].len > len - literal[i].start)
			return vlm_err_set(err, -EINVAL,
					   "tokenizer: input text: literal span %zu "
					   "lies outside the %zu-byte text",
					   i, len);
	struct encoder e = {
		.tok = tok,
		.text = text,
		.literal = literal,
		.n_literal = n_literal,
		.ids = ids,
		.cap = cap,
		.err = err,
		.scratch_cap = BPE_INLINE,
	};
	e.syms = e.syms_inline;
	e.heap = e.heap_inline;
	e.spelled = e.spelled_inline;
	e.md = pcre2_match_data_create_from_pattern(tok->split_re, NULL);
	if (!e.md)
		return vlm_err_set(err, -ENOMEM, "tokenizer: input text: out of memory");
	int rc = encode_added(&e, 0, len, false);
	pcre2_match_data_free(e.md);
	free(e.scratch_alloc);
	if (rc)
		return rc;
	*n_ids = e.n;
	if (e.n > cap)
		return vlm_err_set(err, -E2BIG,
				   "tokenizer: input text: needs %zu ids, room for %zu", e.n, cap);
	return 0;
}

int vlm_tokenize(const struct vlm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
		 size_t cap, size_t *n_ids, vlm_err *err)
{
	return vlm_tokenize_spans(tok, text, len, NULL, 0, ids, cap, n_ids, err);
}

/* ---- decoding -------------------------------------------------------------------------------- */

static int bad_id(vlm_err *err, int32_t id, const struct vlm_tokenizer *tok)
{
	return vlm_err_set(err, -EINVAL, "tokenizer: token id %d: not in the vocabulary (size %d)",
			   id, tok->n_ids);
}

/* Appends what one token decodes to; at most 3 bytes per byte it or held bytes contribute. */
static size_t decode_token(const struct vlm_tokenizer *tok, struct utf8_repair *u, int32_t id,
			   bool skip_special, char *out)
{
	uint8_t flags = tok->flags[id];
	if (skip_special && (flags & TOK_SPECIAL))
		return 0;
	const struct strref *r = &tok->bytes_ref[id];
	const char *s = tok->bytes_text + r->off;
	size_t n = 0;
	if (flags & TOK_ADDED) {
		/* HF decodes each run of regular tokens on its own; added tokens stand between. */
		n = utf8_repair_flush(u, out);
		memcpy(out + n, s, r->len);
		return n + r->len;
	}
	for (size_t i = 0; i < r->len; i++)
		n += utf8_repair_feed(u, (uint8_t)s[i], out + n);
	return n;
}

int vlm_detokenize(const struct vlm_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
		   char **out, size_t *out_len, vlm_err *err)
{
	*out = NULL;
	*out_len = 0;
	size_t bound = 4;
	for (size_t i = 0; i < n; i++) {
		if (!token_valid(tok, ids[i]))
			return bad_id(err, ids[i], tok);
		bound += 3 * (size_t)tok->bytes_ref[ids[i]].len;
	}
	char *buf = malloc(bound);
	if (!buf)
		return vlm_err_set(err, -ENOMEM, "tokenizer: decode: out of memory for %zu ids", n);
	struct utf8_repair u = { 0 };
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += decode_token(tok, &u, ids[i], skip_special, buf + len);
	len += utf8_repair_flush(&u, buf + len);
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

struct vlm_detok_stream {
	const struct vlm_tokenizer *tok;
	bool skip_special;
	struct utf8_repair u;
	char out[]; /* 3 * (max_token_bytes + 3) + 1: one token plus held bytes, all replaced */
};

int vlm_detok_stream_new(const struct vlm_tokenizer *tok, bool skip_special,
			 struct vlm_detok_stream **out, vlm_err *err)
{
	*out = calloc(1, sizeof **out + 3 * (tok->max_token_bytes + 3) + 1);
	if (!*out)
		return vlm_err_set(err, -ENOMEM, "tokenizer: decode stream: out of memory");
	(*out)->tok = tok;
	(*out)->skip_special = skip_special;
	return 0;
}

void vlm_detok_stream_free(struct vlm_detok_stream *s)
{
	free(s);
}

void vlm_detok_stream_reset(struct vlm_detok_stream *s)
{
	s->u = (struct utf8_repair){ 0 };
}

int vlm_detok_stream_push(struct vlm_detok_stream *s, int32_t id, const char **text, size_t *len,
			  vlm_err *err)
{
	*text = s->out;
	*len = 0;
	s->out[0] = '\0';
	if (!token_valid(s->tok, id))
		return bad_id(err, id, s->tok);
	*len = decode_token(s->tok, &s->u, id, s->skip_special, s->out);
	s->out[*len] = '\0';
	return 0;
}

void vlm_detok_stream_flush(struct vlm_detok_stream *s, const char **text, size_t *len)
{
	*len = utf8_repair_flush(&s->u, s->out);
	s->out[*len] = '\0';
	*text = s->out;
}
