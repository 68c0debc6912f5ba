/* The text tokenizer: a byte-level BPE loaded from a Hugging Face tokenizer.json, encoding text to
 * token ids and decoding ids back to UTF-8 the way the `tokenizers` library does.
 *
 * Everything comes from the file: vocabulary, merges, added (special) tokens and the pre-tokenizer
 * regex. A loaded tokenizer is immutable, so one instance may be shared by any number of threads;
 * a decode stream belongs to one thread. */
#ifndef VLM_TOKENIZER_H
#define VLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vlm.h"

struct vlm_tokenizer;

/* Loads tokenizer.json. Refuses (-ENOTSUP) anything but a BPE model with a ByteLevel decoder, no
 * normalizer, and a pre-tokenizer that is Sequence[Split(regex, Isolated), ByteLevel(no regex)];
 * corrupt files give -EBADMSG, an unreadable file -ENOENT/-EIO. On success *out is owned by the
 * caller (vlm_tokenizer_free). */
int vlm_tokenizer_load(const char *path, struct vlm_tokenizer **out, vlm_err *err);
void vlm_tokenizer_free(struct vlm_tokenizer *tok); /* accepts NULL */

/* One more than the largest token id (vocabulary and added tokens). */
int32_t vlm_tokenizer_vocab_size(const struct vlm_tokenizer *tok);

/* The id of the token spelled `text` exactly as in tokenizer.json (added tokens first, then the
 * vocabulary, whose entries are in the byte-level alphabet: " a" is "Ġa"); -1 if there is none. */
int32_t vlm_token_id(const struct vlm_tokenizer *tok, const char *text);

/* True for added tokens flagged "special" (those decoding with skip_special drops). */
bool vlm_token_is_special(const struct vlm_tokenizer *tok, int32_t id);

/* The UTF-8 bytes token `id` stands for (byte-level decoded; an added token's literal content),
 * borrowed from the tokenizer; NULL with *len 0 for an id that is not a token. A regular token's
 * bytes may be part of a multi-byte character. */
const char *vlm_token_bytes(const struct vlm_tokenizer *tok, int32_t id, size_t *len);

/* Encodes `len` bytes of UTF-8 `text` (NULs allowed) into ids[0..cap): added tokens are matched
 * first (longest match, left to right), then each stretch between them is pre-tokenized and BPE
 * merged. *n_ids receives the number of ids the text needs even when that exceeds cap (then
 * -E2BIG); cap >= len always suffices. Invalid UTF-8 gives -EINVAL. Adds no BOS or template. */
int vlm_tokenize(const struct vlm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
		 size_t cap, size_t *n_ids, vlm_err *err);

/* A byte range of the text given to vlm_tokenize_spans. */
struct vlm_text_span {
	size_t start, len;
};

/* vlm_tokenize, except that special added tokens are recognised only where they lie wholly
 * outside every span in literal[0..n_literal): text a user supplied goes there, so it can never
 * forge a control token (non-special added tokens still match inside, as with the `tokenizers`
 * option encode_special_tokens). */
int vlm_tokenize_spans(const struct vlm_tokenizer *tok, const char *text, size_t len,
		       const struct vlm_text_span *literal, size_t n_literal, int32_t *ids,
		       size_t cap, size_t *n_ids, vlm_err *err);

/* Decodes ids[0..n) into a NUL-terminated malloc'd string (*out, length *out_len, owned by the
 * caller): regular tokens are byte-level decoded and each run of them is made valid UTF-8 with one
 * U+FFFD per invalid sequence; added tokens contribute their content; with skip_special, special
 * tokens are dropped. An id outside the vocabulary gives -EINVAL. */
int vlm_detokenize(const struct vlm_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
		   char **out, size_t *out_len, vlm_err *err);

/* Incremental decoding for generation: fed one id at a time, it returns only whole UTF-8
 * characters and holds back a character split across tokens, so that the pieces of a stream
 * concatenate to exactly vlm_detokenize of all its ids. The stream borrows the tokenizer, which
 * must outlive it. Pushing and flushing never allocate. */
struct vlm_detok_stream;

int vlm_detok_stream_new(const struct vlm_tokenizer *tok, bool skip_special,
			 struct vlm_detok_stream **out, vlm_err *err);
void vlm_detok_stream_free(struct vlm_detok_stream *s); /* accepts NULL */
/* Forgets held bytes, for reuse on a new sequence. */
void vlm_detok_stream_reset(struct vlm_detok_stream *s);
/* Adds one id; *text (length *len, NUL-terminated, possibly empty) is the newly completed text,
 * valid until the next call on the stream. -EINVAL for an id outside the vocabulary. */
int vlm_detok_stream_push(struct vlm_detok_stream *s, int32_t id, const char **text, size_t *len,
			  vlm_err *err);
/* Ends the sequence: returns the held bytes, each incomplete character as U+FFFD. */
void vlm_detok_stream_flush(struct vlm_detok_stream *s, const char **text, size_t *len);

#endif
