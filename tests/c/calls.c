/* A tracee for `utrace trace -k` (client/tests/cli.rs): a write three
   calls deep. Built with -O2 and no frame pointers, so that only the
   call-frame information (.eh_frame) finds the callers. */
#include <unistd.h>

__attribute__((noinline)) void inner(void) { write(1, "deep\n", 5); }
__attribute__((noinline)) void middle(void) { inner(); }
__attribute__((noinline)) void outer(void) { middle(); }

int main(void) {
    outer();
    return 0;
}
