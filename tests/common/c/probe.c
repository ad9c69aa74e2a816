/* The permission probe of the shmfs tests (tests/common/probe.rs compiles it with cc).
 *
 * `probe OP ARGS...` performs one system call (or open + read/write) and prints `ok`, or the
 * errno's name (`EACCES`, `EPERM`, ...). Run as any uid/gid/groups with setpriv, it tells what
 * that caller may do through the mount or directly against the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

static int done(int failed) {
    if (!failed) {
        puts("ok");
    } else {
        int e = errno;
        const char *name = strerrorname_np(e);
        if (name) puts(name); else printf("errno %d\n", e);
    }
    return 0;
}

static long num(const char *s, int base) { return strtol(s, NULL, base); }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: probe OP ARG...\n"); return 2; }
    const char *op = argv[1], *a = argv[2];
    char c = 0;
    if (!strcmp(op, "read")) {            /* read PATH: open O_RDONLY, read 1 byte */
        int fd = open(a, O_RDONLY);
        return done(fd < 0 || read(fd, &c, 1) < 0);
    } else if (!strcmp(op, "write")) {    /* write PATH: open O_WRONLY, pwrite "w" at 0 */
        int fd = open(a, O_WRONLY);
        return done(fd < 0 || pwrite(fd, "w", 1, 0) != 1);
    } else if (!strcmp(op, "write-text") && argc == 4) { /* write-text PATH TEXT: one write */
        int fd = open(a, O_WRONLY);
        size_t n = strlen(argv[3]);
        return done(fd < 0 || write(fd, argv[3], n) != (ssize_t)n);
    } else if (!strcmp(op, "chmod") && argc == 4) {      /* chmod PATH OCTAL */
        return done(chmod(a, (mode_t)num(argv[3], 8)) != 0);
    } else if (!strcmp(op, "chown") && argc == 5) {      /* chown PATH UID GID (-1 keeps) */
        return done(chown(a, (uid_t)num(argv[3], 10), (gid_t)num(argv[4], 10)) != 0);
    } else if (!strcmp(op, "truncate") && argc == 4) {   /* truncate PATH LEN */
        return done(truncate(a, (off_t)num(argv[3], 10)) != 0);
    } else if (!strcmp(op, "touch")) {    /* touch PATH: utimensat(NULL), times to now */
        return done(utimensat(AT_FDCWD, a, NULL, 0) != 0);
    } else if (!strcmp(op, "rmdir")) {
        return done(rmdir(a) != 0);
    } else if (!strcmp(op, "unlink")) {
        return done(unlink(a) != 0);
    } else if (!strcmp(op, "shm-read")) {  /* shm-read ID: shmat(SHM_RDONLY), read 1 byte */
        volatile char *p = shmat((int)num(a, 10), NULL, SHM_RDONLY);
        if (p == (void *)-1) return done(1);
        c = p[0];
        shmdt((void *)p);
        return done(0);
    } else if (!strcmp(op, "shm-write")) { /* shm-write ID: shmat read-write, write "w" at 0 */
        volatile char *p = shmat((int)num(a, 10), NULL, 0);
        if (p == (void *)-1) return done(1);
        p[0] = 'w';
        shmdt((void *)p);
        return done(0);
    } else if (!strcmp(op, "shm-attach")) { /* shm-attach ID: shmat read-write, detach */
        void *p = shmat((int)num(a, 10), NULL, 0);
        if (p == (void *)-1) return done(1);
        shmdt(p);
        return done(0);
    } else if (!strcmp(op, "access") && argc == 4) { /* access PATH rw: access(2) R_OK|W_OK */
        int how = (strchr(argv[3], 'r') ? R_OK : 0) | (strchr(argv[3], 'w') ? W_OK : 0);
        return done(access(a, how) != 0);
    } else if (!strcmp(op, "ipc-set") && argc == 6) { /* ipc-set ID OCTAL UID GID */
        struct shmid_ds ds;
        memset(&ds, 0, sizeof ds);
        ds.shm_perm.mode = (unsigned short)num(argv[3], 8);
        ds.shm_perm.uid = (uid_t)num(argv[4], 10);
        ds.shm_perm.gid = (gid_t)num(argv[5], 10);
        return done(shmctl((int)num(a, 10), IPC_SET, &ds) != 0);
    } else if (!strcmp(op, "ipc-rmid")) {
        return done(shmctl((int)num(a, 10), IPC_RMID, NULL) != 0);
    } else if (!strcmp(op, "shmget") && argc == 4) { /* shmget SIZE COUNT: print COUNT ids */
        for (long i = 0; i < num(argv[3], 10); i++) {
            int id = shmget(IPC_PRIVATE, (size_t)num(a, 10), IPC_CREAT | 0600);
            if (id < 0) { perror("shmget"); return 1; }
            printf("%d\n", id);
        }
        return 0;
    }
    fprintf(stderr, "probe: unknown operation %s (or wrong argument count)\n", op);
    return 2;
}
