/* The API's routing table: /v1/... paths (an optional single routing-prefix segment
 * after /v1, as BoxLite clients may send one, is accepted and ignored) to route ids
 * with their box, execution and image parameters, each checked for its characters and
 * length before anything uses it. */
#include "serve/route.h"

#include <stdio.h>
#include <string.h>

#define MAX_SEGMENTS 8

enum route_method route_method(const char *method)
{
    static const struct {
        const char *name;
        enum route_method m;
    } table[] = {{"GET", M_GET}, {"HEAD", M_HEAD}, {"POST", M_POST}, {"PUT", M_PUT}, {"DELETE", M_DELETE}};
    for (size_t i = 0; method && i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(method, table[i].name) == 0)
            return table[i].m;
    return M_OTHER;
}

/* Box names and ids, execution ids: letters, digits, '.', '_', '-'. */
static int id_ok(const char *s, size_t len)
{
    if (len == 0 || len >= ROUTE_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return !(len <= 2 && s[0] == '.'); /* "." and ".." are not names */
}

/* Image references: printable ASCII without spaces. */
static int ref_ok(const char *s, size_t len)
{
    if (len == 0 || len >= ROUTE_REF_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

struct segs {
    const char *p[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    int n;
};

static int seg_is(const struct segs *s, int i, const char *word)
{
    return i < s->n && s->len[i] == strlen(word) && memcmp(s->p[i], word, s->len[i]) == 0;
}

static int split(const char *path, struct segs *s)
{
    s->n = 0;
    const char *p = path;
    while (*p) {
        if (*p != '/')
            return -1;
        p++;
        if (!*p)
            break; /* one trailing slash is tolerated */
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || s->n == MAX_SEGMENTS)
            return -1;
        s->p[s->n] = p;
        s->len[s->n] = len;
        s->n++;
        p += len;
    }
    return 0;
}

static void copy_seg(char *out, size_t cap, const struct segs *s, int i)
{
    size_t len = s->len[i] < cap ? s->len[i] : cap - 1;
    memcpy(out, s->p[i], len);
    out[len] = '\0';
}

static int set(struct route *out, enum route_id id, unsigned allowed)
{
    out->id = id;
    out->allowed = allowed;
    return 0;
}

/* Routes under /v1/boxes/{box}/executions/{exec}[/...], from segment i (the exec id). */
static int match_exec(const struct segs *s, int i, struct route *out)
{
    if (!id_ok(s->p[i], s->len[i]))
        return -1;
    copy_seg(out->exec, sizeof(out->exec), s, i);
    if (s->n == i + 1)
        return set(out, R_EXEC, M_GET | M_HEAD | M_DELETE);
    if (s->n != i + 2)
        return -1;
    static const struct {
        const char *word;
        enum route_id id;
        unsigned allowed;
    } sub[] = {{"signal", R_EXEC_SIGNAL, M_POST},
               {"resize", R_EXEC_RESIZE, M_POST},
               {"stdin", R_EXEC_STDIN, M_POST},
               {"attach", R_EXEC_ATTACH, M_GET},
               {"output", R_EXEC_OUTPUT, M_GET}};
    for (size_t k = 0; k < sizeof(sub) / sizeof(sub[0]); k++)
        if (seg_is(s, i + 1, sub[k].word))
            return set(out, sub[k].id, sub[k].allowed);
    return -1;
}

/* Routes under /v1/boxes/{box}/code, from segment i (after "code"); a context id rides
 * in out->exec. */
static int match_code(const struct segs *s, int i, struct route *out)
{
    if (s->n == i)
        return set(out, R_CODE, M_POST);
    if (!seg_is(s, i, "contexts"))
        return -1;
    if (s->n == i + 1)
        return set(out, R_CODE_CONTEXTS, M_GET | M_POST);
    if (!id_ok(s->p[i + 1], s->len[i + 1]))
        return -1;
    copy_seg(out->exec, sizeof(out->exec), s, i + 1);
    if (s->n == i + 2)
        return set(out, R_CODE_CONTEXT, M_DELETE);
    if (s->n == i + 3 && seg_is(s, i + 2, "restart"))
        return set(out, R_CODE_CONTEXT_RESTART, M_POST);
    return -1;
}

/* Routes under /v1/boxes/{box}, from segment i (the box). */
static int match_box(const struct segs *s, int i, struct route *out)
{
    if (s->n == i + 1 && seg_is(s, i, "import")) /* a box named "import" is reached by its id */
        return set(out, R_BOX_IMPORT, M_POST);
    if (!id_ok(s->p[i], s->len[i]))
        return -1;
    copy_seg(out->box, sizeof(out->box), s, i);
    if (s->n == i + 1)
        return set(out, R_BOX, M_GET | M_HEAD | M_DELETE);
    int j = i + 1;
    if (seg_is(s, j, "executions")) {
        if (s->n == j + 1)
            return set(out, R_BOX_EXECS, M_GET);
        return match_exec(s, j + 1, out);
    }
    if (seg_is(s, j, "detached")) { /* detached execs: numeric ids (their pid in the box) */
        if (s->n == j + 1)
            return set(out, R_DETACH_NEW, M_POST);
        if (!id_ok(s->p[j + 1], s->len[j + 1]))
            return -1;
        copy_seg(out->exec, sizeof(out->exec), s, j + 1);
        if (s->n == j + 2)
            return set(out, R_DETACH, M_GET | M_DELETE);
        if (s->n == j + 3 && seg_is(s, j + 2, "logs"))
            return set(out, R_DETACH_LOGS, M_GET);
        return -1;
    }
    if (seg_is(s, j, "network")) {
        if (s->n != j + 2)
            return -1;
        if (seg_is(s, j + 1, "logs"))
            return set(out, R_NET_LOGS, M_GET);
        if (seg_is(s, j + 1, "stats"))
            return set(out, R_NET_STATS, M_GET);
        return -1;
    }
    if (seg_is(s, j, "snapshots")) {
        if (s->n == j + 1)
            return set(out, R_SNAPSHOTS, M_GET | M_POST);
        if (!id_ok(s->p[j + 1], s->len[j + 1]))
            return -1;
        copy_seg(out->snapshot, sizeof(out->snapshot), s, j + 1);
        if (s->n == j + 2)
            return set(out, R_SNAPSHOT, M_GET | M_DELETE);
        if (s->n == j + 3 && seg_is(s, j + 2, "restore"))
            return set(out, R_SNAPSHOT_RESTORE, M_POST);
        return -1;
    }
    if (seg_is(s, j, "fs")) {
        static const struct {
            const char *word;
            enum route_id id;
            unsigned allowed;
        } fs[] = {{"stat", R_FS_STAT, M_GET},
                  {"list", R_FS_LIST, M_GET},
                  {"mkdir", R_FS_MKDIR, M_POST},
                  {"remove", R_FS_REMOVE, M_POST},
                  {"move", R_FS_MOVE, M_POST}};
        for (size_t k = 0; s->n == j + 2 && k < sizeof(fs) / sizeof(fs[0]); k++)
            if (seg_is(s, j + 1, fs[k].word))
                return set(out, fs[k].id, fs[k].allowed);
        return -1;
    }
    if (seg_is(s, j, "code"))
        return match_code(s, j + 1, out);
    if (s->n != j + 1)
        return -1;
    static const struct {
        const char *word;
        enum route_id id;
        unsigned allowed;
    } sub[] = {{"start", R_BOX_START, M_POST},
               {"stop", R_BOX_STOP, M_POST},
               {"exec", R_BOX_EXEC, M_POST},
               {"run", R_BOX_RUN, M_POST},
               {"files", R_FILES, M_GET | M_PUT | M_HEAD},
               {"metrics", R_BOX_METRICS, M_GET},
               {"logs", R_BOX_LOGS, M_GET},
               {"wait", R_BOX_WAIT, M_POST},
               {"attach", R_BOX_ATTACH, M_GET},
               {"clone", R_BOX_CLONE, M_POST},
               {"fork", R_BOX_FORK, M_POST},
               {"export", R_BOX_EXPORT, M_POST},
               {"compact", R_BOX_COMPACT, M_POST}};
    for (size_t k = 0; k < sizeof(sub) / sizeof(sub[0]); k++)
        if (seg_is(s, j, sub[k].word))
            return set(out, sub[k].id, sub[k].allowed);
    return -1;
}

/* Everything after "/v1/images/": the reference may hold '/' itself. */
static int match_image(const struct segs *s, int i, struct route *out)
{
    if (s->n == i + 1 && seg_is(s, i, "pull"))
        return set(out, R_IMAGE_PULL, M_POST);
    if (s->n == i + 1 && seg_is(s, i, "load"))
        return set(out, R_IMAGE_LOAD, M_POST);
    const char *ref = s->p[i];
    size_t len = strlen(ref);
    while (len > 0 && ref[len - 1] == '/')
        len--;
    if (!ref_ok(ref, len))
        return -1;
    memcpy(out->image, ref, len);
    out->image[len] = '\0';
    if (strstr(out->image, "//") || strstr(out->image, "/../") || strncmp(out->image, "../", 3) == 0)
        return -1;
    return set(out, R_IMAGE, M_GET | M_HEAD | M_DELETE);
}

static int match_path(const char *path, struct route *out)
{
    struct segs s;
    if (path && split(path, &s) == 0 && s.n == 1 && seg_is(&s, 0, "mcp"))
        return set(out, R_MCP, M_POST | M_DELETE); /* GET (a server stream) is 405: we send none */
    if (!path || split(path, &s) < 0 || s.n < 2 || !seg_is(&s, 0, "v1"))
        return -1;
    if (s.n == 2) {
        static const struct {
            const char *word;
            enum route_id id;
            unsigned allowed;
        } top[] = {{"config", R_CONFIG, M_GET | M_HEAD},
                   {"me", R_ME, M_GET},
                   {"openapi.yaml", R_OPENAPI, M_GET | M_HEAD},
                   {"health", R_HEALTH, M_GET | M_HEAD},
                   {"metrics", R_METRICS, M_GET},
                   {"boxes", R_BOXES, M_GET | M_POST},
                   {"images", R_IMAGES, M_GET}};
        for (size_t k = 0; k < sizeof(top) / sizeof(top[0]); k++)
            if (seg_is(&s, 1, top[k].word))
                return set(out, top[k].id, top[k].allowed);
    }
    int i = 1;
    /* /v1/{prefix}/boxes/..., /v1/{prefix}/images/... and /v1/{prefix}/metrics: the
     * prefix is a tenant slot this single-user server has no use for. */
    if (!seg_is(&s, 1, "boxes") && !seg_is(&s, 1, "images") && s.n >= 3 &&
        (seg_is(&s, 2, "boxes") || seg_is(&s, 2, "images") || seg_is(&s, 2, "metrics")) && id_ok(s.p[1], s.len[1])) {
        i = 2;
        if (s.n == 3) {
            if (seg_is(&s, 2, "boxes"))
                return set(out, R_BOXES, M_GET | M_POST);
            if (seg_is(&s, 2, "images"))
                return set(out, R_IMAGES, M_GET);
            return set(out, R_METRICS, M_GET);
        }
    }
    if (seg_is(&s, i, "boxes") && s.n > i + 1)
        return match_box(&s, i + 1, out);
    if (seg_is(&s, i, "images") && s.n > i + 1)
        return match_image(&s, i + 1, out);
    return -1;
}

int route_match(enum route_method method, const char *path, struct route *out)
{
    memset(out, 0, sizeof(*out));
    if (match_path(path, out) < 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return (out->allowed & method) ? 0 : -1;
}

void route_allow_text(unsigned allowed, char *out, size_t cap)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < 5; i++) {
        if (!(allowed & (1u << i)))
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", names[i]);
        if (n < 0 || (size_t)n >= cap - used)
            return;
        used += (size_t)n;
    }
}
