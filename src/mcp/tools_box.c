/* Tools for the life of a box (create, list, inspect, start, stop, remove), what a box
 * shows (stats, console log, network log) and images (pull with progress, list). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mcp/internal.h"
#include "serve/boxdefaults.h"

json_t *mcp_box_json(const cocoon_box_info *b)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:i, s:i, s:I, s:b}", "id", b->id, "name", b->name, "image",
                     b->image[0] ? b->image : b->rootfs, "status", b->status, "running", b->running, "created",
                     (json_int_t)b->created, "cpus", (int)b->cpus, "memory_mib", (int)b->memory_mib, "disk_bytes",
                     (json_int_t)b->disk_size, "ephemeral", b->ephemeral);
}

json_t *mcp_image_json(const cocoon_image_info *i)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:i, s:b}", "id", i->id, "name", i->name, "size_bytes", (json_int_t)i->size,
                     "created", (json_int_t)i->created, "boxes", (int)i->boxes, "pulled", i->pulled);
}

static json_t *inspect_result(cocoon_box *box)
{
    cocoon_box_info info;
    cocoon_error err;
    if (cocoon_box_inspect(box, &info, &err) < 0)
        return tool_cocoon_error("cannot inspect the box", &err);
    return tool_ok(mcp_box_json(&info));
}

json_t *tool_box_create(struct mcp_call *c, json_t *args, cocoon_runtime *rt)
{
    cocoon_error err;
    int keep = arg_bool(args, "keep", 0);
    if (!keep && session_boxes_full(c->s)) {
        return tool_error("this session created %d boxes, the bound: remove some with box_remove first",
                          MCP_SESSION_BOXES_MAX);
    }
    cocoon_box_options o;
    cocoon_box_options_init(&o);
    o.image = arg_str(args, "image", NULL);
    const char *name = arg_str(args, "name", NULL);
    o.name = name && *name ? name : NULL;
    o.cpus = (unsigned)arg_int(args, "cpus", 0);
    o.memory_mib = (unsigned)arg_int(args, "memory_mib", 0);
    cocoon_box *box;
    json_t *result;
    if (cocoon_box_create(rt, &o, &box, &err) < 0) {
        result = tool_cocoon_error("cannot create the box", &err);
        goto out;
    }
    if (!keep)
        session_add_box(c->s, cocoon_box_id(box), 0);
    json_t *env_obj = json_object_get(args, "env");
    if (env_obj && json_object_size(env_obj)) {
        /* The env of every exec, kept where the REST API keeps it (serve.json). */
        cocoon_box_info info;
        struct box_defaults d = {.env = env_obj};
        if (cocoon_box_inspect(box, &info, &err) < 0 || box_defaults_write(info.dir, &d, &err) < 0) {
            result = tool_cocoon_error("cannot record the box's env", &err);
            cocoon_box_close(box);
            goto out;
        }
    }
    if (arg_bool(args, "start", 1) && cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0) {
        char doing[128];
        snprintf(doing, sizeof(doing), "box %s was created but did not start", cocoon_box_id(box));
        result = tool_cocoon_error(doing, &err);
    } else {
        result = inspect_result(box);
    }
    cocoon_box_close(box);
out:
    return result;
}

json_t *tool_box_list(struct mcp_call *c, json_t *args, cocoon_runtime *rt)
{
    (void)args;
    cocoon_error err;
    cocoon_box_info *list;
    size_t n;
    json_t *result;
    if (cocoon_box_list(rt, &list, &n, &err) < 0) {
        result = tool_cocoon_error("cannot list boxes", &err);
    } else {
        json_t *boxes = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(boxes, mcp_box_json(&list[i]));
        cocoon_box_list_free(list);
        result = tool_ok(json_pack("{s:o}", "boxes", boxes));
    }
    return result;
}

json_t *tool_box_inspect(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    json_t *result = inspect_result(box);
    return result;
}

json_t *tool_box_start(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_error err;
    json_t *result;
    if (cocoon_box_is_running(box))
        result = inspect_result(box);
    else if (cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0)
        result = tool_cocoon_error("the box did not start", &err);
    else
        result = inspect_result(box);
    return result;
}

json_t *tool_box_stop(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_error err;
    json_t *result;
    char id[16];
    snprintf(id, sizeof(id), "%s", cocoon_box_id(box));
    if (cocoon_box_stop(box, (unsigned)arg_int(args, "timeout_s", 10) * 1000u, &err) < 0)
        result = tool_cocoon_error("cannot stop the box", &err);
    else
        result = tool_ok(json_pack("{s:s, s:s}", "id", id, "status", "stopped"));
    return result;
}

json_t *tool_box_remove(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_error err;
    json_t *result;
    char id[16];
    snprintf(id, sizeof(id), "%s", cocoon_box_id(box));
    if (cocoon_box_remove(box, 1, &err) < 0) {
        result = tool_cocoon_error("cannot remove the box", &err);
    } else {
        session_forget_box(c->s, id);
        result = tool_ok(json_pack("{s:s, s:b}", "id", id, "removed", 1));
    }
    return result;
}

json_t *tool_box_stats(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_error err;
    cocoon_stats st;
    cocoon_net_stats ns;
    json_t *result;
    if (cocoon_box_stats(box, &st, &err) < 0) {
        result = tool_cocoon_error("cannot read the box's stats", &err);
    } else {
        json_t *o =
            json_pack("{s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:i, s:f, s:[f,f,f]}", "cpus", (int)st.cpus, "cpu_seconds",
                      st.cpu_seconds, "mem_total", (json_int_t)st.mem_total, "mem_used", (json_int_t)st.mem_used,
                      "disk_total", (json_int_t)st.disk_total, "disk_used", (json_int_t)st.disk_used, "disk_available",
                      (json_int_t)st.disk_available, "processes", (int)st.processes, "uptime_seconds",
                      st.uptime_seconds, "load", st.load1, st.load5, st.load15);
        if (o && cocoon_box_net_stats(box, &ns, &err) == 0 && ns.present)
            json_object_set_new(o, "net",
                                json_pack("{s:I, s:I, s:I, s:I, s:I}", "tcp_connections",
                                          (json_int_t)ns.tcp_connections, "dns_queries", (json_int_t)ns.dns_queries,
                                          "denied", (json_int_t)ns.denied_total, "bytes_in", (json_int_t)ns.bytes_in,
                                          "bytes_out", (json_int_t)ns.bytes_out));
        result = tool_ok(o);
    }
    return result;
}

/* A log the library writes to an fd, read back from a memory file: its last max bytes. */
static json_t *log_tail(json_t *args, cocoon_box *box, int network)
{
    cocoon_error err;
    json_t *result;
    size_t max = (size_t)arg_int(args, "max_bytes", 65536);
    int fd = memfd_create("cocoon-mcp-log", MFD_CLOEXEC);
    if (fd < 0) {
        result = tool_error("cannot make a temporary file for the log");
    } else if ((network ? cocoon_box_net_logs : cocoon_box_logs)(box, fd, 0, &err) < 0) {
        result = tool_cocoon_error(network ? "cannot read the network log" : "cannot read the console log", &err);
    } else {
        off_t size = lseek(fd, 0, SEEK_END);
        off_t from = size > (off_t)max ? size - (off_t)max : 0;
        char *buf = malloc(max + 1);
        ssize_t n = buf ? pread(fd, buf, max, from) : -1;
        if (n < 0)
            result = tool_error("cannot read the log back");
        else
            result = tool_ok(json_pack("{s:o, s:b, s:I}", "log", mcp_text(buf, (size_t)n), "truncated", from > 0,
                                       "size_bytes", (json_int_t)size));
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return result;
}

json_t *tool_box_logs(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    (void)c;
    return log_tail(args, box, 0);
}

json_t *tool_net_log(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    (void)c;
    return log_tail(args, box, 1);
}

struct pull_progress {
    struct mcp_call *c;
    uint64_t last_done;
};

static void on_pull_progress(void *user, const char *layer, uint64_t done, uint64_t total)
{
    struct pull_progress *p = user;
    /* One notification per MiB at most: a registry sends many small chunks. */
    if (done != total && done - p->last_done < (1u << 20) && done > p->last_done)
        return;
    p->last_done = done;
    char msg[160];
    snprintf(msg, sizeof(msg), "layer %.80s", layer ? layer : "");
    call_progress(p->c, (double)done, (double)total, msg);
}

json_t *tool_image_pull(struct mcp_call *c, json_t *args, cocoon_runtime *rt)
{
    cocoon_error err;
    cocoon_pull_options o;
    cocoon_pull_options_init(&o);
    struct pull_progress p = {.c = c};
    if (c->progress_token) {
        o.progress = on_pull_progress;
        o.user_data = &p;
    } else {
        o.quiet = 1;
    }
    cocoon_image_info info;
    json_t *result;
    if (cocoon_image_pull(rt, arg_str(args, "image", ""), &o, &info, &err) < 0)
        result = tool_cocoon_error("cannot pull the image", &err);
    else
        result = tool_ok(mcp_image_json(&info));
    return result;
}

json_t *tool_image_list(struct mcp_call *c, json_t *args, cocoon_runtime *rt)
{
    (void)args;
    cocoon_error err;
    cocoon_image_info *list;
    size_t n;
    json_t *result;
    if (cocoon_image_list(rt, &list, &n, &err) < 0) {
        result = tool_cocoon_error("cannot list images", &err);
    } else {
        json_t *images = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(images, mcp_image_json(&list[i]));
        cocoon_image_list_free(list);
        result = tool_ok(json_pack("{s:o}", "images", images));
    }
    return result;
}
