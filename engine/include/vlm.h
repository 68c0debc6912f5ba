/* libvlm: the public interface of intake's GLM-4V inference engine.
 *
 * Owns: the error type every intake library reports through, backend discovery, and (as the
 * engine grows) model loading, tokenizing, image encoding and generation.
 * Thread safety: functions here are safe to call from any thread unless a prototype says
 * otherwise. Nothing here prints; callers log the error message once, at the top level. */
#ifndef VLM_H
#define VLM_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An error report: `code` is the negative errno the failing function returned, `reason` an
 * optional module-specific detail (for example enum ex_ingest_reason), `msg` one line of the form
 * "module: object 'name': what is wrong". Every function that takes a `vlm_err *` accepts NULL. */
typedef struct vlm_err {
	int code;
	int reason;
	char msg[512];
} vlm_err;

/* Fills `err` (if not NULL) and returns `code`, so callers can write
 * `return vlm_err_set(err, -EINVAL, "config: key '%s': not a number", key);` */
int vlm_err_set(vlm_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vlm_err_setv(vlm_err *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* Same as vlm_err_set, also recording a module-specific reason. */
int vlm_err_set_reason(vlm_err *err, int code, int reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Number of CUDA devices usable by the engine: 0 when built without CUDA or when no device (or no
 * driver) is present. Never fails. */
int vlm_cuda_device_count(void);

const char *vlm_version(void);

#ifdef __cplusplus
}
#endif
#endif
