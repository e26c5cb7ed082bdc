# gpu_nets.bash — the benchmark nets, sourced by bench/gpu_train.sh and
# bench/gpu_modelpar.sh (not run by itself: tests/gpu/run.sh runs gpu_*.sh).
#
#   lenet_net BATCH, cifar10_quick_net BATCH   the nets of bench/cpu_lenet.sh
#                                              (= bench/torch_lenet.py's)
#   input_net MODEL BATCH                      MODEL with its data layers
#       (Data, ImageData, ...) replaced by Input layers "data"
#       (BATCH x 3 x 227 x 227) and "label" (BATCH), for synthetic data
# Each writes a model file on stdout.

# conv NAME BOTTOM OUT PAD, pool NAME BOTTOM MAX|AVE K, ip NAME BOTTOM OUT, relu NAME BLOB
_conv() {
    echo "layer { name: \"$1\" type: \"Convolution\" bottom: \"$2\" top: \"$1\""
    echo "  convolution_param { num_output: $3 kernel_size: 5 pad: $4"
    echo "    weight_filler { type: \"xavier\" } } }"
}
_pool() {
    echo "layer { name: \"$1\" type: \"Pooling\" bottom: \"$2\" top: \"$1\""
    echo "  pooling_param { pool: $3 kernel_size: $4 stride: 2 } }"
}
_ip() {
    echo "layer { name: \"$1\" type: \"InnerProduct\" bottom: \"$2\" top: \"$1\""
    echo "  inner_product_param { num_output: $3 weight_filler { type: \"xavier\" } } }"
}
_relu() { echo "layer { name: \"$1\" type: \"ReLU\" bottom: \"$2\" top: \"$2\" }"; }
# _inputs BATCH CHANNELS SIZE
_inputs() {
    echo "layer { name: \"data\" type: \"Input\" top: \"data\""
    echo "  input_param { shape { dim: $1 dim: $2 dim: $3 dim: $3 } } }"
    echo "layer { name: \"label\" type: \"Input\" top: \"label\""
    echo "  input_param { shape { dim: $1 } } }"
}
_loss() {
    echo "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"$1\" bottom: \"label\""
    echo "  top: \"loss\" }"
}

lenet_net() {
    echo 'name: "LeNet"'
    _inputs "$1" 1 28
    _conv conv1 data 20 0; _pool pool1 conv1 MAX 2; _conv conv2 pool1 50 0
    _pool pool2 conv2 MAX 2; _ip ip1 pool2 500; _relu relu1 ip1; _ip ip2 ip1 10; _loss ip2
}

cifar10_quick_net() {
    echo 'name: "CIFAR10_quick"'
    _inputs "$1" 3 32
    _conv conv1 data 32 2; _pool pool1 conv1 MAX 3; _relu relu1 pool1
    _conv conv2 pool1 32 2; _relu relu2 conv2; _pool pool2 conv2 AVE 3
    _conv conv3 pool2 64 2; _relu relu3 conv3; _pool pool3 conv3 AVE 3
    _ip ip1 pool3 64; _ip ip2 ip1 10; _loss ip2
}

# Drops comments, then every top-level layer block whose type is a data
# layer; the Input layers go where the first one was.
input_net() {
    sed 's/#.*//' "$1" | awk -v batch="$2" '
        function flush() {
            if (buf ~ /type: *"(Data|ImageData|HDF5Data|MemoryData|WindowData)"/) {
                if (!done)
                    printf "layer { name: \"data\" type: \"Input\" top: \"data\"\n" \
                           "  input_param { shape { dim: %d dim: 3 dim: 227 dim: 227 } } }\n" \
                           "layer { name: \"label\" type: \"Input\" top: \"label\"\n" \
                           "  input_param { shape { dim: %d } } }\n", batch, batch
                done = 1
            } else {
                printf "%s", buf
            }
            buf = ""
        }
        {
            if (depth == 0 && $0 !~ /^[ \t]*layer[ \t]*\{/) { print; next }
            buf = buf $0 "\n"
            line = $0
            depth += gsub(/\{/, "{", line) - gsub(/\}/, "}", line)
            if (depth == 0) flush()
        }'
}
