/* File tools on a running box: read (text, or base64 when not UTF-8), write, list,
 * stat, mkdir, remove; and copies between the box and host paths inside the allowlist. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "util/util.h"

#define FILE_READ_DEFAULT (1u << 20)

static const char *type_text(int type)
{
    switch (type) {
    case COCOON_FILE_REGULAR: return "file";
    case COCOON_FILE_DIRECTORY: return "directory";
    case COCOON_FILE_SYMLINK: return "symlink";
    default: return "other";
    }
}

static json_t *info_json(const cocoon_file_info *f)
{
    json_t *o = json_pack("{s:o, s:s, s:I, s:i, s:i, s:i, s:I}", "name", mcp_text(f->name, strlen(f->name)), "type",
                          type_text(f->type), "size", (json_int_t)f->size, "mode", (int)f->mode, "uid", (int)f->uid,
                          "gid", (int)f->gid, "mtime", (json_int_t)f->mtime);
    if (o && f->type == COCOON_FILE_SYMLINK)
        json_object_set_new(o, "link_target", mcp_text(f->link_target, strlen(f->link_target)));
    return o;
}

json_t *tool_file_read(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    const char *path = arg_str(args, "path", "");
    void *data;
    size_t len;
    cocoon_error err;
    json_t *result;
    if (cocoon_file_read(box, path, &data, &len, (size_t)arg_int(args, "max_bytes", FILE_READ_DEFAULT), &err) < 0) {
        result = tool_cocoon_error("cannot read the file", &err);
    } else {
        json_t *text = arg_bool(args, "base64", 0) ? NULL : json_stringn(data, len);
        if (text) {
            result = tool_ok(json_pack("{s:s, s:o, s:s, s:I}", "path", path, "content", text, "encoding", "utf-8",
                                       "size", (json_int_t)len));
        } else {
            size_t cap = (len + 2) / 3 * 4 + 1;
            char *b64 = malloc(cap);
            if (!b64 || util_base64_encode(data, len, b64, cap) < 0)
                result = tool_error("out of memory");
            else
                result = tool_ok(json_pack("{s:s, s:s, s:s, s:I}", "path", path, "content", b64, "encoding", "base64",
                                           "size", (json_int_t)len));
            free(b64);
        }
        free(data);
    }
    return result;
}

json_t *tool_file_write(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    (void)c;
    const char *content = arg_str(args, "content", "");
    size_t len = strlen(content);
    void *decoded = NULL;
    if (arg_bool(args, "base64", 0)) {
        size_t cap = len / 4 * 3 + 4;
        if (!(decoded = malloc(cap)) || util_base64_decode(content, len, decoded, cap, &len) < 0) {
            free(decoded);
            return tool_error("\"content\" is not valid base64 (set base64: false to write text)");
        }
    }
    json_t *result;
    cocoon_error err;
    const char *path = arg_str(args, "path", "");
    if (cocoon_file_write(box, path, decoded ? decoded : content, len, (unsigned)arg_int(args, "mode", 0), &err) < 0)
        result = tool_cocoon_error("cannot write the file", &err);
    else
        result = tool_ok(json_pack("{s:s, s:I}", "path", path, "written", (json_int_t)len));
    free(decoded);
    return result;
}

json_t *tool_file_list(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_file_info *list;
    size_t n;
    cocoon_error err;
    json_t *result;
    if (cocoon_file_list(box, arg_str(args, "path", ""), &list, &n, &err) < 0) {
        result = tool_cocoon_error("cannot list the directory", &err);
    } else {
        json_t *entries = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(entries, info_json(&list[i]));
        cocoon_file_list_free(list);
        result = tool_ok(json_pack("{s:s, s:o}", "path", arg_str(args, "path", ""), "entries", entries));
    }
    return result;
}

json_t *tool_file_stat(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_file_info f;
    cocoon_error err;
    json_t *result = cocoon_file_stat(box, arg_str(args, "path", ""), &f, &err) < 0
                         ? tool_cocoon_error("cannot stat the path", &err)
                         : tool_ok(info_json(&f));
    return result;
}

json_t *tool_file_mkdir(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_error err;
    const char *path = arg_str(args, "path", "");
    unsigned flags = arg_bool(args, "parents", 0) ? COCOON_MKDIR_PARENTS : 0;
    json_t *result = cocoon_file_mkdir(box, path, 0, flags, &err) < 0
                         ? tool_cocoon_error("cannot make the directory", &err)
                         : tool_ok(json_pack("{s:s, s:b}", "path", path, "created", 1));
    return result;
}

json_t *tool_file_remove(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_error err;
    const char *path = arg_str(args, "path", "");
    unsigned flags = arg_bool(args, "recursive", 0) ? COCOON_REMOVE_RECURSIVE : 0;
    json_t *result = cocoon_file_remove(box, path, flags, &err) < 0
                         ? tool_cocoon_error("cannot remove the path", &err)
                         : tool_ok(json_pack("{s:s, s:b}", "path", path, "removed", 1));
    return result;
}

/* The host path is checked before the box is opened: a refusal needs no box. */
static json_t *copy(struct mcp_call *c, json_t *args, int to_box)
{
    char host[PATH_MAX + 256], why[2048];
    const char *asked = arg_str(args, "host_path", "");
    if (mcp_host_path(asked, !to_box, host, sizeof(host), why, sizeof(why)) < 0)
        return tool_error("%s", why);
    cocoon_runtime *rt;
    cocoon_box *box;
    json_t *fail;
    if (mcp_open_box(c, args, &rt, &box, &fail) < 0)
        return fail;
    cocoon_error err = {0};
    const char *box_path = arg_str(args, "box_path", "");
    int rc = to_box ? cocoon_copy_to_box(box, host, box_path, &err) : cocoon_copy_from_box(box, box_path, host, &err);
    json_t *result;
    if (rc < 0)
        result = tool_cocoon_error(to_box ? "cannot copy into the box" : "cannot copy out of the box", &err);
    else
        result = tool_ok(json_pack("{s:s, s:s, s:s}", "host_path", host, "box_path", box_path, "warnings",
                                   err.message[0] ? err.message : ""));
    mcp_close_box(rt, box);
    return result;
}

json_t *tool_copy_to_box(struct mcp_call *c, json_t *args) { return copy(c, args, 1); }
json_t *tool_copy_from_box(struct mcp_call *c, json_t *args) { return copy(c, args, 0); }
