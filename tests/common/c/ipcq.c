/* ipcq: message queue calls for the tests of msg/ and mqueue/ (tests/common/msg.rs).
 *
 *   ipcq recv MSQID TYPE SIZE
 *       prints "ready PID", then blocks in msgrcv(MSQID, buf, SIZE, TYPE, 0); prints
 *       "received TYPE LEN" or "error ERRNO" when it returns.
 *   ipcq send MSQID TYPE SIZE
 *       prints "ready PID", then msgsnd(MSQID, a message of TYPE and SIZE bytes 'x', 0), which
 *       blocks while the queue is full; prints "sent" or "error ERRNO".
 *   ipcq mqmk NAME MODE MAXMSG MSGSIZE MESSAGE
 *       mq_open(NAME, O_CREAT|O_EXCL|O_RDWR, MODE (octal), {MAXMSG, MSGSIZE}), fchmod to MODE
 *       (the umask aside), mq_send(MESSAGE, priority 1); exits 0 and prints "made", or prints
 *       "error WHAT ERRNO" and exits 1. The queue stays (in the caller's IPC namespace).
 *   ipcq mqunlink NAME
 *       mq_unlink(NAME); prints "unlinked" or "error ERRNO".
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

struct msg {
    long mtype;
    char mtext[65536];
};

static struct msg buf;

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 5 && (!strcmp(argv[1], "recv") || !strcmp(argv[1], "send"))) {
        int id = atoi(argv[2]);
        long type = atol(argv[3]);
        size_t size = (size_t)atol(argv[4]);
        if (size > sizeof buf.mtext)
            size = sizeof buf.mtext;
        printf("ready %d\n", (int)getpid());
        if (argv[1][0] == 'r') {
            ssize_t n = msgrcv(id, &buf, size, type, 0);
            if (n < 0)
                printf("error %d\n", errno);
            else
                printf("received %ld %zd\n", buf.mtype, n);
        } else {
            buf.mtype = type;
            memset(buf.mtext, 'x', size);
            if (msgsnd(id, &buf, size, 0) < 0)
                printf("error %d\n", errno);
            else
                printf("sent\n");
        }
        return 0;
    }
    if (argc == 7 && !strcmp(argv[1], "mqmk")) {
        mode_t mode = (mode_t)strtol(argv[3], NULL, 8);
        struct mq_attr attr = {0};
        attr.mq_maxmsg = atol(argv[4]);
        attr.mq_msgsize = atol(argv[5]);
        mqd_t q = mq_open(argv[2], O_CREAT | O_EXCL | O_RDWR, mode, &attr);
        if (q == (mqd_t)-1) {
            printf("error mq_open %d\n", errno);
            return 1;
        }
        if (fchmod(q, mode) < 0) {
            printf("error fchmod %d\n", errno);
            return 1;
        }
        if (mq_send(q, argv[6], strlen(argv[6]), 1) < 0) {
            printf("error mq_send %d\n", errno);
            return 1;
        }
        printf("made\n");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "mqunlink")) {
        if (mq_unlink(argv[2]) < 0) {
            printf("error %d\n", errno);
            return 1;
        }
        printf("unlinked\n");
        return 0;
    }
    fprintf(stderr, "usage: ipcq recv|send MSQID TYPE SIZE | mqmk NAME MODE MAXMSG MSGSIZE "
                    "MESSAGE | mqunlink NAME\n");
    return 2;
}
