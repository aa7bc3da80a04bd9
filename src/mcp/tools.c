/* The tool table: each tool's name, description and JSON Schema for its input, and the
 * check of a call's arguments against that schema (required keys, no unknown keys,
 * types, integer ranges, string lengths and enums) before the tool runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"

#define BOX "'box':{'type':'string','maxLength':64,'description':'Box id, name or unique id prefix'}"
#define PATH(what) "'path':{'type':'string','minLength':1,'maxLength':4096,'description':'" what "'}"
#define CMD_FIELDS                                                                                                     \
    "'argv':{'type':'array','items':{'type':'string','maxLength':65536},'minItems':1,'maxItems':4096,"                 \
    "'description':'The command and its arguments (argv[0] is looked up in PATH)'},"                                   \
    "'command':{'type':'string','minLength':1,'maxLength':1048576,'description':'A shell command run with /bin/sh -c " \
    "(instead of argv)'},"                                                                                             \
    "'cwd':{'type':'string','maxLength':4096,'description':'Working directory in the box'},"                           \
    "'env':{'type':'object','additionalProperties':{'type':'string'},'description':'Environment variables to add'},"   \
    "'user':{'type':'string','maxLength':256,'description':'User: name, uid or uid:gid (default root)'},"

const struct tool mcp_tools[] = {
    {"box_create", "Create a box",
     "Creates a microVM sandbox (box) from an image and boots it (unless start is false). Boxes are removed when "
     "this MCP session ends unless keep is true.",
     "{'type':'object','properties':{"
     "'image':{'type':'string','maxLength':1024,'description':'Image name or reference (default: the built-in "
     "default image, Debian with python3); pulled when missing'},"
     "'name':{'type':'string','maxLength':64,'pattern':'^[A-Za-z0-9._-]+$','description':'Optional unique name'},"
     "'cpus':{'type':'integer','minimum':1,'maximum':64},"
     "'memory_mib':{'type':'integer','minimum':64,'maximum':1048576,'description':'Memory in MiB (default 512)'},"
     "'env':{'type':'object','additionalProperties':{'type':'string'},'description':'Environment of every exec'},"
     "'keep':{'type':'boolean','description':'Keep the box after this session ends (default false)'},"
     "'start':{'type':'boolean','description':'Boot it now (default true)'}},'additionalProperties':false}",
     NULL, tool_box_create, NULL},
    {"box_list", "List boxes", "Lists every box with its id, name, image and status.",
     "{'type':'object','properties':{},'additionalProperties':false}", NULL, tool_box_list, NULL},
    {"box_inspect", "Inspect a box", "Shows a box: status, image, resources, disk, creation time.",
     "{'type':'object','properties':{" BOX "},'required':['box'],'additionalProperties':false}", NULL, NULL,
     tool_box_inspect},
    {"box_start", "Start a box", "Boots a stopped box and waits until it is ready for commands.",
     "{'type':'object','properties':{" BOX "},'required':['box'],'additionalProperties':false}", NULL, NULL,
     tool_box_start},
    {"box_stop", "Stop a box", "Shuts a box down (its disk is kept; box_start boots it again).",
     "{'type':'object','properties':{" BOX ",'timeout_s':{'type':'integer','minimum':1,'maximum':600}},"
     "'required':['box'],'additionalProperties':false}",
     NULL, NULL, tool_box_stop},
    {"box_remove", "Remove a box", "Deletes a box and its disk (a running box is stopped first).",
     "{'type':'object','properties':{" BOX "},'required':['box'],'additionalProperties':false}", NULL, NULL,
     tool_box_remove},
    {"exec", "Run a command",
     "Runs a command in a running box to completion and returns its exit code, stdout and stderr (each cut to "
     "max_output_bytes, with a truncated flag). Give argv or command.",
     "{'type':'object','properties':{" BOX "," CMD_FIELDS
     "'timeout_s':{'type':'integer','minimum':1,'maximum':3600,'description':'Kill it after this many seconds "
     "(default 300)'},"
     "'stdin':{'type':'string','maxLength':4194304,'description':'Text given on standard input'},"
     "'max_output_bytes':{'type':'integer','minimum':0,'maximum':4194304,'description':'Bytes of stdout and of "
     "stderr returned (default 65536)'}},'required':['box'],'additionalProperties':false}",
     NULL, NULL, tool_exec},
    {"exec_start", "Start a long command",
     "Starts a command in a running box without waiting for it; returns an id for exec_output, exec_write_stdin "
     "and exec_signal. Stdin stays open until exec_write_stdin with eof.",
     "{'type':'object','properties':{" BOX "," CMD_FIELDS
     "'timeout_s':{'type':'integer','minimum':1,'maximum':86400}},'required':['box'],'additionalProperties':false}",
     tool_exec_start, NULL, NULL},
    {"exec_output", "Read a long command's output",
     "Returns the output of an exec_start command after the given cursors (0: from the start), waiting up to "
     "wait_s for new output; exit status once it ended. Pass the returned cursors to the next call.",
     "{'type':'object','properties':{'id':{'type':'integer','minimum':1},"
     "'cursor':{'type':'integer','minimum':0,'description':'stdout byte offset already read'},"
     "'stderr_cursor':{'type':'integer','minimum':0,'description':'stderr byte offset already read'},"
     "'wait_s':{'type':'integer','minimum':0,'maximum':30,'description':'Wait for output or the end (default 0)'},"
     "'max_bytes':{'type':'integer','minimum':1,'maximum':1048576}},'required':['id'],'additionalProperties':false}",
     tool_exec_output, NULL, NULL},
    {"exec_write_stdin", "Write to a long command",
     "Writes text (or base64 data) to the stdin of an exec_start command; eof closes its stdin.",
     "{'type':'object','properties':{'id':{'type':'integer','minimum':1},"
     "'data':{'type':'string','maxLength':4194304},'base64':{'type':'boolean'},'eof':{'type':'boolean'}},"
     "'required':['id'],'additionalProperties':false}",
     tool_exec_write_stdin, NULL, NULL},
    {"exec_signal", "Signal a long command", "Sends a signal (default TERM) to an exec_start command's process group.",
     "{'type':'object','properties':{'id':{'type':'integer','minimum':1},"
     "'signal':{'type':'string','enum':['TERM','KILL','INT','HUP','QUIT','USR1','USR2','STOP','CONT']}},"
     "'required':['id'],'additionalProperties':false}",
     tool_exec_signal, NULL, NULL},
    {"run_code", "Run code",
     "Runs code in a stateful interpreter context inside a running box (variables, imports and the working "
     "directory persist between calls). Returns stdout, stderr, results and errors.",
     "{'type':'object','properties':{" BOX ",'code':{'type':'string','maxLength':1048576},"
     "'language':{'type':'string','enum':['python','javascript','bash'],'description':'Default python'},"
     "'context':{'type':'string','maxLength':128,'description':'A context id (default: the language default one)'},"
     "'timeout_s':{'type':'integer','minimum':1,'maximum':3600}},'required':['box','code'],"
     "'additionalProperties':false}",
     NULL, NULL, tool_run_code},
    {"file_read", "Read a file", "Reads a file of a running box as text (or base64 when it is not UTF-8 text).",
     "{'type':'object','properties':{" BOX
     "," PATH("Absolute path in the box") ","
                                          "'max_bytes':{'type':'integer','minimum':1,'maximum':4194304,'description':'"
                                          "Refuse larger files (default 1 MiB)'},"
                                          "'base64':{'type':'boolean','description':'Return base64 "
                                          "always'}},'required':['box','path'],"
                                          "'additionalProperties':false}",
     NULL, NULL, tool_file_read},
    {"file_write", "Write a file", "Creates or replaces a file of a running box with text or base64 content.",
     "{'type':'object','properties':{" BOX
     "," PATH("Absolute path in the box") ","
                                          "'content':{'type':'string','maxLength':6291456},'base64':{'type':'boolean','"
                                          "description':'content is base64'},"
                                          "'mode':{'type':'integer','minimum':0,'maximum':4095,'description':'"
                                          "Permission bits (default 0644)'}},"
                                          "'required':['box','path','content'],'additionalProperties':false}",
     NULL, NULL, tool_file_write},
    {"file_list", "List a directory", "Lists a directory of a running box (name, type, size, mode, mtime).",
     "{'type':'object','properties':{" BOX
     "," PATH("Absolute directory path in the box") "},"
                                                    "'required':['box','path'],'additionalProperties':false}",
     NULL, NULL, tool_file_list},
    {"file_stat", "Stat a path",
     "Type, size, mode, owner and mtime of a path in a running box (symlinks not followed).",
     "{'type':'object','properties':{" BOX "," PATH("Absolute path in the box") "},'required':['box','path'],"
                                                                                "'additionalProperties':false}",
     NULL, NULL, tool_file_stat},
    {"file_mkdir", "Make a directory", "Creates a directory in a running box (parents: like mkdir -p).",
     "{'type':'object','properties':{" BOX
     "," PATH("Absolute path in the box") ",'parents':{'type':'boolean'}},"
                                          "'required':['box','path'],'additionalProperties':false}",
     NULL, NULL, tool_file_mkdir},
    {"file_remove", "Remove a path", "Removes a file, symlink or directory (recursive for non-empty ones) in a box.",
     "{'type':'object','properties':{" BOX
     "," PATH("Absolute path in the box") ",'recursive':{'type':'boolean'}},"
                                          "'required':['box','path'],'additionalProperties':false}",
     NULL, NULL, tool_file_remove},
    {"copy_to_box", "Copy host files into a box",
     "Copies a host file or directory into a running box. Only host paths under the server's allowlist "
     "(COCOON_MCP_HOST_PATHS) are allowed.",
     "{'type':'object','properties':{" BOX ",'host_path':{'type':'string','minLength':1,'maxLength':4096},"
     "'box_path':{'type':'string','minLength':1,'maxLength':4096}},'required':['box','host_path','box_path'],"
     "'additionalProperties':false}",
     tool_copy_to_box, NULL, NULL},
    {"copy_from_box", "Copy files out of a box",
     "Copies a file or directory of a running box to the host. Only host paths under the server's allowlist "
     "(COCOON_MCP_HOST_PATHS) are allowed.",
     "{'type':'object','properties':{" BOX ",'box_path':{'type':'string','minLength':1,'maxLength':4096},"
     "'host_path':{'type':'string','minLength':1,'maxLength':4096}},'required':['box','box_path','host_path'],"
     "'additionalProperties':false}",
     tool_copy_from_box, NULL, NULL},
    {"snapshot_create", "Snapshot a box's disk",
     "Freezes the disk of a box as a named snapshot (a read-only layer); the box goes on in a new layer over it. "
     "A running box is snapshotted live: its file system is synced and frozen for a moment. "
     "snapshot_restore puts the (stopped) box back to it.",
     "{'type':'object','properties':{" BOX ",'name':{'type':'string','minLength':1,'maxLength':63,"
     "'pattern':'^[A-Za-z0-9._-]+$','description':'Unique among snapshots (default: the box id and a number)'}},"
     "'required':['box'],'additionalProperties':false}",
     NULL, NULL, tool_snapshot_create},
    {"snapshot_list", "List snapshots", "Lists disk snapshots, oldest first: of one box, or of all boxes.",
     "{'type':'object','properties':{'box':{'type':'string','maxLength':64,'description':'Only the snapshots of this "
     "box (id, name or unique id prefix)'}},'additionalProperties':false}",
     NULL, tool_snapshot_list, NULL},
    {"snapshot_restore", "Restore a snapshot",
     "Puts the disk of a stopped box back to one of its snapshots: what the box wrote since is gone. A running box is "
     "refused: box_stop it first.",
     "{'type':'object','properties':{" BOX ",'snapshot':{'type':'string','minLength':1,'maxLength':64,"
     "'description':'Snapshot id, name or unique id prefix'}},'required':['box','snapshot'],"
     "'additionalProperties':false}",
     tool_snapshot_restore, NULL, NULL},
    {"snapshot_remove", "Remove a snapshot",
     "Deletes a snapshot. Refused while a box or another snapshot stands on it (the message names them).",
     "{'type':'object','properties':{'snapshot':{'type':'string','minLength':1,'maxLength':64,"
     "'description':'Snapshot id, name or unique id prefix'}},'required':['snapshot'],'additionalProperties':false}",
     NULL, tool_snapshot_remove, NULL},
    {"box_clone", "Clone a stopped box",
     "Makes a new stopped box over a copy-on-write layer of a stopped box disk (frozen into a snapshot first, or "
     "the one it stands on when nothing was written since), or of one of its snapshots. The clone has its own id, "
     "name and hostname and the config of its source. Like box_create, it is removed when this session ends unless "
     "keep is true.",
     "{'type':'object','properties':{" BOX ",'name':{'type':'string','minLength':1,'maxLength':64,"
     "'pattern':'^[A-Za-z0-9._-]+$','description':'Optional unique name (default: the source name and -clone-N)'},"
     "'snapshot':{'type':'string','minLength':1,'maxLength':64,'description':'Clone this snapshot of the box "
     "instead (id, name or unique id prefix)'},"
     "'keep':{'type':'boolean','description':'Keep the box after this session ends (default false)'}},"
     "'required':['box'],'additionalProperties':false}",
     tool_box_clone, NULL, NULL},
    {"box_export", "Export a box to a host file",
     "Writes a stopped box, or a snapshot, to one archive file on the host (zstd tar with per-file digests) that "
     "box_import makes a new box of. Only host paths under the server allowlist (COCOON_MCP_HOST_PATHS) are allowed.",
     "{'type':'object','properties':{'source':{'type':'string','minLength':1,'maxLength':64,'description':'A box "
     "or a snapshot: id, name or unique id prefix'},'host_path':{'type':'string','minLength':1,'maxLength':4096,"
     "'description':'The archive to write (replaced when it exists)'}},'required':['source','host_path'],"
     "'additionalProperties':false}",
     tool_box_export, NULL, NULL},
    {"box_import", "Import a box from a host file",
     "Makes a new stopped box from an archive of box_export (verified whole first: a damaged one is refused and "
     "leaves nothing). Only host paths under the server allowlist (COCOON_MCP_HOST_PATHS) are allowed. Like "
     "box_create, the box is removed when this session ends unless keep is true.",
     "{'type':'object','properties':{'host_path':{'type':'string','minLength':1,'maxLength':4096},"
     "'name':{'type':'string','minLength':1,'maxLength':64,'pattern':'^[A-Za-z0-9._-]+$','description':'Optional "
     "unique name'},'keep':{'type':'boolean','description':'Keep the box after this session ends (default false)'}},"
     "'required':['host_path'],'additionalProperties':false}",
     tool_box_import, NULL, NULL},
    {"image_pull", "Pull an image", "Pulls an OCI image from a registry (e.g. python:3.12) for box_create.",
     "{'type':'object','properties':{'image':{'type':'string','minLength':1,'maxLength':1024}},"
     "'required':['image'],'additionalProperties':false}",
     NULL, tool_image_pull, NULL},
    {"image_list", "List images", "Lists the images boxes can be created from.",
     "{'type':'object','properties':{},'additionalProperties':false}", NULL, tool_image_list, NULL},
    {"box_stats", "Box statistics", "CPU, memory, disk, processes and network counters of a running box.",
     "{'type':'object','properties':{" BOX "},'required':['box'],'additionalProperties':false}", NULL, NULL,
     tool_box_stats},
    {"box_logs", "Console log", "The end of a box's console log (kernel and agent lines of its current or last boot).",
     "{'type':'object','properties':{" BOX ",'max_bytes':{'type':'integer','minimum':1,'maximum':1048576}},"
     "'required':['box'],'additionalProperties':false}",
     NULL, NULL, tool_box_logs},
    {"net_log", "Network log", "The end of a box's network log: every denied connection or DNS query and its rule.",
     "{'type':'object','properties':{" BOX ",'max_bytes':{'type':'integer','minimum':1,'maximum':1048576}},"
     "'required':['box'],'additionalProperties':false}",
     NULL, NULL, tool_net_log},
};
const size_t mcp_tool_count = sizeof(mcp_tools) / sizeof(mcp_tools[0]);

/* Output schemas of the tools whose structuredContent an agent reads most (the client
 * checks results against them). */
#define EXIT_FIELDS                                                                                                    \
    "'exit_code':{'type':'integer','description':'The exit code, 128+N when signal N ended it'},"                      \
    "'signal':{'type':'integer'},'timed_out':{'type':'boolean'},"
static const struct {
    const char *tool, *schema;
} output_schemas[] = {
    {"exec", "{'type':'object','properties':{" EXIT_FIELDS "'stdout':{'type':'string'},'stderr':{'type':'string'},"
             "'stdout_truncated':{'type':'boolean'},'stderr_truncated':{'type':'boolean'},"
             "'stdout_bytes':{'type':'integer'},'stderr_bytes':{'type':'integer'}},"
             "'required':['exit_code','signal','timed_out','stdout','stderr','stdout_truncated','stderr_truncated']}"},
    {"exec_output",
     "{'type':'object','properties':{'id':{'type':'integer'},'stdout':{'type':'string'},'stderr':{'type':'string'},"
     "'cursor':{'type':'integer'},'stderr_cursor':{'type':'integer'},'dropped_stdout':{'type':'integer'},"
     "'dropped_stderr':{'type':'integer'},'running':{'type':'boolean'}," EXIT_FIELDS "'error':{'type':'string'}},"
     "'required':['id','stdout','stderr','cursor','stderr_cursor','running']}"},
};

static json_t *schemas[sizeof(mcp_tools) / sizeof(mcp_tools[0])];
static json_t *outputs[sizeof(mcp_tools) / sizeof(mcp_tools[0])];
static pthread_once_t schemas_once = PTHREAD_ONCE_INIT;

static json_t *load_quoted(const char *quoted)
{
    char *text = strdup(quoted);
    for (char *p = text; p && *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j;
}

static void load_schemas(void)
{
    for (size_t i = 0; i < mcp_tool_count; i++) {
        schemas[i] = load_quoted(mcp_tools[i].input_schema);
        for (size_t k = 0; k < sizeof(output_schemas) / sizeof(output_schemas[0]); k++)
            if (strcmp(output_schemas[k].tool, mcp_tools[i].name) == 0)
                outputs[i] = load_quoted(output_schemas[k].schema);
    }
}

json_t *mcp_tool_output_schema(const struct tool *t)
{
    pthread_once(&schemas_once, load_schemas);
    json_t *s = outputs[t - mcp_tools];
    return s ? json_incref(s) : NULL;
}

const struct tool *mcp_tool_find(const char *name)
{
    for (size_t i = 0; i < mcp_tool_count; i++)
        if (strcmp(mcp_tools[i].name, name) == 0)
            return &mcp_tools[i];
    return NULL;
}

json_t *mcp_tool_run(const struct tool *t, struct mcp_call *c, json_t *args)
{
    if (t->fn)
        return t->fn(c, args);
    cocoon_runtime *rt;
    cocoon_error err;
    if (mcp_runtime(c->s, &rt, &err) < 0)
        return tool_cocoon_error("cannot open cocoon's state", &err);
    json_t *result;
    cocoon_box *box;
    if (t->runtime_fn) {
        result = t->runtime_fn(c, args, rt);
    } else if (cocoon_box_open(rt, arg_str(args, "box", ""), &box, &err) < 0) {
        result = tool_cocoon_error("cannot open the box", &err);
    } else {
        result = t->box_fn(c, args, box);
        cocoon_box_close(box);
    }
    cocoon_runtime_close(rt);
    return result;
}

json_t *mcp_tool_schema(const struct tool *t)
{
    pthread_once(&schemas_once, load_schemas);
    json_t *s = schemas[t - mcp_tools];
    return s ? json_incref(s) : json_object();
}

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* One value against its property schema (one level: arrays and objects of strings). */
static int check_value(const char *key, json_t *v, json_t *prop, char *why, size_t cap)
{
    const char *want = json_string_value(json_object_get(prop, "type"));
    const char *have = type_name(v);
    if (want && strcmp(want, have) != 0) {
        snprintf(why, cap, "\"%s\" must be %s %s, not %s", key, strchr("aeiou", want[0]) ? "an" : "a", want, have);
        return -1;
    }
    if (json_is_integer(v)) {
        json_t *min = json_object_get(prop, "minimum"), *max = json_object_get(prop, "maximum");
        if ((min && json_integer_value(v) < json_integer_value(min)) ||
            (max && json_integer_value(v) > json_integer_value(max))) {
            snprintf(why, cap, "\"%s\" must be between %lld and %lld", key, (long long)json_integer_value(min),
                     (long long)json_integer_value(max));
            return -1;
        }
    }
    if (json_is_string(v)) {
        json_t *max = json_object_get(prop, "maxLength"), *min = json_object_get(prop, "minLength");
        if (max && json_string_length(v) > (size_t)json_integer_value(max)) {
            snprintf(why, cap, "\"%s\" is longer than %lld bytes", key, (long long)json_integer_value(max));
            return -1;
        }
        if (min && json_string_length(v) < (size_t)json_integer_value(min)) {
            snprintf(why, cap, "\"%s\" must not be empty", key);
            return -1;
        }
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            snprintf(why, cap, "\"%s\" must not contain NUL characters", key);
            return -1;
        }
        json_t *choices = json_object_get(prop, "enum");
        if (choices) {
            size_t i;
            json_t *c;
            json_array_foreach(choices, i, c) if (json_equal(c, v)) return 0;
            char *list = json_dumps(choices, JSON_COMPACT);
            snprintf(why, cap, "\"%s\" must be one of %s", key, list ? list : "the listed values");
            free(list);
            return -1;
        }
    }
    if (json_is_array(v)) {
        json_t *max = json_object_get(prop, "maxItems"), *min = json_object_get(prop, "minItems");
        if ((max && json_array_size(v) > (size_t)json_integer_value(max)) ||
            (min && json_array_size(v) < (size_t)json_integer_value(min))) {
            snprintf(why, cap, "\"%s\" must have %lld to %lld items", key, (long long)json_integer_value(min),
                     (long long)json_integer_value(max));
            return -1;
        }
        json_t *items = json_object_get(prop, "items");
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) if (items && check_value(key, item, items, why, cap) < 0) return -1;
    }
    if (json_is_object(v)) {
        json_t *values = json_object_get(prop, "additionalProperties");
        const char *k;
        json_t *item;
        size_t n = 0;
        json_object_foreach(v, k, item)
        {
            if (++n > 4096) {
                snprintf(why, cap, "\"%s\" has more than 4096 entries", key);
                return -1;
            }
            if (json_is_object(values) && check_value(k, item, values, why, cap) < 0)
                return -1;
        }
    }
    return 0;
}

int mcp_check_args(const struct tool *t, json_t *args, char *why, size_t cap)
{
    json_t *schema = mcp_tool_schema(t);
    json_t *props = json_object_get(schema, "properties");
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v)
    {
        json_t *prop = json_object_get(props, key);
        if (!prop) {
            snprintf(why, cap, "unknown argument \"%.64s\" (inputSchema lists the arguments)", key);
            rc = -1;
            break;
        }
        if (check_value(key, v, prop, why, cap) < 0) {
            rc = -1;
            break;
        }
    }
    size_t i;
    json_t *req;
    json_array_foreach(json_object_get(schema, "required"), i, req)
    {
        if (rc == 0 && !json_object_get(args, json_string_value(req))) {
            snprintf(why, cap, "missing required argument \"%s\"", json_string_value(req));
            rc = -1;
        }
    }
    json_decref(schema);
    return rc;
}
