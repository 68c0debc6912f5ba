/* The error report shared by every intake library: filled once where a failure is detected and
 * logged once by the top level. Owns no memory. */
#include <stdio.h>

#include "vlm.h"

int vlm_err_setv(vlm_err *err, int code, const char *fmt, va_list ap)
{
	if (err) {
		err->code = code;
		err->reason = 0;
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	}
	return code;
}

int vlm_err_set(vlm_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlm_err_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int vlm_err_set_reason(vlm_err *err, int code, int reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlm_err_setv(err, code, fmt, ap);
	va_end(ap);
	if (err)
		err->reason = reason;
	return code;
}

const char *vlm_version(void)
{
	return INTAKE_VERSION;
}
