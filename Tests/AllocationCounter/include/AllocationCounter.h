#ifndef DESCENT_ALLOCATION_COUNTER_H
#define DESCENT_ALLOCATION_COUNTER_H

// Counts heap allocations made by the calling thread while counting is on, so that a test can
// check that a training step allocates nothing. The test process's malloc, calloc, realloc and
// the aligned allocators go through this target (the executable's definitions interpose libc's)
// and forward to glibc; counting is per thread, so tests running beside it do not disturb it.

/// Starts counting this thread's allocations from zero.
void allocation_counter_start(void);
/// Stops counting and returns how many allocations this thread made since the start, except those
/// OpenBLAS made itself.
long allocation_counter_stop(void);
/// The allocations OpenBLAS's own code made on this thread in the last counted span.
long allocation_counter_blas_allocations(void);
/// 0 when built under a sanitizer, whose own malloc replaces the counter's: nothing is counted.
int allocation_counter_is_active(void);

#endif
