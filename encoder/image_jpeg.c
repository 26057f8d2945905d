/*
 * image_jpeg.c - JPEG through libjpeg-turbo, with the library's default
 * choices (integer IDCT, fancy upsampling): the ones Pillow makes, so the
 * pixels are Pillow's, byte for byte, on the same libjpeg-turbo.
 *
 * Colour: greyscale is replicated, YCbCr and RGB give RGB. A four-channel
 * JPEG (CMYK, or YCCK which libjpeg turns into CMYK) is read as Pillow
 * reads it ("CMYK;I": Adobe's inverted convention assumed, whatever the
 * file says) and converted as Pillow's convert("RGB") converts CMYK.
 *
 * Hostile files: libjpeg's errors come back through setjmp/longjmp (it
 * never calls exit); its warnings are counted, never printed; a file that
 * ends early ("Premature end of JPEG file", where libjpeg would pad the
 * image with grey) is refused as truncated, as Pillow refuses it. The size
 * is checked against the pixel limit after jpeg_read_header, before
 * jpeg_start_decompress allocates anything the size of the image; a
 * progress monitor refuses a file of more than JPEG_MAX_SCANS scans (each
 * scan of a progressive JPEG is a pass over the whole image, and nothing
 * else bounds their number); the library's own allocations are capped.
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image_internal.h"

/* Real progressive JPEGs have about 10 scans; 3 per component per
 * coefficient band is already absurd. */
#define JPEG_MAX_SCANS 150
/* Warnings (corrupt data libjpeg works around) before the file is refused. */
#define JPEG_MAX_WARNINGS 1000

static uint32_t rd_be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }

/*
 * Walk the marker segments from SOI (bytes between segments are skipped up
 * to the next 0xFF, fill bytes 0xFF and, as libjpeg skips them, FF 00) and
 * read the height and width of the first frame header, the one libjpeg
 * decodes. libjpeg-turbo decodes baseline,
 * extended and progressive frames, Huffman or arithmetic coded; lossless
 * and hierarchical ones are refused here with a reason.
 */
int clip_probe_jpeg(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h, clip_error *err)
{
	size_t pos = 2;

	for (;;) {
		while (pos < len && p[pos] != 0xff)
			pos++;
		while (pos < len && p[pos] == 0xff)
			pos++;
		if (pos >= len)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "truncated JPEG: the data ends before the frame header");
		unsigned m = p[pos++];
		if (m == 0x00)
			continue;  /* FF 00 between segments: garbage */
		if (m == 0x01 || (m >= 0xd0 && m <= 0xd8))
			continue;  /* standalone markers */
		if (m == 0xd9)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: end of image before the frame header");
		if (m == 0xda)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: image data before the frame header");
		if (pos + 2 > len)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated JPEG header");
		uint32_t seg = rd_be16(p + pos);
		if (seg < 2)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: segment length %u", (unsigned)seg);
		if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
			if (m != 0xc0 && m != 0xc1 && m != 0xc2 && m != 0xc9 && m != 0xca)
				return clip_fail(err, CLIP_ERR_UNDECODABLE,
						 "JPEG variant not supported (SOF%u: lossless or "
						 "hierarchical); baseline, extended and progressive are",
						 m - 0xc0);
			if (seg < 7 || pos + 7 > len)
				return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated JPEG frame header");
			*h = rd_be16(p + pos + 3);
			*w = rd_be16(p + pos + 5);
			return 0;
		}
		if (seg > len - pos)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "truncated JPEG: a segment (marker 0x%02X) of %u bytes runs "
					 "past the end of the data", m, (unsigned)seg);
		pos += seg;
	}
}

int clip_jpeg_scale_denom(uint32_t w, uint32_t h, int min_short_side, int min_long_side)
{
	const uint64_t s = w < h ? w : h, l = w < h ? h : w;

	if (min_short_side <= 0 && min_long_side <= 0)
		return 1;
	/* as Pillow's draft(): the scaled side, ceil(side / d), is at least
	 * the minimum whenever side >= d * minimum */
	for (int d = 8; d >= 2; d /= 2) {
		if ((min_short_side <= 0 || s >= (uint64_t)d * (uint64_t)min_short_side) &&
		    (min_long_side <= 0 || l >= (uint64_t)d * (uint64_t)min_long_side))
			return d;
	}
	return 1;
}

/* ---- libjpeg's error manager and progress monitor ------------------------- */

struct jpeg_guard {
	struct jpeg_error_mgr pub;     /* first: libjpeg's cinfo->err points here */
	struct jpeg_progress_mgr progress;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX + 40];
	int code;                      /* the clip_status of the failure */
	long warnings;
};

static void guard_fail(j_common_ptr c, int code, const char *msg)
{
	struct jpeg_guard *g = (struct jpeg_guard *)c->err;
	g->code = code;
	snprintf(g->msg, sizeof g->msg, "%s", msg);
	longjmp(g->jump, 1);
}

static void on_error(j_common_ptr c)
{
	struct jpeg_guard *g = (struct jpeg_guard *)c->err;
	char buf[JMSG_LENGTH_MAX];

	c->err->format_message(c, buf);
	g->code = c->err->msg_code == JERR_OUT_OF_MEMORY ? CLIP_ERR_NOMEM : CLIP_ERR_UNDECODABLE;
	snprintf(g->msg, sizeof g->msg, "%s JPEG: %s",
		 g->code == CLIP_ERR_NOMEM ? "out of memory decoding the" : "corrupt", buf);
	longjmp(g->jump, 1);
}

/* Warnings (level -1) and trace messages: never printed. */
static void on_message(j_common_ptr c, int level)
{
	struct jpeg_guard *g = (struct jpeg_guard *)c->err;

	if (level >= 0)
		return;
	if (c->err->msg_code == JWRN_JPEG_EOF)
		guard_fail(c, CLIP_ERR_UNDECODABLE, "truncated JPEG: the data ends inside the image");
	if (++g->warnings > JPEG_MAX_WARNINGS)
		guard_fail(c, CLIP_ERR_UNDECODABLE, "corrupt JPEG: too much corrupt data");
}

static void on_output(j_common_ptr c)
{
	(void)c;
}

static void on_progress(j_common_ptr c)
{
	if (c->is_decompressor && ((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS)
		guard_fail(c, CLIP_ERR_UNDECODABLE, "corrupt JPEG: more than 150 scans (a scan bomb?)");
}

/* ---- colour ------------------------------------------------------------ */

/* Pillow's MULDIV255: a * b / 255, rounded. */
static unsigned muldiv255(unsigned a, unsigned b)
{
	unsigned t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

/* A row of libjpeg's CMYK as Pillow reads it ("CMYK;I": each value
 * inverted) and converts it to RGB (Convert.c's cmyk2rgb). */
static void cmyk_row_to_rgb(const unsigned char *in, unsigned char *out, int w)
{
	for (int x = 0; x < w; x++, in += 4, out += 3) {
		unsigned c = 255u - in[0], m = 255u - in[1], y = 255u - in[2], k = 255u - in[3];
		unsigned nk = 255u - k;
		out[0] = (unsigned char)(nk - muldiv255(c, nk));
		out[1] = (unsigned char)(nk - muldiv255(m, nk));
		out[2] = (unsigned char)(nk - muldiv255(y, nk));
	}
}

/* ---- decoding ------------------------------------------------------------ */

/*
 * The part of the decode that libjpeg may leave by longjmp: every object
 * it allocates is reachable from d (volatile-free: nothing here is
 * modified between setjmp and a longjmp and then read, except through d).
 */
struct jpeg_job {
	struct jpeg_decompress_struct cinfo;
	struct jpeg_guard guard;
	unsigned char *rgb;
	unsigned char *row;   /* one CMYK row */
	unsigned char *band;  /* JPEG_BAND rows on their way to their upright places */
};

/* Rows decoded before they are turned upright together. */
#define JPEG_BAND 16

static int run(struct jpeg_job *d, const unsigned char *p, size_t len,
	       const struct clip_dec_req *rq, struct clip_dec_out *out, clip_error *err)
{
	struct jpeg_decompress_struct *ci = &d->cinfo;

	jpeg_mem_src(ci, p, (unsigned long)len);
	if (jpeg_read_header(ci, TRUE) != JPEG_HEADER_OK)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt JPEG: no image in the data");
	int rc = clip_check_pixels("JPEG", ci->image_width, ci->image_height, rq->max_pixels, err);
	if (rc)
		return rc;
	/* libjpeg's own allocations, capped: four components of 16-bit
	 * coefficients (a progressive image's buffer) and some. */
	ci->mem->max_memory_to_use =
		(long)(10 * (uint64_t)ci->image_width * ci->image_height + (64u << 20));

	int cmyk = ci->num_components == 4;
	if (ci->num_components != 1 && ci->num_components != 3 && !cmyk)
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "JPEG with %d colour components not supported", ci->num_components);
	ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
	ci->dct_method = JDCT_ISLOW;
	ci->do_fancy_upsampling = TRUE;
	int denom = clip_jpeg_scale_denom(ci->image_width, ci->image_height, rq->min_short_side,
					  rq->min_long_side);
	ci->scale_num = 1;
	ci->scale_denom = (unsigned)denom;

	jpeg_start_decompress(ci);
	const int w = (int)ci->output_width, h = (int)ci->output_height;
	if (w <= 0 || h <= 0 || (ci->output_components != 3 && ci->output_components != 4))
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt JPEG: output %d x %d x %d",
				 w, h, ci->output_components);
	const int turn = rq->orientation > 1 && rq->orientation <= 8;
	d->rgb = malloc((size_t)w * (size_t)h * 3);
	if (cmyk)
		d->row = malloc((size_t)w * 4);
	if (turn)
		d->band = malloc((size_t)w * 3 * JPEG_BAND);
	if (!d->rgb || (cmyk && !d->row) || (turn && !d->band))
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %d x %d JPEG", w, h);
	while (ci->output_scanline < ci->output_height) {
		const int y0 = (int)ci->output_scanline;
		const int rows = h - y0 < JPEG_BAND ? h - y0 : JPEG_BAND;
		unsigned char *base = turn ? d->band : d->rgb + (size_t)y0 * (size_t)w * 3;
		for (int r = 0; r < rows; r++) {
			unsigned char *dst = base + (size_t)r * (size_t)w * 3;
			JSAMPROW row = cmyk ? d->row : dst;
			if (jpeg_read_scanlines(ci, &row, 1) != 1)
				return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated JPEG");
			if (cmyk)
				cmyk_row_to_rgb(d->row, dst, w);
		}
		if (turn)
			clip_orient_rows(d->band, y0, rows, d->rgb, w, h, rq->orientation);
	}
	/* The trailing markers are not read (jpeg_finish_decompress): the
	 * pixels are complete, and Pillow does not read them either. */
	const int swap = turn && rq->orientation >= 5;
	out->width = swap ? h : w;
	out->height = swap ? w : h;
	out->full_width = (int)(swap ? ci->image_height : ci->image_width);
	out->full_height = (int)(swap ? ci->image_width : ci->image_height);
	out->oriented = 1;
	out->scale_denom = denom;
	out->rgb = d->rgb;
	d->rgb = NULL;
	return 0;
}

int clip_decode_jpeg(const unsigned char *p, size_t len, const struct clip_dec_req *rq,
		     struct clip_dec_out *out, clip_error *err)
{
	struct jpeg_job *d = calloc(1, sizeof *d);
	int rc;

	if (!d)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for the JPEG decoder");
	if ((unsigned long)len != len) {
		free(d);
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "image file too large: %zu bytes", len);
	}
	d->cinfo.err = jpeg_std_error(&d->guard.pub);
	d->guard.pub.error_exit = on_error;
	d->guard.pub.emit_message = on_message;
	d->guard.pub.output_message = on_output;
	d->guard.progress.progress_monitor = on_progress;
	if (setjmp(d->guard.jump)) {
		rc = clip_fail(err, d->guard.code ? d->guard.code : CLIP_ERR_UNDECODABLE,
			       "%s", d->guard.msg);
		goto out;
	}
	jpeg_create_decompress(&d->cinfo);
	d->cinfo.progress = &d->guard.progress;
	rc = run(d, p, len, rq, out, err);
out:
	jpeg_destroy_decompress(&d->cinfo);
	free(d->rgb);
	free(d->row);
	free(d->band);
	free(d);
	return rc;
}
