/* Brings up the loopback interface. Programs (and test servers inside the box)
 * expect 127.0.0.1 to work even when the box has no other network. */
#include "agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void set_addr(struct ifreq *ifr, const char *addr)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sin.sin_addr);
    memcpy(&ifr->ifr_addr, &sin, sizeof(sin));
}

void net_loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        agent_log("loopback: socket: %s", strerror(errno));
        return;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    set_addr(&ifr, "127.0.0.1");
    if (ioctl(s, SIOCSIFADDR, &ifr) != 0 && errno != EEXIST)
        agent_log("loopback: set address: %s", strerror(errno));
    set_addr(&ifr, "255.0.0.0");
    if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
        agent_log("loopback: set netmask: %s", strerror(errno));
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            agent_log("loopback: up: %s", strerror(errno));
    } else {
        agent_log("loopback: %s", strerror(errno));
    }
    close(s);
}
