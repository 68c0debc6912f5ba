/* The chat prompt, in one place: the token ids of a single user turn with images and text,
 * thinking disabled, in GLM-4.6V's chat format (spec glm4v.md §7):
 *
 *   [gMASK]<sop>[<|system|>\nSYSTEM]<|user|>\n
 *   (<|begin_of_image|><|image|> x n_i<|end_of_image|>)*  TEXT/nothink
 *   <|assistant|>\n<think></think>\n
 *
 * Special tokens are looked up in the tokenizer by their spelling; the image placeholder id comes
 * from config.json and must be the tokenizer's <|image|>. The user's text is encoded with special
 * tokens treated as plain text, so a document cannot smuggle in a turn marker. */
#ifndef VLM_CHAT_H
#define VLM_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"
#include "vlm.h"

/* *ids (malloc'd, caller frees) receives the prompt; image_tokens[i] is image i's merged token
 * count. system may be NULL. Errors: -EBADMSG when the tokenizer lacks a chat token or its
 * <|image|> is not image_token_id; -ENOMEM. */
int vlm_chat_prompt(const struct vlm_tokenizer *tok, int32_t image_token_id, const char *system,
		    const char *text, const int64_t *image_tokens, int n_images, int32_t **ids,
		    size_t *n_ids, vlm_err *err);

#endif
