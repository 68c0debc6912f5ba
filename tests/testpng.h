/* Raw PNG pieces for tests that build damaged or hostile files byte by byte: a chunk with its
 * length and CRC, and a zlib stream that inflates to far more than it weighs. Needs zlib and
 * testfiles.h. Test code only. */
#ifndef INTAKE_TESTPNG_H
#define INTAKE_TESTPNG_H

#include <zlib.h>

#include "testfiles.h"

/* Appends a chunk with its length and CRC (zlib's crc32, over type and data). */
static inline void put_chunk(struct bytes *b, const char *type, const void *data, uint32_t n)
{
	uint8_t be[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
	bytes_append(b, be, 4);
	bytes_append(b, type, 4);
	if (n)
		bytes_append(b, data, n);
	/* crc32() of a NULL buffer is zlib's initial value, not a no-op: skip it for no data. */
	uLong crc = crc32(0, (const Bytef *)type, 4);
	if (n)
		crc = crc32(crc, (const Bytef *)data, n);
	uint8_t c[4] = { (uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
			 (uint8_t)crc };
	bytes_append(b, c, 4);
}

/* Appends a zlib stream of `mib` MiB of zeros (about 1 KiB of output per MiB). */
static inline void append_zeros_deflated(struct bytes *out, int mib)
{
	static uint8_t zeros[1 << 20], buf[1 << 16];
	z_stream z = { 0 };
	deflateInit(&z, 9);
	for (int i = 0; i < mib; i++) {
		z.next_in = zeros;
		z.avail_in = sizeof zeros;
		int flush = i == mib - 1 ? Z_FINISH : Z_NO_FLUSH;
		do {
			z.next_out = buf;
			z.avail_out = sizeof buf;
			deflate(&z, flush);
			bytes_append(out, buf, sizeof buf - z.avail_out);
		} while (z.avail_out == 0);
	}
	deflateEnd(&z);
}

#endif
