/* conv_desc.c — validation of a CUDA convolution's geometry, shared by
 * kernels/cuda/conv.cu and the emulator (tests/emu) so both refuse alike. */
#include "../cuda_ops.h"

cnn_status cnn_cuda_conv_desc_check(const cnn_cuda_conv_desc *d, int *oh, int *ow)
{
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0 || d->o <= 0 || d->kh <= 0 ||
        d->kw <= 0 || d->sh <= 0 || d->sw <= 0 || d->dh <= 0 || d->dw <= 0 || d->ph < 0 ||
        d->pw < 0 || d->group <= 0 || d->c % d->group || d->o % d->group)
        return CNN_ERROR(CNN_ERR_ARG,
                         "bad convolution: input %dx%dx%dx%d, %d outputs, kernel %dx%d, pad "
                         "%dx%d, stride %dx%d, dilation %dx%d, group %d",
                         d->n, d->c, d->h, d->w, d->o, d->kh, d->kw, d->ph, d->pw, d->sh, d->sw,
                         d->dh, d->dw, d->group);
    /* Checked first: the size formula would truncate a negative numerator
     * towards 0, giving 1 instead of no output for a large stride. */
    int ekh = d->dh * (d->kh - 1) + 1, ekw = d->dw * (d->kw - 1) + 1;
    int ph = d->h + 2 * d->ph, pw = d->w + 2 * d->pw;
    if (ekh > ph || ekw > pw)
        return CNN_ERROR(CNN_ERR_SHAPE, "convolution kernel %dx%d (dilated) is larger than the "
                         "padded input %dx%d", ekh, ekw, ph, pw);
    if (oh) *oh = (ph - ekh) / d->sh + 1;
    if (ow) *ow = (pw - ekw) / d->sw + 1;
    return CNN_OK;
}
