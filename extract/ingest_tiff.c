/* tiff decoder: not written yet; every tiff file is refused as an unsupported variant. */
#include "ingest.h"

int ex_ingest_tiff(const struct ex_source *src, struct ex_doc *doc, vlm_err *err)
{
	return ex_ingest_fail(err, src, 0, EX_REASON_UNSUPPORTED_VARIANT, "no tiff decoder yet");
}
