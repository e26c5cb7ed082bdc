/* loss_gpu.c — device scalars of the loss and metric layers' GPU paths
 * (see loss_gpu.h). */
#include "loss_gpu.h"

cnn_status cnn_loss_dev_alloc(cnn_layer *l, cnn_loss_dev *d)
{
    cnn_status st = CNN_OK;
    void *p = NULL;
    if (!l->cuda || d->ctx) return CNN_OK;
    d->ctx = l->cuda;
    CNN_TRY(cnn_cuda_malloc(d->ctx, CNN_LOSS_SLOTS * sizeof(float), &p));
    d->f = p;
    CNN_TRY(cnn_cuda_malloc(d->ctx, sizeof(int), &p));
    d->bad = p;
    CNN_TRY(cnn_cuda_malloc(d->ctx, sizeof(int), &p));
    d->first_bad = p;
    static const int none = -1;
    CNN_TRY(cnn_cuda_upload(d->ctx, d->first_bad, &none, sizeof none));
    CNN_TRY(cnn_cuda_set(d->ctx, CNN_LOSS_SLOTS, 0.f, d->f));
fail:
    return st;
}

void cnn_loss_dev_free(cnn_loss_dev *d)
{
    if (!d->ctx) return;
    cnn_cuda_free(d->ctx, d->f);
    cnn_cuda_free(d->ctx, d->bad);
    cnn_cuda_free(d->ctx, d->first_bad);
    d->f = NULL;
    d->bad = NULL;
    d->first_bad = NULL;
    d->ctx = NULL;
}

cnn_status cnn_loss_dev_normalize(cnn_loss_dev *d, float host_norm, float *out)
{
    cnn_status st = CNN_OK;
    float *f = d->f;
    if (host_norm > 0)
        CNN_TRY(cnn_cuda_set(d->ctx, 1, host_norm, f + CNN_LOSS_DEN));
    else
        CNN_TRY(cnn_cuda_copy(d->ctx, 1, f + CNN_LOSS_COUNT, f + CNN_LOSS_DEN));
    CNN_TRY(cnn_cuda_div(d->ctx, 1, f + CNN_LOSS_SUM, f + CNN_LOSS_DEN, 1.f, out));
fail:
    return st;
}

cnn_status cnn_loss_dev_scale(cnn_loss_dev *d, const float *dtop, const float **scale)
{
    float *f = d->f;
    *scale = f + CNN_LOSS_SCALE;
    return cnn_cuda_div(d->ctx, 1, dtop, f + CNN_LOSS_DEN, 1.f, f + CNN_LOSS_SCALE);
}

cnn_status cnn_loss_dev_check(cnn_layer *l, cnn_loss_dev *d, cnn_tensor *label, int c)
{
    cnn_status st = cnn_cuda_latch_index(d->ctx, d->bad, d->first_bad);
    return st ? st : cnn_loss_dev_check_latched(l, d, label, c);
}

cnn_status cnn_loss_dev_check_latched(cnn_layer *l, cnn_loss_dev *d, cnn_tensor *label, int c)
{
    cnn_status st = CNN_OK;
    int bad = -1;
    if (!cnn_cuda_ctx_sync_debug(d->ctx)) return CNN_OK;
    CNN_TRY(cnn_cuda_download(d->ctx, &bad, d->bad, sizeof bad));
    CNN_TRY(cnn_cuda_ctx_sync(d->ctx));
    if (bad < 0) return CNN_OK;
    CNN_TRY(cnn_host_data(label));
    return cnn_layer_error(l, CNN_ERR_ARG, "label %g at position %d is outside [0, %d)",
                           label->data[bad], bad, c);
fail:
    return st;
}

cnn_status cnn_loss_dev_report(cnn_layer *l, cnn_loss_dev *d, int c)
{
    cnn_status st = CNN_OK;
    static const int none = -1;
    int first = -1;
    if (!d->ctx) return CNN_OK;
    CNN_TRY(cnn_cuda_download(d->ctx, &first, d->first_bad, sizeof first));
    CNN_TRY(cnn_cuda_ctx_sync(d->ctx));
    if (first < 0) return CNN_OK;
    CNN_TRY(cnn_cuda_upload(d->ctx, d->first_bad, &none, sizeof none));
    return cnn_layer_error(l, CNN_ERR_ARG,
                           "a label at position %d of a batch is outside [0, %d) (found on "
                           "the GPU when results were read back; CNN_CUDA_SYNC=1 stops at "
                           "the batch itself)", first, c);
fail:
    return st;
}
