/* The chat prompt of GLM-4.6V in one place (docs glm4v.md §7): the token ids of one user turn
 * with images and a question, thinking disabled, and the set of tokens that end generation.
 * Stateless; safe to call from any thread with a shared tokenizer. */
#ifndef VLM_CHAT_H
#define VLM_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"
#include "vlm.h"

struct vlm_chat_turn {
	const char *system;              /* optional system message (UTF-8), NULL for none */
	const char *text;                /* the user's question (UTF-8), after the images */
	size_t n_images;
	const size_t *n_image_tokens;    /* [n_images] <|image|> copies per image, each > 0 */
};

/* Builds
 *   [gMASK]<sop>[<|system|>\n SYSTEM]<|user|>\n
 *   (<|begin_of_image|> <|image|> x n_image_tokens[i] <|end_of_image|>)*  TEXT/nothink
 *   <|assistant|>\n<think></think>\n
 * ("/nothink" not added again when TEXT already ends with it) and tokenizes it as the HF
 * processor would, except that SYSTEM and TEXT never produce special tokens (a document cannot
 * forge a turn). Control tokens are found in the tokenizer by their spelling; image_token_id
 * comes from config.json and must be the tokenizer's <|image|> (else -EINVAL). *ids (*n_ids
 * entries) is malloc'd and owned by the caller. */
int vlm_chat_build(const struct vlm_tokenizer *tok, int32_t image_token_id,
		   const struct vlm_chat_turn *turn, int32_t **ids, size_t *n_ids, vlm_err *err);

/* The tokens that end generation: eos_ids (generation_config.json) plus the turn openers
 * <|user|> and <|observation|> where the tokenizer has them, sorted and without repeats, in
 * stop[0..*n_stop). cap >= n_eos + 2 always suffices (else -E2BIG); an eos id that is not a token
 * gives -EINVAL. */
int vlm_chat_stop_tokens(const struct vlm_tokenizer *tok, const int32_t *eos_ids, size_t n_eos,
			 int32_t *stop, size_t cap, size_t *n_stop, vlm_err *err);

#endif
