/* A signal sender for the strace corpus (client/tests/corpus.rs): SIGUSR1
   to itself (handled), SIGUSR2 blocked then let in, a child killed by
   SIGTERM in its sigsuspend() and waited for, then SIGALRM from alarm() while it pauses. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t seen;

static void on_signal(int sig) { seen += sig; }

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    kill(getpid(), SIGUSR1);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    int ready[2];
    pipe(ready);
    pid_t child = fork();
    if (child == 0) {
        /* SIGTERM blocked until the child waits in sigsuspend: it ends
           there, whether it came before or after. */
        sigset_t term, none;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigemptyset(&none);
        sigprocmask(SIG_BLOCK, &term, NULL);
        write(ready[1], "r", 1);
        sigsuspend(&none);
        _exit(0);
    }
    char r;
    read(ready[0], &r, 1);
    kill(child, SIGTERM);
    int status;
    waitpid(child, &status, 0);
    alarm(1);
    pause();
    return seen == SIGUSR1 + SIGUSR2 + SIGALRM ? 0 : 1;
}
