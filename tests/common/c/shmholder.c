/* shmholder: the helper process of the shmfs tests (tests/common/helper.rs compiles it with cc).
 *
 * Every mode prints one `ready ...` line once it holds what it was asked to hold, then keeps
 * holding it until its standard input reaches EOF (or it is killed).
 *
 * - `sysv-attach SHMID r|rw`: shmat (SHM_RDONLY for `r`); prints `ready ADDR`.
 * - `sysv-attach-exit SHMID`: shmat, then exits at once (no output).
 * - `sysv-impostor SHMID SIZE`: unshare(CLONE_NEWUSER); a thread unshares CLONE_NEWIPC, makes
 *   there a segment of SIZE bytes with the same SHMID (shm_next_id), attaches it, fills it with
 *   'X', marks it removed and exits: the process, in the original IPC namespace, keeps a /SYSV
 *   mapping that looks like the segment SHMID of that namespace. Prints `ready`.
 * - `sysv-forge SHMID SIZE [r]`: the forgery of issue 21: a sibling that shares this process's
 *   memory (clone CLONE_VM, not a thread) is born in a new user and IPC namespace, makes there a
 *   segment of SIZE bytes with the same SHMID (shm_next_id), attaches it at a low address of the
 *   shared memory, fills it with 'F' and exits; this process, wholly in the original namespaces,
 *   keeps the mapping. With `r` it then attaches the real segment SHMID read-only (becoming its
 *   lpid). Prints `ready ADDR` (the forged mapping). Input lines: `peek` prints the forged
 *   memory's first 16 bytes; `attach` attaches the real segment read-only once more (lpid
 *   again) and prints `attached`.
 * - `posix-mmap PATH r|rw`: open, mmap MAP_SHARED the whole file, close the fd; `ready`.
 * - `posix-open PATH`: open O_RDONLY and keep the fd; prints `ready FD`.
 * - `newns [-m NAME] KEY:SIZE...`: unshare(CLONE_NEWIPC) (with -m also a mount namespace with
 *   a private tmpfs on /dev/shm holding a 5-byte object NAME), shmget each KEY (hex or
 *   decimal) with SIZE, mode 0600; prints `seg SHMID KEY` for each, attaches the first one
 *   read-write, then prints `ready`.
 * - `rss-steps`: unshare(CLONE_NEWIPC); two 4096-byte segments A and B, both attached; touches
 *   B's page and prints `ready A B`; on the next input line touches A's page, drops B's page
 *   with madvise(MADV_REMOVE) and prints `done`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "shmholder: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Reads up to the next newline; returns 0 at EOF. */
static int wait_line(void) {
    char c;
    for (;;) {
        ssize_t n = read(0, &c, 1);
        if (n == 0) return 0;
        if (n < 0) { if (errno == EINTR) continue; return 0; }
        if (c == '\n') return 1;
    }
}

static void hold(void) { while (wait_line()) {} }

static void say(const char *line) { fputs(line, stdout); fflush(stdout); }

static int impostor_id;
static size_t impostor_size;

static void *make_impostor(void *unused) {
    (void)unused;
    if (unshare(CLONE_NEWIPC)) die("unshare(CLONE_NEWIPC)");
    int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY);
    if (fd < 0) die("open shm_next_id");
    char id[32];
    int n = snprintf(id, sizeof id, "%d", impostor_id);
    if (write(fd, id, n) != n) die("write shm_next_id");
    close(fd);
    int got = shmget(IPC_PRIVATE, impostor_size, 0600);
    if (got != impostor_id) { errno = EEXIST; die("shmget with shm_next_id"); }
    char *p = shmat(got, NULL, 0);
    if (p == (void *)-1) die("shmat");
    memset(p, 'X', impostor_size);
    shmctl(got, IPC_RMID, NULL);
    return NULL;
}

/* The forged mapping's address: low, below the program and the kernel's choice of addresses,
 * so that it comes first in /proc/PID/maps. */
#define FORGE_ADDR ((void *)0x10000000UL)

static void child_die(const char *what) {
    char msg[256];
    int n = snprintf(msg, sizeof msg, "shmholder forger: %s: %s\n", what, strerror(errno));
    if (write(2, msg, n) < 0) {}
    _exit(2);
}

/* The CLONE_VM sibling, already in its own user and IPC namespace. */
static int forge(void *unused) {
    (void)unused;
    int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY);
    if (fd < 0) child_die("open shm_next_id");
    char id[32];
    int n = snprintf(id, sizeof id, "%d", impostor_id);
    if (write(fd, id, n) != n) child_die("write shm_next_id");
    close(fd);
    int got = shmget(IPC_PRIVATE, impostor_size, 0600);
    if (got != impostor_id) { errno = EEXIST; child_die("shmget with shm_next_id"); }
    char *p = shmat(got, FORGE_ADDR, 0);
    if (p == (void *)-1) child_die("shmat at the low address");
    memset(p, 'F', impostor_size);
    shmctl(got, IPC_RMID, NULL);
    _exit(0);
}

static void forge_mode(int real_too) {
    static char stack[256 * 1024] __attribute__((aligned(16)));
    pid_t pid = clone(forge, stack + sizeof stack, CLONE_VM | CLONE_NEWUSER | CLONE_NEWIPC | SIGCHLD, NULL);
    if (pid < 0) die("clone(CLONE_VM | CLONE_NEWUSER | CLONE_NEWIPC)");
    int status;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { errno = ECHILD; die("the forging sibling failed"); }
    if (real_too && shmat(impostor_id, NULL, SHM_RDONLY) == (void *)-1) die("shmat of the real segment");
    printf("ready %lx\n", (unsigned long)FORGE_ADDR); fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "peek", 4)) {
            printf("%.16s\n", (const char *)FORGE_ADDR); fflush(stdout);
        } else if (!strncmp(line, "attach", 6)) {
            if (shmat(impostor_id, NULL, SHM_RDONLY) == (void *)-1) die("shmat of the real segment");
            say("attached\n");
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: shmholder MODE ARGS...\n"); return 2; }
    const char *mode = argv[1];
    if (!strcmp(mode, "sysv-attach") && argc == 4) {
        int ro = !strcmp(argv[3], "r");
        void *p = shmat(atoi(argv[2]), NULL, ro ? SHM_RDONLY : 0);
        if (p == (void *)-1) die("shmat");
        printf("ready %lx\n", (unsigned long)p); fflush(stdout);
        hold();
        return 0;
    }
    if (!strcmp(mode, "sysv-attach-exit") && argc == 3) {
        if (shmat(atoi(argv[2]), NULL, 0) == (void *)-1) die("shmat");
        return 0;
    }
    if (!strcmp(mode, "sysv-impostor") && argc == 4) {
        impostor_id = atoi(argv[2]);
        impostor_size = strtoul(argv[3], NULL, 10);
        if (unshare(CLONE_NEWUSER)) die("unshare(CLONE_NEWUSER)");
        pthread_t t;
        if (pthread_create(&t, NULL, make_impostor, NULL)) die("pthread_create");
        pthread_join(t, NULL);
        say("ready\n");
        hold();
        return 0;
    }
    if (!strcmp(mode, "sysv-forge") && (argc == 4 || (argc == 5 && !strcmp(argv[4], "r")))) {
        impostor_id = atoi(argv[2]);
        impostor_size = strtoul(argv[3], NULL, 10);
        forge_mode(argc == 5);
        return 0;
    }
    if (!strcmp(mode, "posix-mmap") && argc == 4) {
        int ro = !strcmp(argv[3], "r");
        int fd = open(argv[2], ro ? O_RDONLY : O_RDWR);
        if (fd < 0) die("open");
        struct stat st;
        if (fstat(fd, &st) < 0) die("fstat");
        void *p = mmap(NULL, st.st_size, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) die("mmap");
        close(fd);
        say("ready\n");
        hold();
        return 0;
    }
    if (!strcmp(mode, "posix-open") && argc == 3) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) die("open");
        printf("ready %d\n", fd); fflush(stdout);
        hold();
        return 0;
    }
    if (!strcmp(mode, "newns")) {
        int i = 2;
        const char *name = NULL;
        if (argc > 3 && !strcmp(argv[2], "-m")) { name = argv[3]; i = 4; }
        if (unshare(CLONE_NEWIPC | (name ? CLONE_NEWNS : 0)) < 0) die("unshare");
        if (name) {
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount --make-rprivate /");
            if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777") < 0) die("mount tmpfs /dev/shm");
            char path[4096];
            snprintf(path, sizeof path, "/dev/shm/%s", name);
            int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
            if (fd < 0 || write(fd, "hello", 5) != 5) die("create object");
            close(fd);
        }
        int first = -1;
        for (; i < argc; i++) {
            char *colon = strchr(argv[i], ':');
            if (!colon) { fprintf(stderr, "shmholder: want KEY:SIZE, got %s\n", argv[i]); return 2; }
            key_t key = (key_t)strtoul(argv[i], NULL, 0);
            size_t size = strtoul(colon + 1, NULL, 0);
            int id = shmget(key, size, IPC_CREAT | IPC_EXCL | 0600);
            if (id < 0) die("shmget");
            if (first < 0) first = id;
            printf("seg %d %d\n", id, (int)key);
        }
        if (first >= 0 && shmat(first, NULL, 0) == (void *)-1) die("shmat");
        say("ready\n");
        hold();
        return 0;
    }
    if (!strcmp(mode, "rss-steps") && argc == 2) {
        if (unshare(CLONE_NEWIPC) < 0) die("unshare");
        int a = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        int b = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        if (a < 0 || b < 0) die("shmget");
        volatile char *pa = shmat(a, NULL, 0), *pb = shmat(b, NULL, 0);
        if (pa == (void *)-1 || pb == (void *)-1) die("shmat");
        pb[0] = 1;
        printf("ready %d %d\n", a, b); fflush(stdout);
        if (!wait_line()) return 0;
        pa[0] = 1;
        if (madvise((void *)pb, 4096, MADV_REMOVE) < 0) die("madvise(MADV_REMOVE)");
        say("done\n");
        hold();
        return 0;
    }
    fprintf(stderr, "shmholder: bad arguments\n");
    return 2;
}
