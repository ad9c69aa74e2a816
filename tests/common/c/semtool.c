/* The semaphore tool of the shmfs tests (tests/common/sem.rs compiles it with cc).
 *
 * `semtool OP ARGS...` makes one call on a System V semaphore set or a POSIX named semaphore.
 * Run as any uid/gid/groups/capabilities with setpriv, it tells what the kernel lets that
 * caller do, in the style of `probe`: the permission operations print `ok` or the errno's
 * name (`EACCES`, `EPERM`, ...).
 *
 *   semget NSEMS COUNT MODE   create COUNT sets of IPC_PRIVATE, print their ids (one a line)
 *   sem-read ID NSEMS         GETALL                        -> ok / ERRNO
 *   sem-write ID NUM VALUE    SETVAL                        -> ok / ERRNO
 *   sem-access ID             GETALL, then SETVAL of semaphore 0 to the value it has: read
 *                             and alter rights both needed, nothing changes  -> ok / ERRNO
 *   sem-set ID OCTAL UID GID  IPC_SET                       -> ok / ERRNO
 *   sem-rmid ID               IPC_RMID                      -> ok / ERRNO
 *   wait ID NUM OP UNDO [NUM OP UNDO]...
 *                             print `ready`, then block in one semop of these operations
 *                             ({NUM, OP, UNDO ? SEM_UNDO : 0} each, at most 16); when it
 *                             returns print `done` (or the errno's name) and exit 0
 *   posix-open NAME VALUE     sem_open(NAME, O_CREAT|O_EXCL, 0644, VALUE), sem_close -> ok
 *   posix-post NAME           sem_open(NAME, 0), sem_post, sem_close             -> ok
 *   posix-unlink NAME         sem_unlink(NAME)                                   -> ok
 *
 * and on paths (of the mount), printing `ok` or the errno's name:
 *   open-read PATH            open O_RDONLY and read one byte
 *   open-write PATH           open O_WRONLY (nothing written)
 *   write-text PATH TEXT      open O_WRONLY and write TEXT in one write(2)
 *   rmdir PATH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <unistd.h>

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

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
    if (argc < 3) { fprintf(stderr, "usage: semtool OP ARG...\n"); return 2; }
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *op = argv[1];
    int id = (int)num(argv[2], 10);
    union semun arg;
    if (!strcmp(op, "semget") && argc == 5) {
        for (long i = 0; i < num(argv[3], 10); i++) {
            int s = semget(IPC_PRIVATE, (int)num(argv[2], 10), IPC_CREAT | (int)num(argv[4], 8));
            if (s < 0) { perror("semget"); return 1; }
            printf("%d\n", s);
        }
        return 0;
    } else if (!strcmp(op, "sem-read") && argc == 4) {
        static unsigned short values[65536];
        (void)argv[3]; /* GETALL writes all nsems of them, at most SEMMSL (32000) */
        arg.array = values;
        return done(semctl(id, 0, GETALL, arg) != 0);
    } else if (!strcmp(op, "sem-write") && argc == 5) {
        arg.val = (int)num(argv[4], 10);
        return done(semctl(id, (int)num(argv[3], 10), SETVAL, arg) != 0);
    } else if (!strcmp(op, "sem-access")) {
        static unsigned short values[65536];
        arg.array = values;
        if (semctl(id, 0, GETALL, arg) != 0) return done(1);
        arg.val = values[0];
        return done(semctl(id, 0, SETVAL, arg) != 0);
    } else if (!strcmp(op, "sem-set") && argc == 6) {
        struct semid_ds ds;
        memset(&ds, 0, sizeof ds);
        ds.sem_perm.mode = (unsigned short)num(argv[3], 8);
        ds.sem_perm.uid = (uid_t)num(argv[4], 10);
        ds.sem_perm.gid = (gid_t)num(argv[5], 10);
        arg.buf = &ds;
        return done(semctl(id, 0, IPC_SET, arg) != 0);
    } else if (!strcmp(op, "sem-rmid")) {
        return done(semctl(id, 0, IPC_RMID) != 0);
    } else if (!strcmp(op, "wait") && argc >= 6 && (argc - 3) % 3 == 0 && argc <= 3 + 3 * 16) {
        struct sembuf sops[16];
        size_t n = 0;
        for (int i = 3; i + 2 < argc; i += 3, n++) {
            sops[n].sem_num = (unsigned short)num(argv[i], 10);
            sops[n].sem_op = (short)num(argv[i + 1], 10);
            sops[n].sem_flg = num(argv[i + 2], 10) ? SEM_UNDO : 0;
        }
        puts("ready");
        if (semop(id, sops, n) == 0) puts("done");
        else done(1);
        return 0;
    } else if (!strcmp(op, "posix-open") && argc == 4) {
        sem_t *s = sem_open(argv[2], O_CREAT | O_EXCL, 0644, (unsigned)num(argv[3], 10));
        if (s == SEM_FAILED) return done(1);
        return done(sem_close(s) != 0);
    } else if (!strcmp(op, "posix-post")) {
        sem_t *s = sem_open(argv[2], 0);
        if (s == SEM_FAILED) return done(1);
        if (sem_post(s) != 0) return done(1);
        return done(sem_close(s) != 0);
    } else if (!strcmp(op, "open-read")) {
        char c;
        int fd = open(argv[2], O_RDONLY);
        return done(fd < 0 || read(fd, &c, 1) < 0);
    } else if (!strcmp(op, "open-write")) {
        return done(open(argv[2], O_WRONLY) < 0);
    } else if (!strcmp(op, "write-text") && argc == 4) {
        int fd = open(argv[2], O_WRONLY);
        size_t n = strlen(argv[3]);
        return done(fd < 0 || write(fd, argv[3], n) != (ssize_t)n);
    } else if (!strcmp(op, "rmdir")) {
        return done(rmdir(argv[2]) != 0);
    } else if (!strcmp(op, "posix-unlink")) {
        return done(sem_unlink(argv[2]) != 0);
    }
    fprintf(stderr, "semtool: unknown operation %s (or wrong argument count)\n", op);
    return 2;
}
