/* nsipc: what the ns/ tests run inside a container's IPC namespace (tests/common/nsipc.rs
 * compiles it with cc). util-linux's ipcmk picks its own random key; these tests give every
 * segment a key of their own, to tell a container's segments from the host's.
 *
 * - `mk KEY SIZE MODE [fill]`: shmget(KEY, SIZE, IPC_CREAT|IPC_EXCL|MODE) (KEY and MODE in any
 *   base strtol reads: 0x5e5e0001, 0600); with `fill`, attaches it, writes every byte (so that
 *   its pages are allocated: rss = SIZE) and detaches. Prints `seg SHMID HOSTPID NSPID`: the
 *   new shmid, this process as the machine's /proc numbers it (readlink /proc/self: the tests'
 *   containers keep the machine's /proc) and as its own pid namespace does (getpid).
 * - `write SHMID OFFSET TEXT`: attaches read-write, copies TEXT at OFFSET, detaches.
 * - `read SHMID OFFSET LEN`: attaches read-only, writes LEN bytes from OFFSET to stdout, detaches.
 * - `hold SHMID`: a child attaches the segment read-write and stays (pause) until it is killed,
 *   with stdin, stdout and stderr on /dev/null; the parent prints `held HOSTPID` (the child's
 *   pid as the machine's /proc numbers it) once the child is attached, and exits.
 * - `pause`: prints `paused HOSTPID` and waits until killed (stdout then closed).
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

static void die(const char *what) {
    fprintf(stderr, "nsipc: %s: %s\n", what, strerror(errno));
    exit(2);
}

static long num(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || *end || end == s) { errno = EINVAL; die(s); }
    return v;
}

/* This process's pid in the pid namespace of the /proc mounted at /proc. */
static long host_pid(void) {
    char buf[32];
    ssize_t n = readlink("/proc/self", buf, sizeof buf - 1);
    if (n <= 0) die("readlink /proc/self");
    buf[n] = 0;
    return num(buf);
}

static void to_null(void) {
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) die("open /dev/null");
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
}

int main(int argc, char **argv) {
    if (argc < 2) { errno = EINVAL; die("usage: nsipc mk|write|read|hold|pause ..."); }
    const char *mode = argv[1];
    if (!strcmp(mode, "mk") && (argc == 5 || argc == 6)) {
        key_t key = (key_t)num(argv[2]);
        size_t size = (size_t)num(argv[3]);
        int perm = (int)num(argv[4]);
        int id = shmget(key, size, IPC_CREAT | IPC_EXCL | perm);
        if (id < 0) die("shmget");
        if (argc == 6) {
            if (strcmp(argv[5], "fill")) { errno = EINVAL; die(argv[5]); }
            unsigned char *p = shmat(id, NULL, 0);
            if (p == (void *)-1) die("shmat");
            for (size_t i = 0; i < size; i++) p[i] = (unsigned char)(i * 7 + 1);
            if (shmdt(p)) die("shmdt");
        }
        printf("seg %d %ld %ld\n", id, host_pid(), (long)getpid());
        return 0;
    }
    if (!strcmp(mode, "write") && argc == 5) {
        int id = (int)num(argv[2]);
        size_t off = (size_t)num(argv[3]);
        char *p = shmat(id, NULL, 0);
        if (p == (void *)-1) die("shmat");
        memcpy(p + off, argv[4], strlen(argv[4]));
        if (shmdt(p)) die("shmdt");
        return 0;
    }
    if (!strcmp(mode, "read") && argc == 5) {
        int id = (int)num(argv[2]);
        size_t off = (size_t)num(argv[3]);
        size_t len = (size_t)num(argv[4]);
        char *p = shmat(id, NULL, SHM_RDONLY);
        if (p == (void *)-1) die("shmat");
        if (fwrite(p + off, 1, len, stdout) != len) die("write stdout");
        fflush(stdout);
        if (shmdt(p)) die("shmdt");
        return 0;
    }
    if (!strcmp(mode, "hold") && argc == 3) {
        int id = (int)num(argv[2]);
        int pipefd[2];
        if (pipe(pipefd)) die("pipe");
        pid_t child = fork();
        if (child < 0) die("fork");
        if (child == 0) {
            close(pipefd[0]);
            if (shmat(id, NULL, 0) == (void *)-1) die("shmat");
            long me = host_pid();
            if (write(pipefd[1], &me, sizeof me) != sizeof me) die("write pipe");
            close(pipefd[1]);
            to_null();
            for (;;) pause();
        }
        close(pipefd[1]);
        long held;
        if (read(pipefd[0], &held, sizeof held) != sizeof held) {
            errno = EIO;
            die("the holder did not attach");
        }
        printf("held %ld\n", held);
        return 0;
    }
    if (!strcmp(mode, "pause") && argc == 2) {
        printf("paused %ld\n", host_pid());
        fflush(stdout);
        to_null();
        for (;;) pause();
    }
    errno = EINVAL;
    die(mode);
}
