/* The EXIF fields ingest uses (orientation and resolution), read from IFD0 of a TIFF-structured
 * EXIF block as found in a JPEG APP1 segment (after "Exif\0\0") or a PNG eXIf chunk.
 * Shared by ingest_jpeg.c and ingest_png.c. */
#ifndef EX_EXIF_H
#define EX_EXIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ex_exif {
	int orientation;     /* 1..8; 1 when absent or out of range */
	double dpi_x, dpi_y; /* dots per inch; 0 when absent */
};

/* Fills *exif from `data` (`size` bytes starting at the "II" or "MM" byte-order mark). Every
 * read is bounds-checked; a damaged field is skipped and keeps its default, because metadata is
 * never worth refusing an image whose pixels are fine. Returns false (with *exif at its defaults)
 * when the block has no valid TIFF header. Reads only `data`; never allocates. */
bool ex_exif_parse(const uint8_t *data, size_t size, struct ex_exif *exif);

#endif
