/* A tracee for gdb's hardware watchpoints and breakpoints through the
   bridge (tests/tests/gdb.rs): a global written three times by the main
   thread, another written once by a thread made later. */
#include <pthread.h>
#include <stdio.h>

volatile long counter;
volatile int flag;

static void *worker(void *arg) {
    (void)arg;
    flag = 7;
    return NULL; /* after flag */
}

int main(void) {
    for (int i = 0; i < 3; i++) {
        counter += 1;
        printf("counter=%ld\n", counter); /* after counter */
    }
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("flag=%d\n", flag);
    return 3;
}
