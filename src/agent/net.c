/* Brings up the loopback interface. Programs (and test servers inside the box)
 * expect 127.0.0.1 to work even when the box has no other network. When the host
 * gave the box a network (cocoon.net=ADDR/PREFIX,GATEWAY,DNS on the kernel command
 * line), eth0 gets that address, a default route and /etc/resolv.conf. */
#include "agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/route.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Gives the interface name the address and netmask and brings it up, on the socket s;
 * failures are logged as "who: ...". */
static void if_up(int s, const char *name, const char *addr, const char *mask, const char *who)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    set_addr(&ifr, addr);
    if (ioctl(s, SIOCSIFADDR, &ifr) != 0 && errno != EEXIST)
        agent_log("%s: set address: %s", who, strerror(errno));
    set_addr(&ifr, mask);
    if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
        agent_log("%s: set netmask: %s", who, strerror(errno));
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            agent_log("%s: up: %s", who, strerror(errno));
    } else {
        agent_log("%s: %s", who, strerror(errno));
    }
}

static void eth_up(void);

void net_loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        agent_log("loopback: socket: %s", strerror(errno));
        return;
    }
    if_up(s, "lo", "127.0.0.1", "255.0.0.0", "loopback");
    close(s);
    eth_up();
}

/* "cocoon.net=10.0.2.15/24,10.0.2.2,10.0.2.3" from /proc/cmdline; 0 when present. */
static int net_arg(char *addr, int *prefix, char *gw, char *dns)
{
    char buf[4096];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *p = strstr(buf, "cocoon.net=");
    if (!p)
        return -1;
    return sscanf(p + 11, "%15[0-9.]/%d,%15[0-9.],%15[0-9.]", addr, prefix, gw, dns) == 4 ? 0 : -1;
}

static void write_resolv_conf(const char *dns)
{
    char text[128];
    int len = snprintf(text, sizeof(text), "# written by cocoon-agent: the box resolver\nnameserver %s\n", dns);
    unlink("/etc/resolv.conf.cocoon");
    int fd = open("/etc/resolv.conf.cocoon", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, (size_t)len) != len || rename("/etc/resolv.conf.cocoon", "/etc/resolv.conf") != 0)
        agent_log("network: cannot write /etc/resolv.conf: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void eth_up(void)
{
    char addr[16], gw[16], dns[16];
    int prefix;
    if (net_arg(addr, &prefix, gw, dns) < 0 || prefix < 1 || prefix > 30)
        return;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return;
    struct in_addr mask = {.s_addr = htonl(0xffffffffu << (32 - prefix))};
    if_up(s, "eth0", addr, inet_ntoa(mask), "network: eth0");
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    struct sockaddr_in *dst = (struct sockaddr_in *)(void *)&rt.rt_dst;
    struct sockaddr_in *gwa = (struct sockaddr_in *)(void *)&rt.rt_gateway;
    struct sockaddr_in *msk = (struct sockaddr_in *)(void *)&rt.rt_genmask;
    dst->sin_family = gwa->sin_family = msk->sin_family = AF_INET;
    inet_pton(AF_INET, gw, &gwa->sin_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char *)"eth0";
    if (ioctl(s, SIOCADDRT, &rt) != 0 && errno != EEXIST)
        agent_log("network: default route: %s", strerror(errno));
    close(s);
    write_resolv_conf(dns);
}
