/*
 * libstrata_faultshim: an LD_PRELOAD shim that makes writes or syncs of
 * files under one directory fail with a chosen errno (EIO, ENOSPC) while a
 * trigger file exists, for strata-chaos's I/O fault tests (see
 * tools/chaos/src/iofault.rs and the crate README).
 *
 * Build: cc -shared -fPIC -O2 -o libstrata_faultshim.so faultshim.c -ldl
 * Use:   LD_PRELOAD=/abs/libstrata_faultshim.so \
 *          STRATA_FAULT_DIR=/abs/data STRATA_FAULT_TRIGGER=/abs/armed \
 *          STRATA_FAULT_OPS=sync|write|both STRATA_FAULT_ERRNO=EIO|ENOSPC \
 *          STRATA_FAULT_LOG=/abs/faults.log prog
 *
 * Intercepted: fsync, fdatasync, sync_file_range ("sync"); write, writev,
 * pwrite, pwrite64, pwritev ("write"). While $STRATA_FAULT_TRIGGER exists
 * (checked with access(2) on every intercepted call: the test creates and
 * removes it to choose the moment), a call of a chosen kind on a regular
 * file whose path starts with $STRATA_FAULT_DIR fails without doing
 * anything: it returns -1 with errno set. Everything else (sockets, pipes,
 * log files elsewhere) goes to the real function. Each injected failure
 * appends one line to $STRATA_FAULT_LOG ("<op>\t<path>\n", one write(2) on
 * an O_APPEND descriptor), so a test can prove the fault bit.
 *
 * Without STRATA_FAULT_DIR and STRATA_FAULT_TRIGGER the shim passes every
 * call through. Multi-threaded callers: no malloc, no stdio, no locks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off64_t, off64_t, unsigned int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);

static const char *fault_dir;
static size_t fault_dir_len;
static const char *trigger;
static int fail_sync;
static int fail_write;
static int fault_errno = EIO;
static int log_fd = -1;

__attribute__((constructor)) static void shim_init(void)
{
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_sync_file_range =
        (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_writev = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 =
        (ssize_t (*)(int, const void *, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
    real_pwritev =
        (ssize_t (*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
    const char *dir = getenv("STRATA_FAULT_DIR");
    const char *trig = getenv("STRATA_FAULT_TRIGGER");
    if (dir == NULL || dir[0] == '\0' || trig == NULL || trig[0] == '\0') {
        return;
    }
    fault_dir = dir;
    fault_dir_len = strlen(dir);
    trigger = trig;
    const char *ops = getenv("STRATA_FAULT_OPS");
    if (ops == NULL || strcmp(ops, "both") == 0) {
        fail_sync = fail_write = 1;
    } else {
        fail_sync = strcmp(ops, "sync") == 0;
        fail_write = strcmp(ops, "write") == 0;
    }
    const char *e = getenv("STRATA_FAULT_ERRNO");
    if (e != NULL && strcmp(e, "ENOSPC") == 0) {
        fault_errno = ENOSPC;
    }
    const char *log = getenv("STRATA_FAULT_LOG");
    if (log != NULL && log[0] != '\0') {
        log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
}

/* The path of a regular file open as fd, into buf; 0 if not one. */
static int regular_path(int fd, char *buf, size_t cap)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return 0;
    }
    char link[64] = "/proc/self/fd/";
    size_t n = strlen(link);
    char digits[16];
    int i = 0;
    unsigned int u = (unsigned int)fd;
    do {
        digits[i++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0 && i < (int)sizeof(digits));
    while (i > 0) {
        link[n++] = digits[--i];
    }
    link[n] = '\0';
    ssize_t len = readlink(link, buf, cap - 1);
    if (len <= 0) {
        return 0;
    }
    buf[len] = '\0';
    return 1;
}

static void record(const char *op, const char *path)
{
    if (log_fd < 0) {
        return;
    }
    char line[PATH_MAX + 32];
    size_t a = strlen(op), b = strlen(path);
    if (a + b + 2 > sizeof(line)) {
        return;
    }
    memcpy(line, op, a);
    line[a] = '\t';
    memcpy(line + a + 1, path, b);
    line[a + 1 + b] = '\n';
    /* Straight to the real write: this shim's own write must not recurse. */
    (void)real_write(log_fd, line, a + b + 2);
}

/* Whether this call fails now; if so, errno is set and it is logged. */
static int should_fail(int fd, int is_sync, const char *op)
{
    if (fault_dir == NULL || (is_sync ? !fail_sync : !fail_write) || fd == log_fd) {
        return 0;
    }
    int saved = errno;
    if (access(trigger, F_OK) != 0) {
        errno = saved;
        return 0;
    }
    char path[PATH_MAX];
    if (!regular_path(fd, path, sizeof(path)) || strncmp(path, fault_dir, fault_dir_len) != 0) {
        errno = saved;
        return 0;
    }
    record(op, path);
    errno = fault_errno;
    return 1;
}

int fsync(int fd)
{
    return should_fail(fd, 1, "fsync") ? -1 : real_fsync(fd);
}

int fdatasync(int fd)
{
    return should_fail(fd, 1, "fdatasync") ? -1 : real_fdatasync(fd);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
    if (should_fail(fd, 1, "sync_file_range")) {
        return -1;
    }
    return real_sync_file_range(fd, offset, nbytes, flags);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    return should_fail(fd, 0, "write") ? -1 : real_write(fd, buf, count);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    return should_fail(fd, 0, "writev") ? -1 : real_writev(fd, iov, iovcnt);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    return should_fail(fd, 0, "pwrite") ? -1 : real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
    return should_fail(fd, 0, "pwrite64") ? -1 : real_pwrite64(fd, buf, count, offset);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    return should_fail(fd, 0, "pwritev") ? -1 : real_pwritev(fd, iov, iovcnt, offset);
}
