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

const char *vlm_err_escape(char *dst, size_t size, const char *text)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (const unsigned char *s = (const unsigned char *)text; *s && o + 1 < size; s++) {
		if (*s < 0x20 || *s == 0x7f || *s == '\\') {
			if (o + 5 >= size)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[*s >> 4];
			dst[o++] = hex[*s & 15];
		} else {
			dst[o++] = (char)*s;
		}
	}
	dst[o] = '\0';
	return dst;
}

void vlm_err_flatten(char *text)
{
	for (unsigned char *c = (unsigned char *)text; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			*c = ' ';
}

const char *vlm_version(void)
{
	return INTAKE_VERSION;
}
