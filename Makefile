# cnn — build the library, the tools and the tests.
#   make            CUDA build where nvcc exists, else CPU-only
#   make CUDA=0     CPU-only build
#   make test       build and run every test (GPU suites skip without a GPU)
#   make DEBUG=1    -O0 -g with sanitizer-friendly flags

CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(CUDA_HOME)/bin/nvcc
CUDA ?= $(if $(wildcard $(NVCC)),1,0)

CC ?= cc
PKGS := libcjson libpng libjpeg openblas zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

OPT := $(if $(DEBUG),-O0 -g,-O3 -march=x86-64-v2 -g)
CFLAGS += -std=gnu11 $(OPT) -Wall -Wextra -Wno-unused-parameter -fPIC -fopenmp \
          -MMD -MP -I. -Icore $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lz -lm -lpthread -fopenmp

B := build
SRC := $(wildcard core/*.c kernels/cpu/*.c layers/*.c solvers/*.c)
ifeq ($(CUDA),1)
  CU_SRC := $(wildcard kernels/cuda/*.cu)
  CFLAGS += -DCNN_WITH_CUDA -I$(CUDA_HOME)/include
  NVCCFLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC,-Wall -I. -Icore \
               -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
else
  SRC += kernels/nocuda.c
endif
OBJ := $(SRC:%.c=$(B)/%.o) $(CU_SRC:%.cu=$(B)/%.cu.o)

TOOLS := $(patsubst tools/%.c,bin/%,$(wildcard tools/*.c))
TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/check_*.c tests/gpu/check_*.c))

all: lib/libcnn.a lib/libcnn.so $(TOOLS) $(TESTS)

lib/libcnn.a: $(OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

lib/libcnn.so: $(OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

LINK_LIB := lib/libcnn.a

bin/%: tools/%.c lib/libcnn.a
	@mkdir -p $(@D) $(B)/tools
	$(CC) $(CFLAGS) -MF $(B)/tools/$*.d $< -o $@ $(LINK_LIB) $(LDLIBS)

$(B)/tests/%: tests/%.c tests/testutil.h lib/libcnn.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $< -o $@ $(LINK_LIB) $(CHECK_LIBS) $(LDLIBS)

test: all
	tests/run.sh

clean:
	rm -rf $(B) lib bin

.PHONY: all test clean
.SECONDARY:
-include $(shell find $(B) -name '*.d' 2>/dev/null)
