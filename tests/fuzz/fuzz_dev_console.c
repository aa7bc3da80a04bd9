/* Fuzz target: the virtio-console device whole (the agent's channel), driven through
 * its registers, rings and the agent socket by tests/support/devfuzz.c. The guest is
 * hostile: nothing it does may touch memory outside guest RAM or crash the VMM. */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/dev/virtio.h"
#include "support/devfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct devfuzz z;
    static struct virtio_console con;
    int sv[2];
    if (devfuzz_host(&z) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    z.peer = sv[1];
    if (virtio_console__init(&con, &z.f.host, DEVFUZZ_BASE, 5, sv[0]) == 0)
        devfuzz_run(&z, 6, data, size);
    close(sv[0]);
    devfuzz_free(&z);
    return 0;
}
