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

/* Hands the fields of each line of the colon-separated file path that has at least
 * nfields (at most 7) to visit, until visit returns 1. 1 when it did. */
static int scan_file(const char *path, int nfields, int (*visit)(char **f, void *arg), void *arg)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return 0;
    char line[LINE_MAX_LEN];
    char *f[7];
    int found = 0;
    while (!found && next_line(fp, line, sizeof(line)))
        if (split_fields(line, f, nfields) >= nfields)
            found = visit(f, arg);
    fclose(fp);
    return found;
}

struct passwd_query {
    const char *name; /* match the name; NULL: match uid */
    uid_t uid;
    struct pw_entry *out;
};

static int passwd_match(char **f, void *arg)
{
    struct passwd_query *q = arg;
    unsigned long u, g;
    if (parse_id(f[2], &u) != 0 || parse_id(f[3], &g) != 0)
        return 0;
    if (q->name ? strcmp(f[0], q->name) != 0 : (uid_t)u != q->uid)
        return 0;
    if (strlen(f[0]) >= sizeof(q->out->name) || strlen(f[5]) >= sizeof(q->out->home))
        return 0;
    snprintf(q->out->name, sizeof(q->out->name), "%s", f[0]);
    snprintf(q->out->home, sizeof(q->out->home), "%s", f[5][0] ? f[5] : "/");
    q->out->uid = (uid_t)u;
    q->out->gid = (gid_t)g;
    return 1;
}

/* name: match it; else match uid. 1 when found. */
static int passwd_find(const char *name, uid_t uid, struct pw_entry *out)
{
    struct passwd_query q = {name, uid, out};
    return scan_file("/etc/passwd", 7, passwd_match, &q);
}

static int member_of(char *members, const char *user)
{
    char *save = NULL;
    for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (strcmp(m, user) == 0)
            return 1;
    return 0;
}

struct group_query {
    const char *group_name;
    gid_t *gid;
    const char *user;
    struct user_cred *out;
};

static int group_match(char **f, void *arg)
{
    struct group_query *q = arg;
    unsigned long g;
    if (parse_id(f[2], &g) != 0)
        return 0;
    if (q->group_name) {
        if (strcmp(f[0], q->group_name) != 0)
            return 0;
        *q->gid = (gid_t)g;
        return 1;
    }
    if (q->out->ngroups < USER_MAX_GROUPS && (gid_t)g != q->out->gid && member_of(f[3], q->user))
        q->out->groups[q->out->ngroups++] = (gid_t)g;
    return 0;
}

/* With group_name: finds its gid (1 when found). With user: collects the groups
 * listing that user into out. */
static int group_scan(const char *group_name, gid_t *gid, const char *user, struct user_cred *out)
{
    struct group_query q = {group_name, gid, user, out};
    return scan_file("/etc/group", 4, group_match, &q);
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
