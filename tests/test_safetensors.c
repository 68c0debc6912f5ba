/* safetensors.c: files written byte by byte here (so the expected values do not come from any
 * writer under test), one good layout checked value by value, and one broken file per validation
 * rule, each expecting its own error. */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"

static char dir[] = "/tmp/test_safetensors.XXXXXX";
static char path[256];

/* Writes [8-byte LE length][header padded with spaces to `align`][data]. `len_override` replaces
 * the length field when non-zero. */
static void write_file(const char *header, size_t align, uint64_t len_override, const void *data,
		       size_t data_len)
{
	size_t hlen = strlen(header);
	size_t padded = align ? (hlen + align - 1) / align * align : hlen;
	uint64_t field = len_override ? len_override : padded;
	FILE *fp = fopen(path, "wb");
	if (!fp) {
		perror(path);
		exit(1);
	}
	for (int i = 0; i < 8; i++)
		fputc((int)(field >> (8 * i) & 0xff), fp);
	fwrite(header, 1, hlen, fp);
	for (size_t i = hlen; i < padded; i++)
		fputc(' ', fp);
	if (data_len)
		fwrite(data, 1, data_len, fp);
	fclose(fp);
}

static uint8_t zeros[64];

/* Opens the file and expects failure with `code` and a message containing `fragment`. */
static void expect_error(int code, const char *fragment)
{
	struct vlm_st_file *f = (struct vlm_st_file *)1;
	vlm_err err = { 0 };
	int rc = vlm_st_open(path, &f, &err);
	CHECK_INT(rc, code);
	CHECK_INT(err.code, code);
	CHECK(f == NULL);
	CHECK_CONTAINS(err.msg, fragment);
	vlm_st_close(f);
}

static void test_good_file(void)
{
	/* b: F32 [2,2] = 1.5, -2, 0.25, 1024; a: BF16 [3] = 1, -3, 0.5; c: U8 [2]; d: BOOL [] */
	const uint8_t data[] = {
		0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0,
		0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x80, 0x44, /* b */
		0x80, 0x3f, 0x40, 0xc0, 0x00, 0x3f,             /* a */
		7,    250,                                      /* c */
		1,                                              /* d */
	};
	write_file("{\"__metadata__\":{\"format\":\"pt\"},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
		   "\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
		   "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[22,24]},"
		   "\"d\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[24,25]},"
		   "\"e\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[25,25]}}",
		   8, 0, data, sizeof data);
	struct vlm_st_file *f = NULL;
	vlm_err err = { 0 };
	CHECK_INT(vlm_st_open(path, &f, &err), 0);
	if (!f) {
		fprintf(stderr, "%s\n", err.msg);
		check_failures++;
		return;
	}
	CHECK_STR(vlm_st_path(f), path);
	CHECK_INT(vlm_st_count(f), 5);
	CHECK_STR(vlm_st_tensor(f, 0)->name, "a");
	CHECK_STR(vlm_st_tensor(f, 4)->name, "e");
	CHECK(vlm_st_tensor(f, 5) == NULL);
	CHECK(vlm_st_find(f, "__metadata__") == NULL);
	CHECK(vlm_st_find(f, "z") == NULL);

	const struct vlm_tensor *b = vlm_st_find(f, "b");
	CHECK(b != NULL);
	if (b) {
		CHECK_INT(b->dtype, VLM_DTYPE_F32);
		CHECK_INT(b->n_dims, 2);
		CHECK_INT(b->shape[0], 2);
		CHECK_INT(b->shape[1], 2);
		CHECK_INT(b->n_bytes, 16);
		const float *v = b->data;
		CHECK_NEAR(v[0], 1.5, 0);
		CHECK_NEAR(v[1], -2.0, 0);
		CHECK_NEAR(v[2], 0.25, 0);
		CHECK_NEAR(v[3], 1024.0, 0);
	}
	const struct vlm_tensor *a = vlm_st_find(f, "a");
	CHECK(a != NULL);
	if (a) {
		CHECK_INT(a->dtype, VLM_DTYPE_BF16);
		CHECK_INT(vlm_tensor_numel(a), 3);
		const uint16_t *v = a->data;
		CHECK_NEAR(vlm_bf16_to_f32(v[0]), 1.0, 0);
		CHECK_NEAR(vlm_bf16_to_f32(v[1]), -3.0, 0);
		CHECK_NEAR(vlm_bf16_to_f32(v[2]), 0.5, 0);
	}
	const struct vlm_tensor *c = vlm_st_find(f, "c");
	CHECK(c && c->dtype == VLM_DTYPE_U8 && ((const uint8_t *)c->data)[1] == 250);
	const struct vlm_tensor *d = vlm_st_find(f, "d");
	CHECK(d && d->dtype == VLM_DTYPE_BOOL && d->n_dims == 0 && vlm_tensor_numel(d) == 1);
	const struct vlm_tensor *e = vlm_st_find(f, "e");
	CHECK(e && e->dtype == VLM_DTYPE_I64 && e->n_bytes == 0 && vlm_tensor_numel(e) == 0);
	vlm_st_close(f);
}

static void test_dtype_table(void)
{
	CHECK_STR(vlm_dtype_name(VLM_DTYPE_BF16), "BF16");
	CHECK_INT(vlm_dtype_size(VLM_DTYPE_BF16), 2);
	CHECK_INT(vlm_dtype_size(VLM_DTYPE_I64), 8);
	CHECK_INT(vlm_dtype_size(VLM_DTYPE_U8), 1);
	CHECK_INT(vlm_dtype_size(VLM_DTYPE_COUNT), 0);
	CHECK_STR(vlm_dtype_name(VLM_DTYPE_COUNT), "unknown");
}

static void test_broken_files(void)
{
	const char *one = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";

	vlm_err err = { 0 };
	struct vlm_st_file *f = NULL;
	CHECK_INT(vlm_st_open("/nonexistent/x.safetensors", &f, &err), -ENOENT);
	CHECK_CONTAINS(err.msg, "safetensors: '/nonexistent/x.safetensors': cannot open");

	FILE *fp = fopen(path, "wb");
	fputs("abc", fp);
	fclose(fp);
	expect_error(-EBADMSG, "3 bytes is too short");

	write_file(one, 8, 1, zeros, 16);
	expect_error(-EBADMSG, "header length 1 is not sane");
	write_file(one, 8, 1ull << 40, zeros, 16);
	expect_error(-EBADMSG, "header length 1099511627776 is not sane");
	write_file(one, 8, 4096, zeros, 16);
	expect_error(-EBADMSG, "header length 4096 runs past the end of the file");

	write_file("{\"w\":{\"dtype\":", 8, 0, zeros, 16);
	expect_error(-EBADMSG, "header is not valid JSON");
	write_file("[1, 2]", 8, 0, zeros, 16);
	expect_error(-EBADMSG, "header is not a JSON object");
	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		   "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
		   8, 0, zeros, 8);
	expect_error(-EBADMSG, "header is not valid JSON");

	write_file("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 8, 0,
		   zeros, 4);
	expect_error(-ENOTSUP, "tensor 'w': unknown dtype 'F8_E4M3'");
	write_file("{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0, zeros, 16);
	expect_error(-EBADMSG, "tensor 'w': 'dtype' is missing");
	write_file("{\"w\":[1]}", 8, 0, zeros, 0);
	expect_error(-EBADMSG, "tensor 'w': entry is not a JSON object");
	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", 8, 0,
		   zeros, 16);
	expect_error(-EBADMSG, "tensor 'w': shape[1] is not a non-negative integer");
	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", 8, 0,
		   zeros, 16);
	expect_error(-EBADMSG, "tensor 'w': 'shape' is not an array");
	write_file(
		"{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
		8, 0, zeros, 1);
	expect_error(-EBADMSG, "tensor 'w': 9 dimensions");
	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
		   "\"data_offsets\":[0,16]}}",
		   8, 0, zeros, 16);
	expect_error(-EBADMSG, "tensor 'w': shape overflows");

	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 8, 0, zeros,
		   16);
	expect_error(-EBADMSG, "tensor 'w': data_offsets [16, 0] begin after they end");
	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 8, 0, zeros,
		   16);
	expect_error(-EBADMSG, "tensor 'w': 'data_offsets' is not a pair");
	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-4,12]}}", 8, 0,
		   zeros, 16);
	expect_error(-EBADMSG, "tensor 'w': 'data_offsets' is not a pair");
	write_file("{\"v\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		   "\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
		   8, 0, zeros, 24);
	expect_error(-EBADMSG, "tensor 'w': data_offsets [8, 24] overlap");
	write_file("{\"v\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		   "\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[20,36]}}",
		   8, 0, zeros, 36);
	expect_error(-EBADMSG, "tensor 'w': data_offsets [20, 36] leave a gap");

	write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 8, 0,
		   zeros, 12);
	expect_error(-EBADMSG, "tensor 'w': data_offsets [0, 12] hold 12 bytes but F32 of this "
			       "shape needs 16");

	write_file("{\"v\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		   "\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
		   8, 0, zeros, 20);
	expect_error(-EBADMSG, "tensor 'w': data ends at byte 32 of the data area but the file "
			       "holds only 20 bytes of data (truncated)");
	write_file(one, 8, 0, zeros, 20);
	expect_error(-EBADMSG, "4 bytes after the last tensor's data");

	/* An unpadded 55-byte header puts the data at file offset 63, not a multiple of 4. */
	write_file(one, 0, 0, zeros, 16);
	expect_error(-EBADMSG, "tensor 'w': data at file offset 63 is not aligned to 4 bytes");
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/t.safetensors", dir);
	test_dtype_table();
	test_good_file();
	test_broken_files();
	unlink(path);
	rmdir(dir);
	return CHECK_DONE();
}
