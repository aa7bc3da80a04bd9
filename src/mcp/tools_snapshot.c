/* Snapshot tools: disk snapshots of stopped boxes (create, list, restore, remove),
 * clones (new boxes over a snapshot), and export and import of a box as one archive at
 * a host path inside the allowlist COCOON_MCP_HOST_PATHS (the rule of the host copy
 * tools). Boxes made here belong to the session, as box_create's, unless kept. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mcp/internal.h"

/* The REST API's Snapshot fields (docs/openapi.yaml; not BoxLite's container_disk_bytes, a
 * copy of size_bytes), so an agent sees the same names. */
json_t *mcp_snapshot_json(const cocoon_snapshot_info *s)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:I, s:I, s:I, s:i, s:i}", "id", s->id, "name", s->name,
                     "box_id", s->box_id, "box_name", s->box_name[0] ? s->box_name : NULL, "parent",
                     s->parent[0] ? s->parent : NULL, "image", s->image, "created_at", (json_int_t)s->created,
                     "size_bytes", (json_int_t)s->size, "virtual_size_bytes", (json_int_t)s->virtual_size, "depth",
                     (int)s->depth, "users", (int)s->users);
}

/* A failure of these tools, with a hint that fits snapshots (result.c's fits boxes). */
static json_t *snap_error(const char *doing, const cocoon_error *err)
{
    const char *hint = err->code == COCOON_E_NOT_FOUND ? " (snapshot_list and box_list show what exists)"
                       : err->code == COCOON_E_STATE
                           ? " (box_stop stops a running box; snapshot_list shows how many stand on each snapshot)"
                           : "";
    return tool_error("%s: %s%s", doing, err->message[0] ? err->message : "failed", hint);
}

json_t *tool_snapshot_create(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    (void)c;
    cocoon_snapshot_options o;
    cocoon_snapshot_options_init(&o);
    o.name = arg_str(args, "name", NULL);
    cocoon_snapshot_info info;
    cocoon_error err;
    if (cocoon_snapshot_create(box, &o, &info, &err) < 0)
        return snap_error("cannot snapshot the box", &err);
    return tool_ok(mcp_snapshot_json(&info));
}

json_t *tool_snapshot_list(struct mcp_call *c, json_t *args, cocoon_runtime *rt)
{
    (void)c;
    cocoon_snapshot_info *list;
    size_t n;
    cocoon_error err;
    if (cocoon_snapshot_list(rt, arg_str(args, "box", NULL), &list, &n, &err) < 0)
        return snap_error("cannot list snapshots", &err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, mcp_snapshot_json(&list[i]));
    cocoon_snapshot_list_free(list);
    return tool_ok(json_pack("{s:o}", "snapshots", arr));
}

/* A plain tool: it needs the runtime (to read the snapshot back) and the box. */
json_t *tool_snapshot_restore(struct mcp_call *c, json_t *args)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    json_t *result;
    if (mcp_open_box(c, args, &rt, &box, &result) < 0)
        return result;
    cocoon_error err;
    cocoon_snapshot_info info;
    const char *snapshot = arg_str(args, "snapshot", "");
    if (cocoon_snapshot_restore(box, snapshot, &err) < 0)
        result = snap_error("cannot restore the snapshot", &err);
    else if (cocoon_snapshot_inspect(rt, snapshot, &info, &err) < 0)
        result = snap_error("the box was restored, but the snapshot cannot be read back", &err);
    else
        result = tool_ok(mcp_snapshot_json(&info));
    mcp_close_box(rt, box);
    return result;
}

json_t *tool_snapshot_remove(struct mcp_call *c, json_t *args, cocoon_runtime *rt)
{
    (void)c;
    cocoon_snapshot_info info;
    cocoon_error err;
    const char *snapshot = arg_str(args, "snapshot", "");
    if (cocoon_snapshot_inspect(rt, snapshot, &info, &err) < 0 || cocoon_snapshot_remove(rt, info.id, &err) < 0)
        return snap_error("cannot remove the snapshot", &err);
    return tool_ok(json_pack("{s:s, s:s, s:b}", "id", info.id, "name", info.name, "removed", 1));
}

/* The host path is checked before anything is opened: a refusal needs no state. */
json_t *tool_box_export(struct mcp_call *c, json_t *args)
{
    char host[PATH_MAX + 256], why[2048];
    if (mcp_host_path(arg_str(args, "host_path", ""), 1, host, sizeof(host), why, sizeof(why)) < 0)
        return tool_error("%s", why);
    cocoon_runtime *rt;
    cocoon_error err;
    if (mcp_runtime(c->s, &rt, &err) < 0)
        return tool_cocoon_error("cannot open cocoon's state", &err);
    const char *what = arg_str(args, "source", "");
    json_t *result;
    struct stat st;
    if (cocoon_export(rt, what, host, &err) < 0)
        result = snap_error("cannot export", &err);
    else
        result = tool_ok(json_pack("{s:s, s:s, s:I}", "source", what, "host_path", host, "size_bytes",
                                   (json_int_t)(stat(host, &st) == 0 ? st.st_size : 0)));
    cocoon_runtime_close(rt);
    return result;
}

/* The new box of a clone or an import: recorded in the session unless kept, answered
 * as box_inspect answers. */
static json_t *new_box(struct mcp_call *c, cocoon_runtime *rt, const char *id, int keep)
{
    if (!keep)
        session_add_box(c->s, id, 0);
    cocoon_box *box;
    cocoon_box_info info;
    cocoon_error err;
    if (cocoon_box_open(rt, id, &box, &err) < 0)
        return snap_error("cannot open the new box", &err);
    json_t *result = cocoon_box_inspect(box, &info, &err) < 0 ? snap_error("cannot inspect the new box", &err)
                                                              : tool_ok(mcp_box_json(&info));
    cocoon_box_close(box);
    return result;
}

/* A snapshot named for a clone must be one of the box's, as over REST. */
json_t *tool_box_clone(struct mcp_call *c, json_t *args)
{
    int keep = arg_bool(args, "keep", 0);
    if (!keep && session_boxes_full(c->s))
        return tool_error("this session created %d boxes, the bound: remove some with box_remove first",
                          MCP_SESSION_BOXES_MAX);
    cocoon_runtime *rt;
    cocoon_box *box;
    json_t *result;
    if (mcp_open_box(c, args, &rt, &box, &result) < 0)
        return result;
    char source[16], ids[1][16];
    snprintf(source, sizeof(source), "%s", cocoon_box_id(box));
    const char *snapshot = arg_str(args, "snapshot", NULL);
    cocoon_snapshot_info s;
    cocoon_error err;
    result = NULL;
    if (snapshot && cocoon_snapshot_inspect(rt, snapshot, &s, &err) < 0)
        result = snap_error("cannot clone", &err);
    else if (snapshot && strcmp(s.box_id, source))
        result = tool_error("cannot clone: box %s has no snapshot \"%s\" (snapshot_list with box shows its own)",
                            source, snapshot);
    else if (snapshot)
        snprintf(source, sizeof(source), "%s", s.id);
    cocoon_clone_options o;
    cocoon_clone_options_init(&o);
    o.name = arg_str(args, "name", NULL);
    if (!result && cocoon_box_clone(rt, source, &o, ids, NULL, &err) < 0)
        result = snap_error("cannot clone", &err);
    else if (!result)
        result = new_box(c, rt, ids[0], keep);
    mcp_close_box(rt, box);
    return result;
}

json_t *tool_box_import(struct mcp_call *c, json_t *args)
{
    char host[PATH_MAX + 256], why[2048];
    if (mcp_host_path(arg_str(args, "host_path", ""), 0, host, sizeof(host), why, sizeof(why)) < 0)
        return tool_error("%s", why);
    int keep = arg_bool(args, "keep", 0);
    if (!keep && session_boxes_full(c->s))
        return tool_error("this session created %d boxes, the bound: remove some with box_remove first",
                          MCP_SESSION_BOXES_MAX);
    cocoon_runtime *rt;
    cocoon_error err;
    if (mcp_runtime(c->s, &rt, &err) < 0)
        return tool_cocoon_error("cannot open cocoon's state", &err);
    cocoon_import_options o;
    cocoon_import_options_init(&o);
    o.name = arg_str(args, "name", NULL);
    cocoon_box *box;
    json_t *result;
    if (cocoon_import(rt, host, &o, &box, &err) < 0) {
        result = snap_error("cannot import the archive", &err);
    } else {
        char id[16];
        snprintf(id, sizeof(id), "%s", cocoon_box_id(box));
        cocoon_box_close(box);
        result = new_box(c, rt, id, keep);
    }
    cocoon_runtime_close(rt);
    return result;
}
