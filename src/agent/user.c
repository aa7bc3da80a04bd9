/* Who an exec runs as. The agent is static (no NSS), so it reads the guest's
 * /etc/passwd and /etc/group itself, the way container runtimes do: names or
 * numbers, numeric ids need not exist, supplementary groups from /etc/group. */
#include "agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 4096

struct pw_entry {
    char name[64];
    uid_t uid;
    gid_t gid;
    char home[256];
};

static int parse_id(const char *s, unsigned long *v)
{
    if (!*s || strlen(s) > 10)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    *v = strtoul(s, NULL, 10);
    return *v < 0xFFFFFFFFul ? 0 : -1; /* (uid_t)-1 means "no change" to the kernel */
}

/* Splits a colon-separated line in place; returns the field count. */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\n")] = 0;
    while (n < max) {
        f[n++] = line;
        char *c = strchr(line, ':');
        if (!c)
            break;
        *c = 0;
        line = c + 1;
    }
    return n;
}

/* Reads the next whole line; lines longer than the buffer are skipped, not split. */
static int next_line(FILE *fp, char *buf, size_t cap)
{
    while (fgets(buf, (int)cap, fp)) {
        if (strchr(buf, '\n') || feof(fp))
            return 1;
        int ch;
        while ((ch = fgetc(fp)) != EOF && ch != '\n')
            ;
    }
    return 0;
}

/* by_name: match name; else match uid. 1 when found. */
static int passwd_find(const char *name, uid_t uid, struct pw_entry *out)
{
    FILE *fp = fopen("/etc/passwd", "re");
    if (!fp)
        return 0;
    char line[LINE_MAX_LEN];
    char *f[7];
    int found = 0;
    while (!found && next_line(fp, line, sizeof(line))) {
        unsigned long u, g;
        if (split_fields(line, f, 7) < 7 || parse_id(f[2], &u) != 0 || parse_id(f[3], &g) != 0)
            continue;
        if (name ? strcmp(f[0], name) != 0 : (uid_t)u != uid)
            continue;
        if (strlen(f[0]) >= sizeof(out->name) || strlen(f[5]) >= sizeof(out->home))
            continue;
        snprintf(out->name, sizeof(out->name), "%s", f[0]);
        snprintf(out->home, sizeof(out->home), "%s", f[5][0] ? f[5] : "/");
        out->uid = (uid_t)u;
        out->gid = (gid_t)g;
        found = 1;
    }
    fclose(fp);
    return found;
}

static int member_of(char *members, const char *user)
{
    char *save = NULL;
    for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (strcmp(m, user) == 0)
            return 1;
    return 0;
}

/* With group_name: finds its gid (1 when found). With user: collects the groups
 * listing that user into out. */
static int group_scan(const char *group_name, gid_t *gid, const char *user, struct user_cred *out)
{
    FILE *fp = fopen("/etc/group", "re");
    if (!fp)
        return 0;
    char line[LINE_MAX_LEN];
    char *f[4];
    int found = 0;
    while (!found && next_line(fp, line, sizeof(line))) {
        unsigned long g;
        if (split_fields(line, f, 4) < 4 || parse_id(f[2], &g) != 0)
            continue;
        if (group_name) {
            if (strcmp(f[0], group_name) == 0) {
                *gid = (gid_t)g;
                found = 1;
            }
        } else if (out->ngroups < USER_MAX_GROUPS && (gid_t)g != out->gid && member_of(f[3], user)) {
            out->groups[out->ngroups++] = (gid_t)g;
        }
    }
    fclose(fp);
    return found;
}

int user_resolve(const char *spec, struct user_cred *out, char *err, size_t errlen)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec ? spec : "");
    char *group = strchr(buf, ':');
    if (group)
        *group++ = 0;
    memset(out, 0, sizeof(*out));

    struct pw_entry pw;
    int have_pw;
    unsigned long id;
    if (buf[0] == 0) {
        have_pw = passwd_find(NULL, 0, &pw);
        out->uid = 0;
    } else if (parse_id(buf, &id) == 0) {
        have_pw = passwd_find(NULL, (uid_t)id, &pw);
        out->uid = (uid_t)id;
    } else {
        have_pw = passwd_find(buf, 0, &pw);
        if (!have_pw) {
            snprintf(err, errlen, "user \"%s\": no such user in /etc/passwd", buf);
            return -1;
        }
        out->uid = pw.uid;
    }
    out->gid = have_pw ? pw.gid : 0;
    if (group && *group) {
        gid_t g;
        if (parse_id(group, &id) == 0) {
            out->gid = (gid_t)id;
        } else if (group_scan(group, &g, NULL, NULL)) {
            out->gid = g;
        } else {
            snprintf(err, errlen, "group \"%s\": no such group in /etc/group", group);
            return -1;
        }
    }
    out->groups[out->ngroups++] = out->gid;
    if (have_pw)
        group_scan(NULL, NULL, pw.name, out);
    snprintf(out->home, sizeof(out->home), "%s", have_pw ? pw.home : "/");
    return 0;
}
