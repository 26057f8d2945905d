/*
 * preprocess.c - clip_image_preprocess: the crop at the model's input size
 * and the model's normalisation. Apart from image.c so that the image
 * library (decode, crop, normalise) links without the model.
 */
#include <stdlib.h>

#include "internal.h"

int clip_image_preprocess(const clip_model *model, const clip_image *img,
			  float *out, size_t out_len, clip_error *err)
{
	unsigned char *crop = NULL;
	int rc;

	if (!model || !img || !out)
		return clip_fail(err, CLIP_ERR_INVALID, "NULL argument to clip_image_preprocess");
	const int side = clip_model_image_size(model);
	if (side <= 0)
		return clip_fail(err, CLIP_ERR_INVALID, "model states image size %d", side);
	const size_t bytes = (size_t)side * (size_t)side * 3;
	if (out_len < bytes)
		return clip_fail(err, CLIP_ERR_INVALID, "output holds %zu floats, %zu needed",
				 out_len, bytes);

	crop = malloc(bytes);  /* owned here, freed at out */
	if (!crop)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %d x %d crop", side, side);
	rc = clip_image_crop(img, side, crop, bytes, err);
	if (rc)
		goto out;
	rc = clip_image_normalize(crop, side, clip_model_mean(model), clip_model_std(model),
				  out, out_len, err);
out:
	free(crop);
	return rc;
}
