/* EXIF IFD0 reader: orientation (0x0112) and X/YResolution (0x011a, 0x011b) with ResolutionUnit
 * (0x0128). Owns nothing and allocates nothing; every offset from the file is checked against the
 * block size before it is dereferenced, in 64-bit arithmetic so no sum can wrap. Does not follow
 * the EXIF sub-IFD or IFD1 (the thumbnail): the fields we need live in IFD0. */
#include <math.h>

#include "exif.h"

enum {
	TAG_ORIENTATION = 0x0112,
	TAG_X_RESOLUTION = 0x011a,
	TAG_Y_RESOLUTION = 0x011b,
	TAG_RESOLUTION_UNIT = 0x0128,
	TYPE_SHORT = 3,
	TYPE_RATIONAL = 5,
	UNIT_INCH = 2,
	UNIT_CM = 3,
};

struct tiff_block {
	const uint8_t *data;
	size_t size;
	bool big_endian;
};

static bool in_bounds(const struct tiff_block *b, uint64_t off, uint64_t len)
{
	return off <= b->size && len <= b->size - off;
}

static unsigned get16(const struct tiff_block *b, size_t off)
{
	const uint8_t *p = b->data + off;
	return b->big_endian ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

static uint32_t get32(const struct tiff_block *b, size_t off)
{
	const uint8_t *p = b->data + off;
	if (b->big_endian)
		return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* A RATIONAL's value, or 0 when the entry is malformed or the fraction is not positive. The value
 * of an 8-byte RATIONAL never fits in the entry, so the entry holds its offset. */
static double entry_rational(const struct tiff_block *b, size_t entry)
{
	if (get16(b, entry + 2) != TYPE_RATIONAL || get32(b, entry + 4) < 1)
		return 0;
	uint32_t off = get32(b, entry + 8);
	if (!in_bounds(b, off, 8))
		return 0;
	uint32_t num = get32(b, off), den = get32(b, off + 4);
	return den ? (double)num / den : 0;
}

/* A SHORT stored in the entry's value field (left-justified in either byte order), or 0. */
static unsigned entry_short(const struct tiff_block *b, size_t entry)
{
	if (get16(b, entry + 2) != TYPE_SHORT || get32(b, entry + 4) < 1)
		return 0;
	return get16(b, entry + 8);
}

bool ex_exif_parse(const uint8_t *data, size_t size, struct ex_exif *exif)
{
	*exif = (struct ex_exif){ .orientation = 1 };
	struct tiff_block b = { .data = data, .size = size };
	if (size < 8)
		return false;
	if (data[0] == 'M' && data[1] == 'M')
		b.big_endian = true;
	else if (data[0] != 'I' || data[1] != 'I')
		return false;
	if (get16(&b, 2) != 42)
		return false;
	uint32_t ifd = get32(&b, 4);
	if (!in_bounds(&b, ifd, 2))
		return false;
	unsigned n_entries = get16(&b, ifd);
	if (!in_bounds(&b, (uint64_t)ifd + 2, (uint64_t)n_entries * 12))
		return false;

	double res_x = 0, res_y = 0;
	unsigned unit = UNIT_INCH; /* the TIFF default when the tag is absent */
	for (unsigned i = 0; i < n_entries; i++) {
		size_t entry = (size_t)ifd + 2 + (size_t)i * 12;
		switch (get16(&b, entry)) {
		case TAG_ORIENTATION: {
			unsigned o = entry_short(&b, entry);
			if (o >= 1 && o <= 8)
				exif->orientation = (int)o;
			break;
		}
		case TAG_X_RESOLUTION:
			res_x = entry_rational(&b, entry);
			break;
		case TAG_Y_RESOLUTION:
			res_y = entry_rational(&b, entry);
			break;
		case TAG_RESOLUTION_UNIT:
			unit = entry_short(&b, entry);
			break;
		default:
			break;
		}
	}
	/* Unit 1 ("no absolute unit") gives an aspect ratio, not a resolution. */
	double per_inch = unit == UNIT_INCH ? 1.0 : unit == UNIT_CM ? 2.54 : 0.0;
	if (res_x > 0 && res_y > 0 && per_inch > 0) {
		exif->dpi_x = round(res_x * per_inch * 100) / 100;
		exif->dpi_y = round(res_y * per_inch * 100) / 100;
	}
	return true;
}
