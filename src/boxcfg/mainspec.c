/* main.json (the main process libcocoon asked for) and main.state.json (what the
 * monitor made of it): their JSON, checked field by field on the way in, and the
 * restart policy's names and back-off (mainspec.h). */
#include "boxcfg/mainspec.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const restart_names[] = {"no", "on-failure", "always", "unless-stopped"};

int main_restart_parse(const char *text, enum main_restart *out, unsigned *max_retries, char *err, size_t cap)
{
    *max_retries = 0;
    if (!text || !*text) {
        *out = MAIN_RESTART_NO;
        return 0;
    }
    for (int i = 0; i < 4; i++)
        if (!strcmp(text, restart_names[i])) {
            *out = (enum main_restart)i;
            return 0;
        }
    const char *pfx = "on-failure:";
    if (!strncmp(text, pfx, strlen(pfx))) {
        const char *n = text + strlen(pfx);
        char *end;
        errno = 0;
        unsigned long v = strtoul(n, &end, 10);
        if (*n >= '0' && *n <= '9' && !*end && !errno && v >= 1 && v <= MAIN_RETRIES_MAX) {
            *out = MAIN_RESTART_ON_FAILURE;
            *max_retries = (unsigned)v;
            return 0;
        }
        snprintf(err, cap, "restart policy \"%.64s\": the count of on-failure:N must be 1 to %u", text,
                 MAIN_RETRIES_MAX);
        return -1;
    }
    snprintf(err, cap, "unknown restart policy \"%.64s\": use no, on-failure[:N], always or unless-stopped", text);
    return -1;
}

void main_restart_format(enum main_restart r, unsigned max_retries, char *out, size_t cap)
{
    const char *name = (unsigned)r < 4 ? restart_names[r] : "?";
    if (r == MAIN_RESTART_ON_FAILURE && max_retries)
        snprintf(out, cap, "%s:%u", name, max_retries);
    else
        snprintf(out, cap, "%s", name);
}

uint32_t main_backoff_ms(unsigned n)
{
    uint64_t ms = MAIN_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < n && ms < MAIN_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > MAIN_BACKOFF_MAX_MS ? MAIN_BACKOFF_MAX_MS : (uint32_t)ms;
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a && v && v[i]; i++)
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

char *main_spec_json(const struct main_spec *s)
{
    char policy[32];
    main_restart_format(s->restart, s->max_retries, policy, sizeof(policy));
    json_t *o =
        json_pack("{s:o?, s:o?, s:s, s:s, s:s, s:b, s:b}", "argv", strv_json(s->argv), "env", strv_json(s->env),
                  "workdir", s->workdir, "user", s->user, "restart", policy, "tty", s->tty, "stdin", s->open_stdin);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return text;
}

/* A JSON array of strings (no NUL inside, at most max entries) as an owned list. */
static int strv_parse(json_t *a, size_t max, int need_one, const char *what, char ***out, char *err, size_t cap)
{
    *out = NULL;
    if (!json_is_array(a) || json_array_size(a) > max || (need_one && json_array_size(a) == 0)) {
        snprintf(err, cap, "\"%s\" must be an array of %s%zu strings", what, need_one ? "1 to " : "at most ", max);
        return -1;
    }
    size_t n = json_array_size(a);
    char **v = calloc(n + 1, sizeof(*v));
    if (!v) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e) ||
            !(v[i] = strdup(json_string_value(e)))) {
            snprintf(err, cap, "\"%s\"[%zu] must be a string without NUL bytes", what, i);
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -1;
        }
    }
    *out = v;
    return 0;
}

static int str_field(json_t *o, const char *key, char *out, size_t outcap, char *err, size_t cap)
{
    json_t *f = json_object_get(o, key);
    out[0] = 0;
    if (!f)
        return 0;
    if (!json_is_string(f) || json_string_length(f) >= outcap ||
        strlen(json_string_value(f)) != json_string_length(f)) {
        snprintf(err, cap, "\"%s\" must be a string of less than %zu bytes", key, outcap);
        return -1;
    }
    memcpy(out, json_string_value(f), json_string_length(f) + 1);
    return 0;
}

/* An optional true/false (absent: false, as main.json files written before it). */
static int bool_field(json_t *o, const char *key, int *out, char *err, size_t cap)
{
    json_t *f = json_object_get(o, key);
    *out = f && json_is_true(f);
    if (f && !json_is_boolean(f)) {
        snprintf(err, cap, "\"%s\" must be true or false", key);
        return -1;
    }
    return 0;
}

void main_spec_free(struct main_spec *s)
{
    for (size_t i = 0; s->argv && s->argv[i]; i++)
        free(s->argv[i]);
    for (size_t i = 0; s->env && s->env[i]; i++)
        free(s->env[i]);
    free(s->argv);
    free(s->env);
    s->argv = s->env = NULL;
}

int main_spec_parse(const char *text, size_t len, struct main_spec *s, char *err, size_t cap)
{
    memset(s, 0, sizeof(*s));
    if (len > MAIN_SPEC_FILE_MAX) {
        snprintf(err, cap, "main.json is larger than %u bytes", MAIN_SPEC_FILE_MAX);
        return -1;
    }
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        snprintf(err, cap, "main.json: %s", o ? "not a JSON object" : jerr.text);
        json_decref(o);
        return -1;
    }
    char policy[64];
    json_t *env = json_object_get(o, "env");
    int rc = strv_parse(json_object_get(o, "argv"), MAIN_ARGV_MAX, 1, "argv", &s->argv, err, cap);
    if (rc == 0)
        rc = env ? strv_parse(env, MAIN_ENV_MAX, 0, "env", &s->env, err, cap) : 0;
    if (rc == 0 && !s->env && !(s->env = calloc(1, sizeof(*s->env)))) {
        snprintf(err, cap, "out of memory");
        rc = -1;
    }
    if (rc == 0)
        rc = str_field(o, "workdir", s->workdir, sizeof(s->workdir), err, cap);
    if (rc == 0)
        rc = str_field(o, "user", s->user, sizeof(s->user), err, cap);
    if (rc == 0)
        rc = str_field(o, "restart", policy, sizeof(policy), err, cap);
    if (rc == 0)
        rc = main_restart_parse(policy, &s->restart, &s->max_retries, err, cap);
    if (rc == 0)
        rc = bool_field(o, "tty", &s->tty, err, cap);
    if (rc == 0)
        rc = bool_field(o, "stdin", &s->open_stdin, err, cap);
    json_decref(o);
    if (rc < 0)
        main_spec_free(s);
    return rc;
}

/* A small file of ours in the box directory, read whole: NULL with errno (ENOENT when
 * absent, EFBIG above max). */
char *boxfile_read_at(int dirfd, const char *name, size_t max, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = 0;
    while (buf && n <= max) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0) {
                free(buf);
                buf = NULL;
            }
            break;
        }
        n += (size_t)r;
    }
    int e = errno;
    close(fd);
    if (buf && n > max) {
        free(buf);
        buf = NULL;
        e = EFBIG;
    }
    if (!buf) {
        errno = e ? e : ENOMEM;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Replaced by rename: a reader sees the old file or the new one. */
int boxfile_write_at(int dirfd, const char *name, const char *text, size_t len)
{
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, len);
    int e = w < 0 ? errno : ENOSPC;
    close(fd);
    if (w != (ssize_t)len || renameat(dirfd, tmp, dirfd, name) < 0) {
        if (w == (ssize_t)len)
            e = errno;
        unlinkat(dirfd, tmp, 0);
        errno = e;
        return -1;
    }
    return 0;
}

int main_spec_read(int dirfd, struct main_spec *s, char *err, size_t cap)
{
    size_t len;
    memset(s, 0, sizeof(*s));
    char *text = boxfile_read_at(dirfd, "main.json", MAIN_SPEC_FILE_MAX, &len);
    if (!text) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, cap, "cannot read main.json: %s", strerror(errno));
        return -1;
    }
    int rc = main_spec_parse(text, len, s, err, cap);
    free(text);
    return rc < 0 ? -1 : 1;
}

int main_spec_write(int dirfd, const struct main_spec *s, char *err, size_t cap)
{
    char *text = main_spec_json(s);
    if (!text) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    int rc = boxfile_write_at(dirfd, "main.json", text, strlen(text));
    free(text);
    if (rc < 0)
        snprintf(err, cap, "cannot write main.json: %s", strerror(errno));
    return rc;
}

int main_state_write(int dirfd, const struct main_state *st)
{
    return main_state_write_as(dirfd, "main.state.json", st);
}

int main_state_write_as(int dirfd, const char *name, const struct main_state *st)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:s, s:I, s:I, s:I, s:i}", "state", st->state, "pid", st->pid,
                          "exit_code", st->exit_code, "signal", st->signal, "error", st->error, "started_at",
                          (json_int_t)st->started_at, "finished_at", (json_int_t)st->finished_at, "next_restart_ms",
                          (json_int_t)st->next_restart_ms, "restarts", (int)st->restarts);
    if (o && st->command[0] && json_object_set_new(o, "command", json_string(st->command)) < 0) {
        json_decref(o);
        o = NULL;
    }
    char *text = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    int rc = boxfile_write_at(dirfd, name, text, strlen(text));
    free(text);
    return rc;
}

static int int_field(json_t *o, const char *key, long long lo, long long hi, long long *out)
{
    json_t *f = json_object_get(o, key);
    if (!f)
        return 0;
    if (!json_is_integer(f) || json_integer_value(f) < lo || json_integer_value(f) > hi)
        return -1;
    *out = json_integer_value(f);
    return 0;
}

int main_state_parse(const char *text, size_t len, struct main_state *st, char *err, size_t cap)
{
    memset(st, 0, sizeof(*st));
    st->exit_code = -1;
    json_error_t jerr;
    json_t *o = len <= MAIN_STATE_FILE_MAX ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    long long pid = 0, code = -1, sig = 0, restarts = 0;
    int rc = json_is_object(o) ? 0 : -1;
    if (rc == 0)
        rc = str_field(o, "state", st->state, sizeof(st->state), err, cap) |
             str_field(o, "error", st->error, sizeof(st->error), err, cap) |
             str_field(o, "command", st->command, sizeof(st->command), err, cap);
    if (rc == 0)
        rc = int_field(o, "pid", 0, 1 << 30, &pid) | int_field(o, "exit_code", -1, 255, &code) |
             int_field(o, "signal", 0, 64, &sig) | int_field(o, "restarts", 0, 1 << 30, &restarts) |
             int_field(o, "started_at", 0, 1LL << 40, &st->started_at) |
             int_field(o, "finished_at", 0, 1LL << 40, &st->finished_at) |
             int_field(o, "next_restart_ms", 0, 1LL << 50, &st->next_restart_ms);
    json_decref(o);
    if (rc < 0) {
        snprintf(err, cap, "main.state.json is damaged");
        return -1;
    }
    st->pid = (int)pid;
    st->exit_code = (int)code;
    st->signal = (int)sig;
    st->restarts = (unsigned)restarts;
    return 1;
}

int main_state_read(int dirfd, struct main_state *st, char *err, size_t cap)
{
    return main_state_read_as(dirfd, "main.state.json", st, err, cap);
}

int main_state_read_as(int dirfd, const char *name, struct main_state *st, char *err, size_t cap)
{
    size_t len;
    char *text = boxfile_read_at(dirfd, name, MAIN_STATE_FILE_MAX, &len);
    if (!text) {
        memset(st, 0, sizeof(*st));
        if (errno == ENOENT)
            return 0;
        snprintf(err, cap, "cannot read %s: %s", name, strerror(errno));
        return -1;
    }
    int rc = main_state_parse(text, len, st, err, cap);
    free(text);
    return rc;
}

void main_state_settle(struct main_state *st, int box_running)
{
    if (box_running || !strcmp(st->state, "exited") || !strcmp(st->state, "stopped"))
        return;
    snprintf(st->state, sizeof(st->state), "stopped");
    st->pid = 0;
    st->next_restart_ms = 0;
}
