/* A tracee for a whole gdb session through the bridge (tests/tests/gdb.rs):
   threads, a signal the program handles, a recursion, a global, a write,
   a child process. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

volatile int got_usr1;
int global_value = 42;

static void on_usr1(int sig) {
    (void)sig;
    got_usr1++;
}

static int depth(int n) {
    if (n == 0)
        return global_value;
    return depth(n - 1) + 1;
}

static void *worker(void *arg) {
    (void)arg;
    usleep(100 * 1000);
    return NULL;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    raise(SIGUSR1);
    int d = depth(3);
    write(1, "hello\n", 6);
    pid_t c = fork();
    if (c == 0)
        _exit(5);
    int st;
    waitpid(c, &st, 0);
    printf("d=%d usr1=%d global=%d child=%d\n", d, got_usr1, global_value, WEXITSTATUS(st));
    return 0;
}
