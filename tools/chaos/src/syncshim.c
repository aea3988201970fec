/*
 * libstrata_syncshim: an LD_PRELOAD shim that records which file contents
 * a process made durable, for strata-chaos's `powerloss` fault (see
 * tools/chaos/src/powerloss.rs and the crate README).
 *
 * Build: cc -shared -fPIC -O2 -o libstrata_syncshim.so syncshim.c -ldl
 * Use:   LD_PRELOAD=/abs/libstrata_syncshim.so STRATA_SYNC_LOG=/abs/synced.log prog
 *
 * Intercepted: fsync, fdatasync, sync_file_range (only with
 * SYNC_FILE_RANGE_WAIT_AFTER, recorded like fdatasync of the whole file:
 * approximate), syncfs (recorded as a sync of the directory or file it is
 * called on), rename, renameat, renameat2. Each calls the real function
 * first; only on success is a line appended to $STRATA_SYNC_LOG, with ONE
 * write(2) on an O_APPEND descriptor (atomic between threads and
 * processes):
 *
 *   F\t<ino>\t<size>\t<horizon>\t<absolute path>\n   regular file synced
 *   D\t<ino>\t-1\t-1\t<absolute path>\n              directory synced
 *   R\t<ino>\t<absolute new path>\t<absolute old path>\n   rename done
 *
 * <size> is the file size and <horizon> the end of the content known to be
 * written before the sync, both taken BEFORE the real sync is called (so
 * they are covered by it even if other threads append meanwhile):
 *   - a descriptor open for writing, not O_APPEND, whose offset is in
 *     (0, size]: the offset (a sequential writer into a preallocated file,
 *     like fjall's journal: set_len(64 MiB) first, then writes from 0);
 *   - a file without any data extent (SEEK_DATA finds none: all hole, e.g.
 *     just preallocated with ftruncate): 0;
 *   - otherwise: the size (the whole current content).
 *
 * Multi-threaded callers (a Rust server): no malloc, no stdio, no locks;
 * stack buffers and plain system calls only. errno is preserved as the
 * real call left it. Records are best-effort: a failure to record is
 * silent (it can only make the fault lose MORE data, never hide a loss
 * the process could have prevented... except a lost R line, which makes
 * the renamed file look unsynced: also "more loss").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SYNC_FILE_RANGE_WAIT_AFTER
#define SYNC_FILE_RANGE_WAIT_AFTER 4
#endif

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off64_t, off64_t, unsigned int);
static int (*real_syncfs)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);

/* The log, opened once at load time (before any thread of the program). */
static int log_fd = -1;

__attribute__((constructor)) static void shim_init(void)
{
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_sync_file_range =
        (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    real_syncfs = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    real_renameat = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    real_renameat2 = (int (*)(int, const char *, int, const char *, unsigned int))dlsym(
        RTLD_NEXT, "renameat2");
    const char *path = getenv("STRATA_SYNC_LOG");
    if (path != NULL && path[0] != '\0') {
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
}

/* ---- a tiny line builder on a stack buffer ---- */

struct line {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
};

#define LINE(name, storage) struct line name = {storage, sizeof(storage), 0, 0}

static void put_str(struct line *l, const char *s)
{
    size_t n = strlen(s);
    if (l->len + n >= l->cap) {
        l->overflow = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_char(struct line *l, char c)
{
    if (l->len + 1 >= l->cap) {
        l->overflow = 1;
        return;
    }
    l->buf[l->len++] = c;
}

static void put_i64(struct line *l, int64_t v)
{
    char tmp[24];
    int i = 0;
    uint64_t u;
    if (v < 0) {
        put_char(l, '-');
        u = (uint64_t)(-(v + 1)) + 1;
    } else {
        u = (uint64_t)v;
    }
    do {
        tmp[i++] = (char)('0' + (u % 10));
        u /= 10;
    } while (u != 0);
    while (i > 0) {
        put_char(l, tmp[--i]);
    }
}

static void emit(struct line *l)
{
    if (log_fd < 0 || l->overflow) {
        return;
    }
    put_char(l, '\n');
    if (l->overflow) {
        return;
    }
    /* One write: O_APPEND makes it atomic with respect to other appenders. */
    ssize_t r;
    do {
        r = write(log_fd, l->buf, l->len);
    } while (r < 0 && errno == EINTR);
}

/* "/proc/self/fd/<fd>" into `proc` (64 bytes); 0 on success. */
static int proc_fd_path(int fd, char proc[64])
{
    struct line p = {proc, 64, 0, 0};
    put_str(&p, "/proc/self/fd/");
    put_i64(&p, fd);
    if (p.overflow) {
        return -1;
    }
    proc[p.len] = '\0';
    return 0;
}

/* The absolute path of an open descriptor; 0 on success. */
static int fd_path(int fd, char *out, size_t cap)
{
    char proc[64];
    if (proc_fd_path(fd, proc) != 0) {
        return -1;
    }
    ssize_t n = readlink(proc, out, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) {
        return -1;
    }
    out[n] = '\0';
    if (out[0] != '/') {
        return -1; /* a socket, a pipe, an anonymous inode */
    }
    /* An unlinked file: nothing on disk to model. */
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof(deleted) - 1;
    if ((size_t)n > dl && memcmp(out + n - dl, deleted, dl) == 0) {
        return -1;
    }
    return 0;
}

/* What is known about a descriptor before it is synced. */
struct pre {
    int ok;
    int is_dir;
    int64_t ino;
    int64_t size;
    int64_t horizon;
    char path[PATH_MAX];
};

static void before_sync(int fd, struct pre *pre)
{
    int saved = errno;
    struct stat st;
    pre->ok = 0;
    if (log_fd < 0 || fstat(fd, &st) != 0) {
        errno = saved;
        return;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        errno = saved;
        return;
    }
    if (fd_path(fd, pre->path, sizeof(pre->path)) != 0) {
        errno = saved;
        return;
    }
    pre->ino = (int64_t)st.st_ino;
    if (S_ISDIR(st.st_mode)) {
        pre->is_dir = 1;
        pre->size = -1;
        pre->horizon = -1;
        pre->ok = 1;
        errno = saved;
        return;
    }
    pre->is_dir = 0;
    pre->size = (int64_t)st.st_size;
    pre->horizon = pre->size;
    int flags = fcntl(fd, F_GETFL);
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (flags != -1 && (flags & O_ACCMODE) != O_RDONLY && !(flags & O_APPEND) && pos > 0 &&
        (int64_t)pos <= pre->size) {
        pre->horizon = (int64_t)pos;
    } else if (pre->size > 0) {
        /* All hole? Ask on a descriptor of our own: SEEK_DATA moves the
         * offset, and the caller's offset must not change under it. (Its
         * close() would drop POSIX fcntl locks the process holds on the
         * file; fjall locks with flock(2), which close() of another
         * descriptor leaves alone, and its lock file is empty anyway.) */
        char proc[64];
        if (proc_fd_path(fd, proc) == 0) {
            int own = open(proc, O_RDONLY | O_CLOEXEC);
            if (own >= 0) {
                if (lseek(own, 0, SEEK_DATA) < 0 && errno == ENXIO) {
                    pre->horizon = 0;
                }
                close(own);
            }
        }
    }
    pre->ok = 1;
    errno = saved;
}

static void after_sync(const struct pre *pre)
{
    if (!pre->ok) {
        return;
    }
    int saved = errno;
    char storage[PATH_MAX + 96];
    LINE(l, storage);
    put_str(&l, pre->is_dir ? "D\t" : "F\t");
    put_i64(&l, pre->ino);
    put_char(&l, '\t');
    put_i64(&l, pre->size);
    put_char(&l, '\t');
    put_i64(&l, pre->horizon);
    put_char(&l, '\t');
    put_str(&l, pre->path);
    emit(&l);
    errno = saved;
}

int fsync(int fd)
{
    struct pre pre;
    before_sync(fd, &pre);
    int r = real_fsync ? real_fsync(fd) : (int)syscall(SYS_fsync, fd);
    if (r == 0) {
        after_sync(&pre);
    }
    return r;
}

int fdatasync(int fd)
{
    struct pre pre;
    before_sync(fd, &pre);
    int r = real_fdatasync ? real_fdatasync(fd) : (int)syscall(SYS_fdatasync, fd);
    if (r == 0) {
        after_sync(&pre);
    }
    return r;
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
    struct pre pre;
    int record = (flags & SYNC_FILE_RANGE_WAIT_AFTER) != 0;
    if (record) {
        before_sync(fd, &pre);
    }
    int r = real_sync_file_range ? real_sync_file_range(fd, offset, nbytes, flags)
                                 : (int)syscall(SYS_sync_file_range, fd, offset, nbytes, flags);
    if (r == 0 && record) {
        after_sync(&pre);
    }
    return r;
}

int syncfs(int fd)
{
    struct pre pre;
    before_sync(fd, &pre);
    int r = real_syncfs ? real_syncfs(fd) : (int)syscall(SYS_syncfs, fd);
    if (r == 0) {
        after_sync(&pre);
    }
    return r;
}

/* `dirfd`-relative `path` as an absolute path; 0 on success. */
static int abs_path(int dirfd, const char *path, char *out, size_t cap)
{
    if (path == NULL) {
        return -1;
    }
    struct line l = {out, cap, 0, 0};
    if (path[0] != '/') {
        char dir[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (getcwd(dir, sizeof(dir)) == NULL) {
                return -1;
            }
        } else if (fd_path(dirfd, dir, sizeof(dir)) != 0) {
            return -1;
        }
        put_str(&l, dir);
        if (l.len == 0 || l.buf[l.len - 1] != '/') {
            put_char(&l, '/');
        }
    }
    put_str(&l, path);
    if (l.overflow) {
        return -1;
    }
    out[l.len] = '\0';
    return 0;
}

struct pre_rename {
    int ok;
    char from[PATH_MAX];
    char to[PATH_MAX];
};

static void before_rename(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                          struct pre_rename *pre)
{
    int saved = errno;
    pre->ok = log_fd >= 0 && abs_path(olddirfd, oldpath, pre->from, sizeof(pre->from)) == 0 &&
              abs_path(newdirfd, newpath, pre->to, sizeof(pre->to)) == 0;
    errno = saved;
}

static void after_rename(int newdirfd, const char *newpath, const struct pre_rename *pre)
{
    if (!pre->ok) {
        return;
    }
    int saved = errno;
    struct stat st;
    if (fstatat(newdirfd, newpath, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        char storage[2 * PATH_MAX + 64];
        LINE(l, storage);
        put_str(&l, "R\t");
        put_i64(&l, (int64_t)st.st_ino);
        put_char(&l, '\t');
        put_str(&l, pre->to);
        put_char(&l, '\t');
        put_str(&l, pre->from);
        emit(&l);
    }
    errno = saved;
}

int rename(const char *oldpath, const char *newpath)
{
    struct pre_rename pre;
    before_rename(AT_FDCWD, oldpath, AT_FDCWD, newpath, &pre);
    int r = real_rename ? real_rename(oldpath, newpath)
                        : (int)syscall(SYS_renameat2, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
    if (r == 0) {
        after_rename(AT_FDCWD, newpath, &pre);
    }
    return r;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    struct pre_rename pre;
    before_rename(olddirfd, oldpath, newdirfd, newpath, &pre);
    int r = real_renameat ? real_renameat(olddirfd, oldpath, newdirfd, newpath)
                          : (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, 0);
    if (r == 0) {
        after_rename(newdirfd, newpath, &pre);
    }
    return r;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
    struct pre_rename pre;
    before_rename(olddirfd, oldpath, newdirfd, newpath, &pre);
    /* RENAME_EXCHANGE swaps two names: not modelled, not recorded. */
    if (flags & 2u) {
        pre.ok = 0;
    }
    int r = real_renameat2
                ? real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags)
                : (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
    if (r == 0) {
        after_rename(newdirfd, newpath, &pre);
    }
    return r;
}
