/* A tracee for breakpoints and vfork through the bridge (tests/tests/gdb.rs):
   the vforked child calls in_child, which has a breakpoint of the
   parent's, on the memory it shares with the parent, then exits 6; the
   parent waits for it, then calls in_parent. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int in_child(int x) { return x * 2; }
int in_parent(int x) { return x + 1; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t p = vfork();
    if (p == 0)
        _exit(in_child(3));
    int st = 0;
    waitpid(p, &st, 0);
    printf("parent %d, child exit %d, signal %d\n", in_parent(41),
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 0;
}
