/* pipedrain: empties its standard input (a pipe) into /dev/null by splice, copying
 * nothing, and prints the bytes it took: `cocoon exec -i BOX -- pipedrain < FILE` is the
 * raw rate of the channel into a box, the yardstick of `cp` in bench/channel_bench.py.
 * Built static (like the agent): cc -static -O2. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0) {
        perror("pipedrain: /dev/null");
        return 1;
    }
    long long total = 0;
    for (;;) {
        ssize_t n = splice(0, NULL, null, NULL, 1 << 20, SPLICE_F_MOVE);
        if (n == 0)
            break;
        if (n < 0) {
            perror("pipedrain: splice (is stdin a pipe?)");
            return 1;
        }
        total += n;
    }
    printf("%lld\n", total);
    return 0;
}
