/* MCP resources: the list of boxes and of images, and each box and image by URI
 * (cocoon://boxes/{box}, cocoon://images/{image}), read as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "mcp/jsonrpc.h"

static json_t *resource(const char *uri, const char *name, const char *title, const char *description)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name, "title", title, "description", description,
                     "mimeType", "application/json");
}

json_t *mcp_resources_list(struct mcp_session *s)
{
    json_t *list = json_array();
    json_array_append_new(list, resource("cocoon://boxes", "boxes", "Boxes", "Every box with its status"));
    json_array_append_new(list, resource("cocoon://images", "images", "Images", "The images boxes can be made from"));
    cocoon_runtime *rt;
    cocoon_error err;
    cocoon_box_info *boxes;
    size_t n;
    if (mcp_runtime(s, &rt, &err) == 0) {
        if (cocoon_box_list(rt, &boxes, &n, &err) == 0) {
            for (size_t i = 0; i < n && i < 1000; i++) {
                char uri[64], title[200];
                snprintf(uri, sizeof(uri), "cocoon://boxes/%s", boxes[i].id);
                snprintf(title, sizeof(title), "Box %s%s%s", boxes[i].id, boxes[i].name[0] ? " " : "", boxes[i].name);
                json_array_append_new(list, resource(uri, boxes[i].id, title, boxes[i].status));
            }
            cocoon_box_list_free(boxes);
        }
        cocoon_runtime_close(rt);
    }
    return json_pack("{s:o}", "resources", list);
}

json_t *mcp_resource_templates(void)
{
    return json_pack("{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
                     "cocoon://boxes/{box}", "name", "box", "description", "One box by id or name", "mimeType",
                     "application/json", "uriTemplate", "cocoon://images/{image}", "name", "image", "description",
                     "One image by name or id", "mimeType", "application/json");
}

static json_t *contents(const char *uri, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_INDENT(2)) : NULL;
    json_decref(value);
    json_t *r =
        text ? json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", "application/json", "text", text)
             : NULL;
    free(text);
    return r;
}

json_t *mcp_resource_read(struct mcp_session *s, const char *uri, int *code, char *why, size_t cap)
{
    cocoon_runtime *rt;
    cocoon_error err;
    if (mcp_runtime(s, &rt, &err) < 0) {
        *code = JRPC_INTERNAL_ERROR;
        snprintf(why, cap, "cannot open cocoon's state: %s", err.message);
        return NULL;
    }
    json_t *value = NULL;
    *code = -32002; /* MCP: resource not found */
    snprintf(why, cap, "no such resource: %.512s (resources/list and resources/templates/list show them)", uri);
    if (strcmp(uri, "cocoon://boxes") == 0) {
        cocoon_box_info *list;
        size_t n;
        if (cocoon_box_list(rt, &list, &n, &err) == 0) {
            value = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(value, mcp_box_json(&list[i]));
            cocoon_box_list_free(list);
        }
    } else if (strcmp(uri, "cocoon://images") == 0) {
        cocoon_image_info *list;
        size_t n;
        if (cocoon_image_list(rt, &list, &n, &err) == 0) {
            value = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(value, mcp_image_json(&list[i]));
            cocoon_image_list_free(list);
        }
    } else if (strncmp(uri, "cocoon://boxes/", 15) == 0 && strlen(uri + 15) < 128) {
        cocoon_box *box;
        cocoon_box_info info;
        if (cocoon_box_open(rt, uri + 15, &box, &err) == 0) {
            if (cocoon_box_inspect(box, &info, &err) == 0)
                value = mcp_box_json(&info);
            cocoon_box_close(box);
        }
    } else if (strncmp(uri, "cocoon://images/", 16) == 0 && strlen(uri + 16) < 1024) {
        cocoon_image_info info;
        if (cocoon_image_inspect(rt, uri + 16, &info, NULL, &err) == 0)
            value = mcp_image_json(&info);
    }
    cocoon_runtime_close(rt);
    return value ? contents(uri, value) : NULL;
}
