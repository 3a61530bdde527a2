/* A tracee that raises SIGUSR1 once (tests/tests/gdb.rs): whether its
   handler ran is written to the file named by argv[1] ("usr1=N"), after
   the signal, so a test sees it after gdb has detached.
   Usage: usr1 FILE */
#include <signal.h>
#include <stdio.h>

volatile int got;

static void on_usr1(int sig) {
    (void)sig;
    got++;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    FILE *f = fopen(argv[1], "w");
    if (!f)
        return 3;
    fprintf(f, "usr1=%d\n", got);
    fclose(f);
    return 0;
}
