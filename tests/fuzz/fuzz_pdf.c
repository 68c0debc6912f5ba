/* libFuzzer target: PDF ingest (poppler parsing and rendering under intake's limits). */
#include "fuzz_ingest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_ingest(data, size, "%PDF-", 5, EX_FORMAT_PDF);
}
