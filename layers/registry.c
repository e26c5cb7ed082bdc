/* registry.c — every layer type, by Caffe type name. A type is defined in
 * its own file as `const cnn_layer_type cnn_layer_<Name>`. */
#include <string.h>

#include "layer.h"

#define LAYER_TYPES(X)                                                                  \
    X(Input) X(Convolution) X(InnerProduct) X(Pooling) X(LRN) X(ReLU) X(PReLU)           \
    X(Sigmoid) X(TanH) X(ELU) X(BatchNorm) X(Scale) X(Dropout) X(Softmax)               \
    X(SoftmaxWithLoss) X(Accuracy) X(Concat) X(Eltwise) X(Flatten) X(Reshape) X(Split)  \
    X(Silence) X(EuclideanLoss) X(SigmoidCrossEntropyLoss) X(Data) X(ImageData) X(Copy)

#define DECLARE(name) extern const cnn_layer_type cnn_layer_##name;
LAYER_TYPES(DECLARE)
#undef DECLARE

#define ENTRY(name) &cnn_layer_##name,
static const cnn_layer_type *const all_types[] = {LAYER_TYPES(ENTRY) NULL};
#undef ENTRY

const cnn_layer_type *const *cnn_layer_types(void) { return all_types; }

const cnn_layer_type *cnn_layer_type_find(const char *name)
{
    for (const cnn_layer_type *const *t = cnn_layer_types(); *t; t++)
        if (!strcmp((*t)->name, name)) return *t;
    return NULL;
}
