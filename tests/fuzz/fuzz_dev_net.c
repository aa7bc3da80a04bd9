/* Fuzz target: the virtio-net device whole, driven through its registers, rings and
 * the network link (length-prefixed frames, some of them lies) by
 * tests/support/devfuzz.c. Nothing may touch memory outside guest RAM or crash. */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/dev/virtio.h"
#include "support/devfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct devfuzz z;
    static struct virtio_net n;
    static const uint8_t mac[6] = {0x52, 0x54, 0, 0xc0, 0xc0, 0x0f};
    char err[128];
    int sv[2];
    if (devfuzz_host(&z) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    z.peer = sv[1];
    if (virtio_net__init(&n, &z.f.host, DEVFUZZ_BASE, 10, sv[0], mac, err, sizeof(err)) == 0)
        devfuzz_run(&z, 2, data, size);
    virtio_net__close(&n);
    close(sv[0]);
    devfuzz_free(&z);
    return 0;
}
