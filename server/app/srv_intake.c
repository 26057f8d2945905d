/*
 * An uploaded image's way in, before any work is queued: where its bytes
 * are in the request (raw body or a multipart part) and whether its header
 * is acceptable (type, pixels). See srv_app.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "srv_app.h"
#include "text.h"

static int raw_image_type(const char *ct)
{
	if (!ct || !*ct)
		return 1;
	while (*ct == ' ')
		ct++;
	return !strncasecmp(ct, "image/", 6) || !strncasecmp(ct, "application/octet-stream", 24);
}

int srv_request_image(struct http_req *r, const void **data, size_t *len, const char **filename)
{
	*filename = NULL;
	if (r->multipart) {
		struct http_form_part *f = http_form_get(r, "file");
		if (!f || !f->head.has_filename) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "file: a multipart part named \"file\" (with a filename) is required");
			return -1;
		}
		*data = f->data.data ? f->data.data : "";
		*len = f->data.len;
		*filename = f->head.filename[0] ? f->head.filename : NULL;
		return 0;
	}
	if (!raw_image_type(r->content_type)) {
		/* The type is decided by the bytes: any image/ type will do. */
		http_reply_error(r, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE,
				 "Content-Type %.60s is not accepted: send the image's bytes (%s) as image/* or "
				 "application/octet-stream, or multipart/form-data with a \"file\" part",
				 r->content_type, clip_image_types_text());
		return -1;
	}
	*data = r->body.data ? r->body.data : "";
	*len = r->body.len;
	return 0;
}

int srv_check_image(const struct srv_app *app, const void *data, size_t len, int *width, int *height,
		    const char **mime, enum http_err *code, char *msg, size_t msglen)
{
	enum clip_image_type type;
	clip_error err = { 0 };
	int rc = clip_image_probe(data, len, &type, width, height, &err);
	if (rc != 0) {
		*code = srv_clip_http_error(rc);
		text_copy(msg, msglen, err.msg[0] ? err.msg : http_errors[*code].message);
		return -1;
	}
	unsigned long long pixels = (unsigned long long)*width * (unsigned long long)*height;
	if (pixels > (unsigned long long)app->cfg->max_pixels) {
		*code = HTTP_ERR_IMAGE_TOO_LARGE;
		snprintf(msg, msglen, "the image is %d x %d = %.1f megapixels, over the limit of %.1f",
			 *width, *height, (double)pixels / 1e6, (double)app->cfg->max_pixels / 1e6);
		return -1;
	}
	*mime = clip_image_mime(type);
	return 0;
}

int srv_probe_image(struct srv_app *app, struct http_req *r, const void *data, size_t len,
		    int *width, int *height, const char **mime)
{
	char msg[SRV_IMAGE_MSG_MAX];
	enum http_err code;
	if (srv_check_image(app, data, len, width, height, mime, &code, msg, sizeof msg) != 0) {
		http_reply_error(r, code, "%s", msg);
		return -1;
	}
	return 0;
}
