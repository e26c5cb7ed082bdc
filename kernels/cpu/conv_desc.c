/* conv_desc.c — validation of a CUDA convolution's geometry, shared by
 * kernels/cuda/conv.cu and the emulator (tests/emu) so both refuse alike. */
#include <limits.h>

#include "../cuda_ops.h"
#include "../kernels.h"

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
    cnn_k_conv_axis ay = cnn_k_conv_axis_of(d->h, d->kh, d->ph, d->sh, d->dh);
    cnn_k_conv_axis ax = cnn_k_conv_axis_of(d->w, d->kw, d->pw, d->sw, d->dw);
    if (!ay.out || !ax.out)
        return CNN_ERROR(CNN_ERR_SHAPE, "convolution kernel %lldx%lld (dilated) is larger than "
                         "the padded input %lldx%lld", ay.extent, ax.extent, ay.padded,
                         ax.padded);
    if (ay.out > INT_MAX || ax.out > INT_MAX)
        return CNN_ERROR(CNN_ERR_SHAPE, "convolution output of %lldx%lld is too large", ay.out,
                         ax.out);
    if (oh) *oh = (int)ay.out;
    if (ow) *ow = (int)ax.out;
    return CNN_OK;
}
