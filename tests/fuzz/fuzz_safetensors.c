/* libFuzzer target: the safetensors header parser. A file vlm_st_open accepts promises that
 * every tensor's bytes lie inside the mapping, aligned to the element size, with a byte count
 * that matches its dtype and shape; the target reads each tensor's first and last byte. */
#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_memfile(data, size);
	struct vlm_st_file *f = NULL;
	vlm_err err = { 0 };
	if (vlm_st_open(path, &f, &err) != 0) {
		FUZZ_CHECK(f == NULL && err.code < 0 && err.msg[0]);
		return 0;
	}
	for (size_t i = 0; i < vlm_st_count(f); i++) {
		const struct vlm_tensor *t = vlm_st_tensor(f, i);
		FUZZ_CHECK(t && t->name && vlm_st_find(f, t->name) == t);
		size_t elem = vlm_dtype_size(t->dtype), n = 1;
		FUZZ_CHECK(elem > 0 && t->n_dims <= VLM_MAX_DIMS);
		for (int d = 0; d < t->n_dims; d++) {
			FUZZ_CHECK(t->shape[d] >= 0);
			FUZZ_CHECK(!__builtin_mul_overflow(n, (size_t)t->shape[d], &n));
		}
		FUZZ_CHECK(!__builtin_mul_overflow(n, elem, &n) && t->n_bytes == n);
		FUZZ_CHECK((uintptr_t)t->data % elem == 0);
		if (t->n_bytes) {
			volatile uint8_t first = ((const uint8_t *)t->data)[0];
			volatile uint8_t last = ((const uint8_t *)t->data)[t->n_bytes - 1];
			(void)first, (void)last;
		}
	}
	vlm_st_close(f);
	return 0;
}
