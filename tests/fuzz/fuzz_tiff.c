/* libFuzzer target: TIFF ingest (libtiff directories, every photometric and bit depth we take,
 * multi-page chains and their loops). Both byte orders and BigTIFF are kept. */
#include "fuzz_ingest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 2 && data[0] == 'M')
		return fuzz_ingest(data, size, "MM", 2, EX_FORMAT_TIFF);
	return fuzz_ingest(data, size, "II", 2, EX_FORMAT_TIFF);
}
