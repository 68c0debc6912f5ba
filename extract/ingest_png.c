/* png decoder: not written yet; every png file is refused as an unsupported variant. */
#include "ingest.h"

int ex_ingest_png(const struct ex_source *src, struct ex_doc *doc, vlm_err *err)
{
	return ex_ingest_fail(err, src, 0, EX_REASON_UNSUPPORTED_VARIANT, "no png decoder yet");
}
