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

# -fno-trapping-math: we never unmask floating-point traps, and without it
# GCC keeps a branch in every float select (ReLU: 9x slower on random signs).
OPT := $(if $(DEBUG),-O0 -g,-O3 -march=x86-64-v2 -fno-trapping-math -g)
CFLAGS += -std=gnu11 $(OPT) -Wall -Wextra -Wno-unused-parameter -fPIC -fopenmp \
          -MMD -MP -I. -Icore $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lz -lm -lpthread -fopenmp
EMU_LDLIBS := $(LDLIBS)

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

# The CUDA op layer emulated on the CPU (tests/emu/): the library without
# kernels/cuda or nocuda.c, so that `make test` runs the GPU path on any
# machine. Sources that test CNN_WITH_CUDA are compiled again with it when
# the main build lacks it (CUDA=0); the emulator needs no nvcc.
EMU_SRC := $(filter-out tests/emu/check_%.c,$(wildcard tests/emu/*.c))
LIB_SRC := $(filter-out kernels/nocuda.c,$(SRC))
ifeq ($(CUDA),1)
  EMU_REBUILT :=
else
  EMU_REBUILT := $(shell grep -l CNN_WITH_CUDA $(LIB_SRC) 2>/dev/null)
endif
# The library's C objects with the GPU path compiled in (both stand-ins).
GPU_LIB_OBJ := $(patsubst %.c,$(B)/%.o,$(filter-out $(EMU_REBUILT),$(LIB_SRC))) \
               $(patsubst %.c,$(B)/emu/%.o,$(EMU_REBUILT))
EMU_OBJ := $(GPU_LIB_OBJ) $(patsubst %.c,$(B)/emu/%.o,$(EMU_SRC))

# The CUDA sources themselves compiled by the host C++ compiler against
# stand-ins for the CUDA runtime, cuBLAS and cuDNN (tests/hostcuda/), so
# that `make test` runs our kernels on the CPU on any machine.
HC_CXXFLAGS := -std=c++17 -O2 -g -ffp-contract=off -Wall -Wextra -Wno-unused-parameter \
               -fopenmp -MMD -MP -DCNN_HOSTCUDA -Itests/hostcuda/include -I. -Icore $(PKG_CFLAGS)
HC_OBJ := $(GPU_LIB_OBJ) $(patsubst %.cu,$(B)/hostcuda/%.o,$(wildcard kernels/cuda/*.cu)) \
          $(patsubst %.cpp,$(B)/hostcuda/%.o,$(filter-out %/check_hostcuda.cpp,$(wildcard tests/hostcuda/*.cpp)))
HC_TESTS := $(patsubst tests/gpu/%.c,$(B)/tests/hostcuda/%,$(wildcard tests/gpu/check_*.c)) \
            $(B)/tests/hostcuda/check_hostcuda

TOOLS := $(patsubst tools/%.c,bin/%,$(wildcard tools/*.c))
HC_TOOLS := $(patsubst tools/%.c,$(B)/hostcuda/bin/%,$(wildcard tools/*.c))
TOOL_COMMON := $(patsubst %.c,$(B)/%.o,$(wildcard tools/common/*.c))
TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/check_*.c tests/gpu/check_*.c))

EMU_TESTS := $(patsubst tests/gpu/%.c,$(B)/tests/emu/%,$(wildcard tests/gpu/check_gpu_net.c)) \
             $(patsubst tests/emu/%.c,$(B)/tests/emu/%,$(wildcard tests/emu/check_*.c))

all: lib/libcnn.a lib/libcnn.so lib/libcnn_emu.a lib/libcnn_hostcuda.a $(TOOLS) $(TESTS) \
     $(EMU_TESTS) $(HC_TESTS) $(HC_TOOLS)

lib/libcnn.a: $(OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

lib/libcnn_emu.a: $(EMU_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

lib/libcnn_hostcuda.a: $(HC_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

lib/libcnn.so: $(OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/emu/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DCNN_WITH_CUDA -c $< -o $@

$(B)/hostcuda/%.o: %.cu
	@mkdir -p $(@D)
	$(CXX) $(HC_CXXFLAGS) -x c++ -c $< -o $@

$(B)/hostcuda/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(HC_CXXFLAGS) -c $< -o $@

$(B)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

LINK_LIB := lib/libcnn.a

bin/%: tools/%.c $(TOOL_COMMON) lib/libcnn.a
	@mkdir -p $(@D) $(B)/tools
	$(CC) $(CFLAGS) -MF $(B)/tools/$*.d $< $(TOOL_COMMON) -o $@ $(LINK_LIB) $(LDLIBS)

$(B)/tests/%: tests/%.c tests/testutil.h lib/libcnn.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $< -o $@ $(LINK_LIB) $(CHECK_LIBS) $(LDLIBS)

# The GPU suites again, on the emulator (never check_gpu_ops: it compares the
# CUDA ops with the CPU kernels the emulator is made of).
$(B)/tests/emu/%: tests/gpu/%.c tests/testutil.h lib/libcnn_emu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $< -o $@ lib/libcnn_emu.a $(CHECK_LIBS) $(EMU_LDLIBS)

# The GPU suites on our CUDA sources run by the CPU (tests/hostcuda).
$(B)/tests/hostcuda/%: tests/gpu/%.c tests/testutil.h lib/libcnn_hostcuda.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $< -o $@ lib/libcnn_hostcuda.a $(CHECK_LIBS) $(EMU_LDLIBS) \
	    -lstdc++

# The rules tests/hostcuda enforces, each shown to fire.
$(B)/tests/hostcuda/check_hostcuda: tests/hostcuda/check_hostcuda.cpp lib/libcnn_hostcuda.a
	@mkdir -p $(@D)
	$(CXX) $(HC_CXXFLAGS) $(CHECK_CFLAGS) $< -o $@ lib/libcnn_hostcuda.a $(CHECK_LIBS) \
	    $(EMU_LDLIBS)

# The tools on our CUDA sources run by the CPU (`make hostcuda-tools`, then
# e.g. build/hostcuda/bin/cnntrain --gpu 0 …).
hostcuda-tools: $(HC_TOOLS)

$(B)/hostcuda/bin/%: tools/%.c $(TOOL_COMMON) lib/libcnn_hostcuda.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MF $(B)/hostcuda/bin/$*.d $< $(TOOL_COMMON) -o $@ lib/libcnn_hostcuda.a \
	    $(EMU_LDLIBS) -lstdc++

# The tools on the emulator, for trying the GPU paths of the tools on the
# CPU (`make emu-tools`, then e.g. build/emu/bin/cnntrain --gpu 0 …).
EMU_TOOLS := $(patsubst tools/%.c,$(B)/emu/bin/%,$(wildcard tools/*.c))
emu-tools: $(EMU_TOOLS)

$(B)/emu/bin/%: tools/%.c $(TOOL_COMMON) lib/libcnn_emu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MF $(B)/emu/bin/$*.d $< $(TOOL_COMMON) -o $@ lib/libcnn_emu.a $(EMU_LDLIBS)

# The emulator's own checks.
$(B)/tests/emu/check_emu: tests/emu/check_emu.c tests/testutil.h lib/libcnn_emu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $< -o $@ lib/libcnn_emu.a $(CHECK_LIBS) $(EMU_LDLIBS)

test: all
	tests/run.sh

clean:
	rm -rf $(B) lib bin

.PHONY: all test clean emu-tools hostcuda-tools
.SECONDARY:
-include $(shell find $(B) -name '*.d' 2>/dev/null)
