/* libFuzzer target: PNG ingest (libpng decoding, text-chunk limits, pHYs and eXIf). */
#include "fuzz_ingest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_ingest(data, size, "\x89PNG\r\n\x1a\n", 8, EX_FORMAT_PNG);
}
