/* Power-cut shim for the fault suite (LD_PRELOAD into one process).
 *
 * For regular files under $POWERCUT_DIR it appends to $POWERCUT_LOG, before each write reaches the file, what
 * that write overwrites (an undo record), and after each successful fsync/fdatasync the file's size (a sync
 * record). After a kill -9, tests/faults/powercut.py undoes, file by file, every write made since the file's
 * last sync and cuts it to its size then: the file as a power cut would leave it. A record is one write(2) to
 * an O_APPEND descriptor made before the write it describes (a torn last record belongs to a write that never
 * happened) and a sync record is logged before fsync returns, so whatever the process acted on is covered.
 *
 *   W <offset> <length> <old length> <path>\n<old bytes>     before pwrite/pwrite64/write
 *   T <new size> <old size> <tail length> <path>\n<tail>     before ftruncate (tail: the bytes cut off)
 *   S <size> <path>\n                                         after fsync/fdatasync
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

/* the file's path when it is a regular file under $POWERCUT_DIR, else 0 */
static int watched(int fd, char *path, size_t size, struct stat *st) {
    const char *dir = getenv("POWERCUT_DIR");
    char link[64];
    ssize_t n;
    if (dir == NULL || getenv("POWERCUT_LOG") == NULL) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, size - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    if (strncmp(path, dir, strlen(dir)) != 0) return 0;
    return fstat(fd, st) == 0 && S_ISREG(st->st_mode);
}

/* one record: header line plus `len` bytes read from `fd` at `at` (old content), in one write */
static void record(const char *head, int fd, off_t at, size_t len) {
    size_t hlen = strlen(head);
    char *buf = malloc(hlen + len);
    ssize_t got = 0;
    if (buf == NULL) abort(); /* a record we cannot write would make the power cut lie: fail loudly */
    memcpy(buf, head, hlen);
    if (len > 0) {
        got = pread(fd, buf + hlen, len, at);
        if (got != (ssize_t)len) abort();
    }
    if (real_write == NULL) real_write = next("write");
    if (log_fd < 0) log_fd = open(getenv("POWERCUT_LOG"), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (log_fd < 0 || real_write(log_fd, buf, hlen + len) != (ssize_t)(hlen + len)) abort();
    free(buf);
}

static int is_watched(int fd) {
    char path[4096];
    struct stat st;
    return watched(fd, path, sizeof path, &st);
}

static void before_write(int fd, size_t len, off_t offset, int positional) {
    char path[4096], head[4300];
    struct stat st;
    off_t at = offset, old = 0;
    if (!watched(fd, path, sizeof path, &st)) return;
    if (!positional) at = lseek(fd, 0, SEEK_CUR);
    if (at < 0) return;
    if (at < st.st_size) old = st.st_size - at < (off_t)len ? st.st_size - at : (off_t)len;
    snprintf(head, sizeof head, "W %lld %zu %lld %s\n", (long long)at, len, (long long)old, path);
    record(head, fd, at, (size_t)old);
}

/* Only writes to watched files take the lock: a signal handler's write (Python's wakeup fd) may interrupt a
 * thread holding it, and must not wait for it. */
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t offset) {
    int saved = errno;
    ssize_t rc;
    if (real_pwrite64 == NULL) real_pwrite64 = next("pwrite64");
    if (!is_watched(fd)) {
        errno = saved;
        return real_pwrite64(fd, buf, len, offset);
    }
    pthread_mutex_lock(&lock);
    before_write(fd, len, offset, 1);
    if (real_pwrite64 == NULL) real_pwrite64 = next("pwrite64");
    errno = saved;
    rc = real_pwrite64(fd, buf, len, offset);
    pthread_mutex_unlock(&lock);
    return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t offset) { return pwrite64(fd, buf, len, offset); }

ssize_t write(int fd, const void *buf, size_t len) {
    int saved = errno;
    ssize_t rc;
    if (real_write == NULL) real_write = next("write");
    if (fd <= 2 || fd == log_fd || !is_watched(fd)) {
        errno = saved;
        return real_write(fd, buf, len);
    }
    pthread_mutex_lock(&lock);
    before_write(fd, len, 0, 0);
    if (real_write == NULL) real_write = next("write");
    errno = saved;
    rc = real_write(fd, buf, len);
    pthread_mutex_unlock(&lock);
    return rc;
}

static int do_truncate(int fd, off_t size, const char *name) {
    static int (*real64)(int, off_t);
    char path[4096], head[4300];
    struct stat st;
    int rc, saved = errno, mine = is_watched(fd);
    if (mine) pthread_mutex_lock(&lock);
    if (mine && watched(fd, path, sizeof path, &st)) {
        off_t tail = st.st_size > size ? st.st_size - size : 0;
        snprintf(head, sizeof head, "T %lld %lld %lld %s\n", (long long)size, (long long)st.st_size,
                 (long long)tail, path);
        record(head, fd, size, (size_t)tail);
    }
    if (real64 == NULL) real64 = (int (*)(int, off_t))next(name);
    errno = saved;
    rc = real64(fd, size);
    if (mine) pthread_mutex_unlock(&lock);
    return rc;
}

int ftruncate64(int fd, off_t size) { return do_truncate(fd, size, "ftruncate64"); }
int ftruncate(int fd, off_t size) { return do_truncate(fd, size, "ftruncate"); }

static int after_sync(int fd, int rc) {
    char path[4096], head[4300];
    struct stat st;
    int saved = errno;
    if (rc == 0 && is_watched(fd)) {
        pthread_mutex_lock(&lock);
        if (watched(fd, path, sizeof path, &st)) {
            snprintf(head, sizeof head, "S %lld %s\n", (long long)st.st_size, path);
            record(head, fd, 0, 0);
        }
        pthread_mutex_unlock(&lock);
    }
    errno = saved;
    return rc;
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))next("fsync");
    return after_sync(fd, real(fd));
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))next("fdatasync");
    return after_sync(fd, real(fd));
}
