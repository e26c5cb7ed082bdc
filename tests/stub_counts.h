/* stub_counts.h — what the two CPU stand-ins for CUDA (the op emulator,
 * tests/emu/, and hostcuda, tests/hostcuda/) report about the library's
 * use of the device, for tests of what a training step costs the host and
 * of leaks. Tests declare the functions weak and skip on a real GPU. */
#ifndef CNN_STUB_COUNTS_H
#define CNN_STUB_COUNTS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Since the start of the process. */
typedef struct cnn_stub_counts {
    unsigned long allocs;           /* device or pinned allocations */
    unsigned long frees;            /* their frees */
    unsigned long stream_syncs;     /* host waits for a whole stream */
    unsigned long downloads;        /* device-to-host copies: each waits on a GPU */
    unsigned long pageable_uploads; /* from pageable memory: synchronous on a GPU */
    unsigned long event_syncs;      /* host waits for one event */
} cnn_stub_counts;

void cnn_stub_get_counts(cnn_stub_counts *out);
/* Bytes of device memory allocated and not yet freed, on every device. */
size_t cnn_stub_live_device_bytes(void);

#ifdef __cplusplus
}
#endif

#endif
