/* A slow disk for bench/slow_disk.py: an LD_PRELOAD shim that delays the calls that reach the
 * disk (fsync, fdatasync, write, pwrite, rename, statvfs) when they touch files under
 * $SLOW_DISK_DIR, as an SD card or a busy eMMC does. Delays in milliseconds come from
 * $SLOW_DISK_SYNC_MS (fsync, fdatasync), $SLOW_DISK_WRITE_MS (each write) and $SLOW_DISK_META_MS
 * (rename, statvfs). Nothing else changes: the data is written as usual.
 *
 *   cc -O2 -shared -fPIC -o slow_disk.so bench/slow_disk.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static const char *slow_dir(void) {
    const char *dir = getenv("SLOW_DISK_DIR");
    return dir && *dir ? dir : NULL;
}

static void pause_ms(const char *variable) {
    const char *text = getenv(variable);
    long ms = text ? atol(text) : 0;
    if (ms > 0) {
        struct timespec wait = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&wait, NULL);
    }
}

static int under(const char *path) {
    const char *dir = slow_dir();
    return dir && path && strncmp(path, dir, strlen(dir)) == 0;
}

static int fd_under(int fd) {
    char link[64], target[4096];
    if (!slow_dir()) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, target, sizeof target - 1);
    if (length <= 0) return 0;
    target[length] = '\0';
    return under(target);
}

#define NEXT(name) static __typeof__(&name) real; if (!real) real = dlsym(RTLD_NEXT, #name)

int fsync(int fd) { NEXT(fsync); if (fd_under(fd)) pause_ms("SLOW_DISK_SYNC_MS"); return real(fd); }
int fdatasync(int fd) {
    NEXT(fdatasync); if (fd_under(fd)) pause_ms("SLOW_DISK_SYNC_MS"); return real(fd);
}
ssize_t write(int fd, const void *data, size_t size) {
    NEXT(write); if (fd > 2 && fd_under(fd)) pause_ms("SLOW_DISK_WRITE_MS"); return real(fd, data, size);
}
ssize_t pwrite(int fd, const void *data, size_t size, off_t offset) {
    NEXT(pwrite); if (fd_under(fd)) pause_ms("SLOW_DISK_WRITE_MS"); return real(fd, data, size, offset);
}
ssize_t pwrite64(int fd, const void *data, size_t size, off_t offset) {
    NEXT(pwrite64); if (fd_under(fd)) pause_ms("SLOW_DISK_WRITE_MS"); return real(fd, data, size, offset);
}
int rename(const char *from, const char *to) {
    NEXT(rename); if (under(to)) pause_ms("SLOW_DISK_META_MS"); return real(from, to);
}
int renameat(int from_dir, const char *from, int to_dir, const char *to) {
    NEXT(renameat); if (under(to)) pause_ms("SLOW_DISK_META_MS"); return real(from_dir, from, to_dir, to);
}
int statvfs(const char *path, struct statvfs *out) {
    NEXT(statvfs); if (under(path)) pause_ms("SLOW_DISK_META_MS"); return real(path, out);
}
int statvfs64(const char *path, struct statvfs64 *out) {
    NEXT(statvfs64); if (under(path)) pause_ms("SLOW_DISK_META_MS"); return real(path, out);
}
