/* Who an exec runs as. The agent is static (no NSS), so it reads the guest's
 * /etc/passwd and /etc/group itself, the way container runtimes do: names or
 * numbers, numeric ids need not exist, supplementary groups from /etc/group.
 * Answers are cached while both files stay as they were (see cache_valid). */
#include "agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LINE_MAX_LEN 4096
#define PASSWD_PATH "/etc/passwd"
#define GROUP_PATH "/etc/group"
#define CACHE_ENTRIES 8
#define SPEC_MAX 256
/* A file changed less than this before we read it may change again with the same
 * timestamps (the kernel stamps files from a clock that ticks every few ms): such a
 * read is not cached. */
#define SETTLED_NS NS_PER_SEC

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
    return scan_file(PASSWD_PATH, 7, passwd_match, &q);
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
    return scan_file(GROUP_PATH, 4, group_match, &q);
}

static int resolve(const char *spec, struct user_cred *out, char *err, size_t errlen)
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

/* ---- the cache: what both files said, as long as neither changed ---- */

/* What identifies a version of a file: a write changes the size or the times, a
 * replacement (vipw, useradd, sed -i rename a new file in) the inode. */
struct file_stamp {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct cache_entry {
    char spec[SPEC_MAX];
    struct user_cred cred;
};

static struct file_stamp cached_passwd, cached_group;
static struct cache_entry cache[CACHE_ENTRIES];
static int cache_used, cache_next;

static void stamp_file(const char *path, struct file_stamp *s)
{
    struct stat st;
    memset(s, 0, sizeof(*s));
    if (stat(path, &st) != 0)
        return;
    s->exists = 1;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    s->ctime = st.st_ctim;
}

static int same_stamp(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Changed at least SETTLED_NS before now: a later change gets other timestamps. A
 * ctime in the future (the clock was set back) is not settled. */
static int settled(const struct file_stamp *s, uint64_t now)
{
    if (!s->exists)
        return 1;
    uint64_t c = (uint64_t)s->ctime.tv_sec * NS_PER_SEC + (uint64_t)s->ctime.tv_nsec;
    uint64_t m = (uint64_t)s->mtime.tv_sec * NS_PER_SEC + (uint64_t)s->mtime.tv_nsec;
    uint64_t latest = c > m ? c : m;
    return now >= latest && now - latest >= SETTLED_NS;
}

int user_resolve(const char *spec, struct user_cred *out, char *err, size_t errlen)
{
    const char *key = spec ? spec : "";
    struct file_stamp pw, gr;
    stamp_file(PASSWD_PATH, &pw);
    stamp_file(GROUP_PATH, &gr);
    if (!same_stamp(&pw, &cached_passwd) || !same_stamp(&gr, &cached_group)) {
        cache_used = cache_next = 0;
        cached_passwd = pw;
        cached_group = gr;
    }
    for (int i = 0; i < cache_used; i++) {
        if (!strcmp(cache[i].spec, key)) {
            *out = cache[i].cred;
            return 0;
        }
    }
    /* Stamped before reading: a change while we read makes the next stamp differ. */
    uint64_t now = clock_ns(CLOCK_REALTIME);
    if (resolve(key, out, err, errlen) != 0)
        return -1; /* errors are not cached: they are rare, and cheap to find again */
    if (strlen(key) < SPEC_MAX && settled(&pw, now) && settled(&gr, now)) {
        struct cache_entry *e = &cache[cache_next];
        snprintf(e->spec, sizeof(e->spec), "%s", key);
        e->cred = *out;
        cache_next = (cache_next + 1) % CACHE_ENTRIES;
        if (cache_used < CACHE_ENTRIES)
            cache_used++;
    }
    return 0;
}
