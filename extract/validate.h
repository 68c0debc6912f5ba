/* Validation of a model's answer against its schema: normalisation, type, required, pattern,
 * enum, range, cross-field rules, per-field confidence and the overall status.
 *
 * Paths name concrete values: "seller.name", "items[0].amount" (0-based element index). The
 * constrained decoder reports evidence with the same paths. */
#ifndef EX_VALIDATE_H
#define EX_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "schema.h"

/* What the model produced for one value: the log-probabilities of the tokens that spelled it
 * (borrowed for the call) and the page it was read from (1-based, 0 unknown). */
struct ex_field_evidence {
	const char *path;
	const float *logprobs;
	size_t n;
	int page;
};

enum ex_status {
	EX_STATUS_OK,           /* every field valid and at or above the confidence threshold */
	EX_STATUS_NEEDS_REVIEW, /* usable, but `review` lists fields a person should look at */
	EX_STATUS_FAILED,       /* no usable output; `error` says why */
	EX_STATUS_COUNT
};
const char *ex_status_name(enum ex_status status); /* "ok", "needs_review", "failed" */

struct ex_field_result {
	char *path;                   /* concrete path */
	const struct ex_field *field; /* NULL for a key the schema does not have */
	json_t *value; /* owned: normalised when it could be, else as the model wrote it; null
			 * when absent */
	bool valid;
	json_t *errors;    /* owned array of strings, one per problem */
	double confidence; /* 0..1, see ex_confidence; 0 without evidence */
	int page;          /* from the evidence; 0 unknown */
};

struct ex_validation {
	enum ex_status status;
	char *error;  /* EX_STATUS_FAILED: why; else NULL */
	json_t *data; /* owned: the answer with normalised values (an object), NULL if failed */
	struct ex_field_result *fields; /* one per scalar value, null value or misplaced value */
	size_t n_fields;
	json_t *review; /* owned array of {"field", "reason", "message"}; reason is "invalid",
			   * "rule" or "low_confidence" */
};

/* Confidence of a value from its tokens' log-probabilities: the probability of the least likely
 * token, exp(min logprob). The weakest token decides because one misread digit makes an amount or
 * an invoice number wrong however sure the model was of the others; a mean would hide it. 0 for
 * no tokens. */
double ex_confidence(const float *logprobs, size_t n);

/* Validates `output` (the model's JSON; borrowed) against `schema`. A missing or non-object
 * output gives status EX_STATUS_FAILED, not an error return. *out is caller-owned (free with
 * ex_validation_free). Returns 0 or -ENOMEM. */
int ex_validate(const struct ex_schema *schema, const json_t *output,
		const struct ex_field_evidence *evidence, size_t n_evidence,
		struct ex_validation **out, vlm_err *err);

/* A result with status EX_STATUS_FAILED and `error` (for a run that produced no output). */
int ex_validation_failed(const char *error, struct ex_validation **out, vlm_err *err);

void ex_validation_free(struct ex_validation *v); /* accepts NULL */

/* The value normalisers validation uses, exposed for tests and the scoring tool.
 * ex_decimal_normalize: "1,296.00" -> "1296.00", "1.296,00" -> "1296.00" (eu), "¥ 1 296" ->
 * "1296"; writes a canonical decimal (optional '-', digits, optional '.' and digits) into out.
 * ex_date_normalize: writes "YYYY-MM-DD". Both return 0, or -EINVAL with `why` (a short
 * reason) filled. */
int ex_decimal_normalize(const char *text, enum ex_locale locale, char *out, size_t out_size,
			 const char **why);
int ex_date_normalize(const char *text, enum ex_locale locale, char out[11], const char **why);

#endif
