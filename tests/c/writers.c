/* A threaded writer for the strace corpus (client/tests/corpus.rs): three
   threads each write five lines to stdout, then the main thread joins them
   and writes its own. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *writer(void *arg) {
    char line[32];
    int n = snprintf(line, sizeof line, "thread %ld\n", (long)arg);
    for (int i = 0; i < 5; i++)
        write(1, line, (size_t)n);
    return NULL;
}

int main(void) {
    pthread_t t[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    write(1, "done\n", 5);
    return 0;
}
