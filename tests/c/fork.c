/* A tracee for gdb following a fork through the bridge (tests/tests/gdb.rs):
   the child calls in_child and exits 7; the parent waits for it, then
   calls in_parent, and writes its line to the file named by its argument
   too, if any (its stdout may have nobody to read it by then). */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int in_child(int x) { return x * 2; }
int in_parent(int x) { return x + 1; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t p = fork();
    if (p == 0) {
        printf("child %d\n", in_child(21));
        return 7;
    }
    int st = 0;
    waitpid(p, &st, 0);
    int got = in_parent(41);
    printf("parent %d, child exit %d\n", got, WEXITSTATUS(st));
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (f) {
            fprintf(f, "parent %d, child exit %d\n", got, WEXITSTATUS(st));
            fclose(f);
        }
    }
    return 0;
}
