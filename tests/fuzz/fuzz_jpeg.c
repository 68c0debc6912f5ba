/* libFuzzer target: JPEG ingest (libjpeg-turbo decoding, JFIF/EXIF resolution and orientation). */
#include "fuzz_ingest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_ingest(data, size, "\xff\xd8\xff", 3, EX_FORMAT_JPEG);
}
