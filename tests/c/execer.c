/* A tracee for gdb's exec events through the bridge (tests/tests/gdb.rs):
   run with no argument, it calls before_exec and execs itself with the
   argument "again"; then it calls in_new_image and exits 4. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int before_exec(int x) { return x + 1; }
int in_new_image(int x) { return x * 3; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "again") == 0) {
        printf("new image %d\n", in_new_image(14));
        return 4;
    }
    printf("old image %d\n", before_exec(1));
    execl("/proc/self/exe", argv[0], "again", (char *)NULL);
    perror("execl");
    return 1;
}
