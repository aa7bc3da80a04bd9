/* Finds the host channel: the virtio-console port QEMU (or our VMM) names
 * "cocoon.agent". Port numbers depend on device order, so we go by the name, and
 * the name arrives from the host asynchronously after the device is probed. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int name_matches(const char *port)
{
    char path[320], name[64];
    snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", port);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, name, sizeof(name) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    name[n] = 0;
    name[strcspn(name, "\n")] = 0;
    return strcmp(name, AGENT_PORT_NAME) == 0;
}

static int try_open(void)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -1;
    int fd = -1;
    struct dirent *de;
    while (fd < 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strlen(de->d_name) > 200 || !name_matches(de->d_name))
            continue;
        char dev[sizeof("/dev/") + sizeof(de->d_name)]; /* -O1 cannot see the length check */
        snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
        fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            agent_log("open %s: %s", dev, strerror(errno));
    }
    closedir(d);
    return fd;
}

int port_open(unsigned timeout_ms)
{
    uint64_t give_up = clock_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * NS_PER_MS;
    for (;;) {
        int fd = try_open();
        if (fd >= 0 || clock_ns(CLOCK_MONOTONIC) >= give_up)
            return fd;
        usleep(10 * 1000);
    }
}
