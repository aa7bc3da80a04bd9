/* Guest configuration files a program expects: /etc/hosts names localhost and the
 * box's hostname (missing lines are appended, user content is never rewritten).
 * /etc/resolv.conf is left alone: without guest networking there is no resolver to
 * name, and a missing file only means lookups of other names fail. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HOSTS "/etc/hosts"
#define HOSTS_MAX (256 * 1024)

/* Does some non-comment line of text map a name to addr (addr NULL: any address)? */
static int has_name(const char *text, const char *addr, const char *name)
{
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        if (len < sizeof(buf)) {
            memcpy(buf, line, len);
            buf[len] = 0;
            char *hash = strchr(buf, '#');
            if (hash)
                *hash = 0;
            char *save = NULL;
            char *ip = strtok_r(buf, " \t\r", &save);
            if (ip && (!addr || !strcmp(ip, addr)))
                for (char *tok = strtok_r(NULL, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save))
                    if (!strcmp(tok, name))
                        return 1;
        }
        line += len + (end ? 1 : 0);
    }
    return 0;
}

void guestcfg_apply(const char *hostname)
{
    static char text[HOSTS_MAX + 1];
    size_t len = 0;
    int fd = open(HOSTS, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n;
        while (len < HOSTS_MAX && (n = read(fd, text + len, HOSTS_MAX - len)) > 0)
            len += (size_t)n;
        close(fd);
    } else if (errno == ELOOP) {
        return; /* a symlink (to /run/...?): someone else manages it */
    }
    text[len] = 0;
    char add[512] = "";
    size_t alen = 0;
    if (!has_name(text, "127.0.0.1", "localhost"))
        alen += (size_t)snprintf(add + alen, sizeof(add) - alen, "127.0.0.1\tlocalhost\n");
    if (!has_name(text, "::1", "localhost"))
        alen += (size_t)snprintf(add + alen, sizeof(add) - alen, "::1\tlocalhost ip6-localhost ip6-loopback\n");
    if (hostname && hostname[0] && strlen(hostname) < 64 && !has_name(text, NULL, hostname))
        alen += (size_t)snprintf(add + alen, sizeof(add) - alen, "127.0.1.1\t%s\n", hostname);
    if (alen == 0)
        return;
    fd = open(HOSTS, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        agent_log("%s: %s (not updated)", HOSTS, strerror(errno));
        return;
    }
    int ok = 1;
    if (len > 0 && text[len - 1] != '\n')
        ok = write(fd, "\n", 1) == 1;
    ok = ok && write(fd, add, alen) == (ssize_t)alen;
    if (!ok)
        agent_log("%s: write: %s", HOSTS, strerror(errno));
    close(fd);
}
