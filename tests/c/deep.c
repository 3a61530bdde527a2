/* A 64-deep recursion that stops at bottom(): for the gdb bench's `bt`
 * (65 frames) and `x/4096gx` rows. Built with `cc -g -O0`. */
volatile long sink;

__attribute__((noinline)) void bottom(void) { sink++; }

__attribute__((noinline)) long deep(int n) {
    volatile long pad[4] = {n, n, n, n};
    if (n == 0) {
        bottom();
        return pad[0];
    }
    return deep(n - 1) + pad[1];
}

int main(void) { return (int)(deep(64) & 1); }
