/* transform.c — Caffe's transform_param. */
#include "transform.h"

cnn_status cnn_transform_parse(cnn_cfg *layer, cnn_transform *out)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    *out = (cnn_transform){.scale = 1};
    if (!layer) return CNN_OK;
    CNN_TRY(cnn_cfg_message(layer, "transform_param", &p));
    if (!p) return CNN_OK;
    CNN_TRY(cnn_cfg_float(p, "scale", 1, &out->scale));
    CNN_TRY(cnn_cfg_int(p, "crop_size", 0, &out->crop_size));
    CNN_TRY(cnn_cfg_bool(p, "mirror", false, &out->mirror));
    if (out->crop_size < 0)
        return cnn_cfg_error(cnn_cfg_get(p, "crop_size"), CNN_ERR_CONFIG,
                             "crop_size must not be negative");
    out->n_mean = cnn_cfg_count(p, "mean_value");
    if (out->n_mean > CNN_MAX_MEAN)
        return cnn_cfg_error(cnn_cfg_nth(p, "mean_value", CNN_MAX_MEAN), CNN_ERR_CONFIG,
                             "at most %d mean_value entries", CNN_MAX_MEAN);
    for (int i = 0; i < out->n_mean; i++)
        CNN_TRY(cnn_cfg_as_float(cnn_cfg_nth(p, "mean_value", i), &out->mean[i]));
    if (cnn_cfg_count(p, "mean_file"))
        return cnn_cfg_error(cnn_cfg_get(p, "mean_file"), CNN_ERR_UNSUPPORTED,
                             "mean_file is not supported; give mean_value per channel");
    bool flag = false;
    CNN_TRY(cnn_cfg_bool(p, "force_color", false, &flag));
    CNN_TRY(cnn_cfg_bool(p, "force_gray", false, &flag));
fail:
    return st;
}
