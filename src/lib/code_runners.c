/* The guest side of the code interpreter, put in place by the host: the runner programs
 * embedded in libcocoon (code_blob.S) are written under /run/cocoon/code/<digest>/ when
 * that directory lacks them, and context management is one exec of ctx.py's manager. */
#include "lib/code.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

extern const char code_blob_ctx_py[], code_blob_ctx_py_end[];
extern const char code_blob_ctx_js[], code_blob_ctx_js_end[];

#define STDERR_MAX 4096u

int code_check_id(const char *id, cocoon_error *err)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return lib_err(err, COCOON_E_INVALID, "a code context id is 1 to 64 characters");
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return lib_err(err, COCOON_E_INVALID,
                           "code context id \"%.64s\" has a character other than letters, digits, - and _", id);
    }
    return 0;
}

int code_check_language(const char *language, cocoon_error *err)
{
    if (strcmp(language, "python") && strcmp(language, "javascript") && strcmp(language, "bash"))
        return lib_err(err, COCOON_E_INVALID, "unknown code language \"%.64s\" (python, javascript or bash)", language);
    return 0;
}

/* Where this build's runners live in the guest: a digest of both, so a box that met
 * another version of libcocoon gets this one's next to it. */
static void runners_dir(char *out, size_t cap)
{
    static const uint8_t key[16] = "cocoon-code-run";
    uint64_t a = util_siphash(key, code_blob_ctx_py, (size_t)(code_blob_ctx_py_end - code_blob_ctx_py));
    uint64_t b = util_siphash(key, code_blob_ctx_js, (size_t)(code_blob_ctx_js_end - code_blob_ctx_js));
    snprintf(out, cap, "/run/cocoon/code/%016llx", (unsigned long long)(a ^ (b * 31)));
}

static int write_runner(cocoon_box *box, const char *dir, const char *name, const char *data, const char *end,
                        cocoon_error *err)
{
    char tmp[256], final[256];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    if (cocoon_file_write(box, tmp, data, (size_t)(end - data), 0644, err) < 0)
        return -1;
    return cocoon_file_move(box, tmp, final, 0, err);
}

static int install_runners(cocoon_box *box, const char *dir, cocoon_error *err)
{
    char probe[256];
    cocoon_file_info info;
    snprintf(probe, sizeof(probe), "%s/ctx.py", dir);
    if (cocoon_file_stat(box, probe, &info, err) == 0)
        return 0;
    if (err->code != COCOON_E_NOT_FOUND)
        return -1;
    /* ctx.py last: its presence says both are complete */
    if (cocoon_file_mkdir(box, dir, 0755, COCOON_MKDIR_PARENTS, err) < 0 ||
        write_runner(box, dir, "ctx.js", code_blob_ctx_js, code_blob_ctx_js_end, err) < 0 ||
        write_runner(box, dir, "ctx.py", code_blob_ctx_py, code_blob_ctx_py_end, err) < 0)
        return -1;
    lib_err_clear(err);
    return 0;
}

struct capture {
    char *data;
    size_t len, cap, max;
    int overflow;
};

static void capture(void *user, const char *data, size_t len)
{
    struct capture *c = user;
    if (c->len + len > c->max) {
        c->overflow = 1;
        len = c->max - c->len;
    }
    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + len + 1)
            cap *= 2;
        char *p = realloc(c->data, cap);
        if (!p) {
            c->overflow = 1;
            return;
        }
        c->data = p;
        c->cap = cap;
    }
    memcpy(c->data + c->len, data, len);
    c->len += len;
    c->data[c->len] = 0;
}

/* The exec's two streams, each into its own bounded buffer. */
struct manage_io {
    struct capture out, errs;
};

static void manage_out(void *user, const char *data, size_t len)
{
    capture(&((struct manage_io *)user)->out, data, len);
}
static void manage_err(void *user, const char *data, size_t len)
{
    capture(&((struct manage_io *)user)->errs, data, len);
}

static const char NO_PYTHON[] = "python3 is not installed in this box's image, and the code interpreter's contexts "
                                "need it: use the code-interpreter image (cocoon run code-interpreter ...)";

static int manage_answer(const cocoon_exit_status *st, struct manage_io *io, char **out, cocoon_error *err)
{
    int code = cocoon_exit_status_code(st);
    char msg[2 * STDERR_MAX + 8];
    size_t n = io->errs.len;
    while (n && (io->errs.data[n - 1] == '\n' || io->errs.data[n - 1] == ' '))
        n--;
    util_escape_text(msg, sizeof(msg), io->errs.data ? io->errs.data : "", n);
    if (code == 0 && io->out.overflow)
        return lib_err(err, COCOON_E_PROTOCOL, "the box's code-context manager answered more than %u bytes",
                       CODE_MANAGE_OUT_MAX);
    if (code == 127)
        return lib_err(err, COCOON_E_UNSUPPORTED, "%s", NO_PYTHON);
    if (code == CODE_MANAGE_NOT_FOUND)
        return lib_err(err, COCOON_E_NOT_FOUND, "%s", msg);
    if (code == CODE_MANAGE_UNSUPPORTED)
        return lib_err(err, COCOON_E_UNSUPPORTED, "%s", msg);
    if (code == CODE_MANAGE_USAGE)
        return lib_err(err, COCOON_E_INVALID, "%s", msg);
    if (code != 0)
        return lib_err(err, COCOON_E_IO, "the box's code-context manager failed (status %d): %s", code, msg);
    if (out) {
        *out = io->out.data ? io->out.data : strdup("");
        io->out.data = NULL;
        if (!*out)
            return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    return 0;
}

int code_manage(cocoon_box *box, const char *const *args, char **out, cocoon_error *err)
{
    char dir[128], script[160];
    runners_dir(dir, sizeof(dir));
    if (install_runners(box, dir, err) < 0)
        return -1;
    snprintf(script, sizeof(script), "%s/ctx.py", dir);
    const char *argv[16] = {"python3", script, "manage"};
    size_t n = 3;
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    struct manage_io io = {.out = {.max = CODE_MANAGE_OUT_MAX}, .errs = {.max = STDERR_MAX}};
    cocoon_exec_options eo;
    cocoon_exec_options_init(&eo);
    eo.argv = argv;
    eo.on_stdout = manage_out;
    eo.on_stderr = manage_err;
    eo.user_data = &io;
    cocoon_exit_status st;
    int rc = cocoon_box_run(box, &eo, &st, err);
    if (rc < 0 && err->code == COCOON_E_NOT_FOUND)
        lib_err(err, COCOON_E_UNSUPPORTED, "%s", NO_PYTHON);
    else if (rc == 0)
        rc = manage_answer(&st, &io, out, err);
    free(io.out.data);
    free(io.errs.data);
    return rc;
}
