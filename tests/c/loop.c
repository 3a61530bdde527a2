/* A tracee for range stepping through the bridge (tests/tests/gdb.rs,
   benches/gdb.rs): a loop of thousands of instructions on one source line.
   Usage: loop [TURNS] (default 5000). */
#include <stdio.h>
#include <stdlib.h>

volatile long sum;

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 5000;
    for (long i = 0; i < n; i++) sum += i; /* the loop */
    printf("sum=%ld\n", sum);
    return 0;
}
