#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

const char *clip_status_name(int status)
{
	switch (status) {
	case CLIP_OK: return "ok";
	case CLIP_ERR_INVALID: return "invalid_argument";
	case CLIP_ERR_NOMEM: return "out_of_memory";
	case CLIP_ERR_IO: return "io_error";
	case CLIP_ERR_MODEL: return "model_invalid";
	case CLIP_ERR_UNSUPPORTED: return "unsupported_media_type";
	case CLIP_ERR_UNDECODABLE: return "image_undecodable";
	case CLIP_ERR_TOO_LARGE: return "image_too_large";
	case CLIP_ERR_EMPTY: return "image_empty";
	case CLIP_ERR_THREAD: return "thread_error";
	default: return "unknown_error";
	}
}

int clip_fail(clip_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n <= 0)
		snprintf(err->msg, sizeof err->msg, "%s", clip_status_name(code));
	return code;
}
