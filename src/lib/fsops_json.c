/* The JSON form of a cocoon_file_info (fsops_json.h): mtime as RFC 3339 with
 * nanoseconds, link_target null for what is not a symlink, text that is not UTF-8
 * escaped so the document stays valid JSON. */
#include "lib/fsops_json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

const char *lib_file_type_name(int type)
{
    switch (type) {
    case COCOON_FILE_REGULAR: return "file";
    case COCOON_FILE_DIRECTORY: return "directory";
    case COCOON_FILE_SYMLINK: return "symlink";
    default: return "other";
    }
}

void lib_file_join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/')
        n--;
    snprintf(out, cap, "%.*s/%s", (int)n, dir, name);
}

static json_t *text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char esc[4 * 4096 + 1];
    return json_string(util_escape_text(esc, sizeof(esc), s, strlen(s)));
}

json_t *lib_file_info_json(const cocoon_file_info *fi, const char *path)
{
    char when[64];
    time_t t = (time_t)fi->mtime;
    struct tm tm;
    if (gmtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) > 0)
        snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%09ldZ", fi->mtime_nsec);
    else
        snprintf(when, sizeof(when), "1970-01-01T00:00:00.000000000Z");
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad =
        json_object_set_new(o, "name", text(fi->name)) | json_object_set_new(o, "path", text(path)) |
        json_object_set_new(o, "type", json_string(lib_file_type_name(fi->type))) |
        json_object_set_new(o, "mode", json_integer(fi->mode)) | json_object_set_new(o, "uid", json_integer(fi->uid)) |
        json_object_set_new(o, "gid", json_integer(fi->gid)) |
        json_object_set_new(o, "size", json_integer((json_int_t)fi->size)) |
        json_object_set_new(o, "mtime", json_string(when)) |
        json_object_set_new(o, "link_target", fi->type == COCOON_FILE_SYMLINK ? text(fi->link_target) : json_null());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
