/* Preloaded before Debian's libfaketime 0.9.10 (simulators/edgeclock.py): clock_nanosleep() on a clock that is
 * not faked (FAKETIME_DONT_FAKE_MONOTONIC=1: the monotonic clocks) goes to the kernel untouched.
 *
 * libfaketime 0.9.10 subtracts its fake wall-clock offset from every TIMER_ABSTIME deadline, also on
 * CLOCK_MONOTONIC when that clock is not faked, so the kernel gets a negative time and Python 3.11's
 * time.sleep() (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)) fails with EINVAL (libfaketime issue
 * #426, fixed after 0.9.10). CLOCK_REALTIME sleeps still go through libfaketime, which fakes that clock.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req, struct timespec *rem)
{
    if (clock_id != CLOCK_REALTIME && clock_id != CLOCK_REALTIME_ALARM && clock_id != CLOCK_TAI) {
        /* the syscall returns -1 with errno; clock_nanosleep returns the error number itself */
        long rc = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem);
        return rc == 0 ? 0 : errno;
    }
    static clock_nanosleep_fn next = NULL;
    if (next == NULL) {
        next = (clock_nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
        if (next == NULL) {
            return ENOSYS;
        }
    }
    return next(clock_id, flags, req, rem);
}
