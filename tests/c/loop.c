/* A tracee for range stepping through the bridge (tests/tests/gdb.rs): a
   loop of thousands of instructions on one source line. */
#include <stdio.h>

volatile long sum;

int main(void) {
    long n = 5000;
    for (long i = 0; i < n; i++) sum += i; /* the loop */
    printf("sum=%ld\n", sum);
    return 0;
}
