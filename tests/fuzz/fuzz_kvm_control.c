/* Fuzz target: lines on the kvm VMM's control channel (src/kvm/control.c), one per
 * newline of the input, through kvm_control__command on a machine with no vCPUs and
 * no disk. Every line gets one bounded answer; a crash, a leak or a held fd that was
 * not asked for is a bug. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "kvm/control.h"
#include "kvm/machine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kvm_machine m;
    static struct kvm_control c;
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.vm.lock, NULL);
    pthread_cond_init(&m.vm.cond, NULL);
    memset(&c, 0, sizeof(c));
    c.m = &m;
    c.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    c.pending_fd = -1;
    for (int i = 0; i < CONTROL_MAX_FDS; i++)
        c.named_fd[i] = -1;
    memcpy(c.migrate_status, "none", 5);
    const char *p = (const char *)data, *end = p + size;
    int lines = 0;
    while (p < end && lines++ < 64) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len <= CONTROL_LINE_MAX) {
            /* some lines come with an fd, as getfd's do */
            if (len && (p[0] & 1))
                c.pending_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            kvm_control__command(&c, p, len);
            if (c.pending_fd >= 0)
                abort(); /* an fd never outlives its command unless getfd kept it */
        }
        p += len + 1;
    }
    kvm_control__close(&c);
    return 0;
}
