#define _GNU_SOURCE
#include "AllocationCounter.h"
#include <errno.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// glibc's own entry points, which these definitions forward to.
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static __thread int counting;
static __thread long allocations;
static __thread long blas_allocations;

// OpenBLAS's code, whose own allocations are counted apart: its threaded sgemm heap-allocates a job
// table per call for some shapes (Debian builds it for many CPUs, too large for the stack).
static uintptr_t blas_start, blas_end;

static int find_openblas(struct dl_phdr_info *info, size_t size, void *unused) {
    (void)size; (void)unused;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libopenblas") == NULL) return 0;
    // Every loaded segment of the library: its code may sit in more than one.
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD) continue;
        uintptr_t start = info->dlpi_addr + segment->p_vaddr, end = start + segment->p_memsz;
        if (blas_start == 0 || start < blas_start) blas_start = start;
        if (end > blas_end) blas_end = end;
    }
    return 1;
}

#define COUNT_ONE() \
    do { \
        if (counting) { \
            uintptr_t caller = (uintptr_t)__builtin_return_address(0); \
            if (caller >= blas_start && caller < blas_end) blas_allocations += 1; else allocations += 1; \
        } \
    } while (0)

void allocation_counter_start(void) {
    if (blas_end == 0) dl_iterate_phdr(find_openblas, NULL);
    allocations = 0;
    blas_allocations = 0;
    counting = 1;
}

long allocation_counter_stop(void) {
    counting = 0;
    return allocations;
}

long allocation_counter_blas_allocations(void) {
    return blas_allocations;
}

// AddressSanitizer and ThreadSanitizer define malloc themselves (`make sanitize`): there the
// interposer steps aside and the allocation tests are skipped.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

#ifdef SANITIZED
int allocation_counter_is_active(void) { return 0; }
#else
int allocation_counter_is_active(void) { return 1; }

void *malloc(size_t size) {
    COUNT_ONE();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    COUNT_ONE();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    COUNT_ONE();
    return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size) {
    COUNT_ONE();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    COUNT_ONE();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    COUNT_ONE();
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}
#endif
