/* Snapshot routes of `cocoon serve` (docs/openapi.yaml "snapshots"): GET and POST
 * /v1/boxes/{id}/snapshots (list, create {name}), GET and DELETE
 * /v1/boxes/{id}/snapshots/{snapshot}, POST .../{snapshot}/restore, and POST
 * /v1/boxes/{id}/compact. A snapshot is named under its box: one of another box
 * answers 404 here. The box must be stopped for create, restore and compact (409
 * otherwise), as for the CLI. */
#include <string.h>

#include "serve/serve.h"

static json_t *snapshot_json(const cocoon_snapshot_info *s)
{
    /* container_disk_bytes: BoxLite's client requires it (its boxes have a second disk). */
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:I, s:I, s:I, s:I, s:i, s:i}", "id", s->id, "name", s->name,
                     "box_id", s->box_id, "box_name", s->box_name[0] ? s->box_name : NULL, "parent",
                     s->parent[0] ? s->parent : NULL, "image", s->image, "created_at", (json_int_t)s->created,
                     "size_bytes", (json_int_t)s->size, "container_disk_bytes", (json_int_t)s->size,
                     "virtual_size_bytes", (json_int_t)s->virtual_size, "depth", (int)s->depth, "users", (int)s->users);
}

static int answer_list(struct req *r, cocoon_runtime *rt, cocoon_box *box)
{
    cocoon_snapshot_info *list;
    size_t n;
    cocoon_error err;
    if (cocoon_snapshot_list(rt, cocoon_box_id(box), &list, &n, &err) < 0)
        return serve_cocoon_error(r, &err);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, snapshot_json(&list[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    cocoon_snapshot_list_free(list);
    json_t *j = arr ? json_pack("{s:o}", "snapshots", arr) : NULL;
    return j ? serve_json(r, 200, j) : serve_error(r, 503, "resource_exhausted", "out of memory");
}

static int answer_create(struct req *r, cocoon_box *box)
{
    static const char *const keys[] = {"name", NULL};
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    cocoon_snapshot_options o;
    cocoon_snapshot_options_init(&o);
    if (serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "name", 64, &o.name) < 0) {
        json_decref(b);
        return -1;
    }
    cocoon_snapshot_info info;
    cocoon_error err;
    int rc = cocoon_snapshot_create(box, &o, &info, &err) < 0 ? serve_cocoon_error(r, &err)
                                                              : serve_json(r, 201, snapshot_json(&info));
    json_decref(b);
    return rc;
}

static int answer_compact(struct req *r, cocoon_box *box)
{
    cocoon_compact_options o;
    cocoon_compact_options_init(&o);
    cocoon_compact_info info;
    cocoon_error err;
    if (cocoon_box_compact(box, &o, &info, &err) < 0)
        return serve_cocoon_error(r, &err);
    json_t *released = json_array();
    for (unsigned i = 0; released && i < info.nreleased; i++)
        json_array_append_new(released, json_string(info.released[i]));
    json_t *j = released ? json_pack("{s:i, s:i, s:I, s:I, s:I, s:I, s:o}", "layers_before", (int)info.layers_before,
                                     "layers_after", (int)info.layers_after, "bytes_before",
                                     (json_int_t)info.bytes_before, "bytes_after", (json_int_t)info.bytes_after,
                                     "data_clusters", (json_int_t)info.data_clusters, "zero_clusters",
                                     (json_int_t)info.zero_clusters, "released", released)
                         : NULL;
    return j ? serve_json(r, 200, j) : serve_error(r, 503, "resource_exhausted", "out of memory");
}

/* The route's snapshot, when it is one of the route's box; else answered 404. */
static int find(struct req *r, cocoon_runtime *rt, cocoon_box *box, cocoon_snapshot_info *out)
{
    cocoon_error err;
    if (cocoon_snapshot_inspect(rt, r->route.snapshot, out, &err) < 0)
        return serve_cocoon_error(r, &err);
    if (strcmp(out->box_id, cocoon_box_id(box)))
        return serve_error(r, 404, "not_found", "box %s has no snapshot \"%s\"", cocoon_box_id(box), r->route.snapshot);
    return 0;
}

int handle_snapshots(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    cocoon_snapshot_info s;
    cocoon_error err;
    int rc;
    if (r->route.id == R_BOX_COMPACT)
        rc = answer_compact(r, box);
    else if (r->route.id == R_SNAPSHOTS)
        rc = r->method == M_POST ? answer_create(r, box) : answer_list(r, rt, box);
    else if ((rc = find(r, rt, box, &s)) < 0)
        ;
    else if (r->route.id == R_SNAPSHOT_RESTORE)
        rc = cocoon_snapshot_restore(box, s.id, &err) < 0 ? serve_cocoon_error(r, &err)
                                                          : serve_json(r, 200, snapshot_json(&s));
    else if (r->method == M_DELETE)
        rc = cocoon_snapshot_remove(rt, s.id, &err) < 0 ? serve_cocoon_error(r, &err) : serve_empty(r, 204);
    else
        rc = serve_json(r, 200, snapshot_json(&s));
    serve_close_runtime_box(rt, box);
    return rc;
}
