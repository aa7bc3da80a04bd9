/* Image names to base disk files. Today an image is a prepared ext4 file; this is the
 * seam where OCI references (pull, merge layers, cache by digest) plug in later
 * without the box code changing. */
#include "lib/internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 200 || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* Appends the image names found in dir (files NAME.ext4) to list, comma-separated. */
static void list_dir(const char *dir, char *list, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".ext4") != 0 || e->d_name[0] == '.')
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(n - 5), e->d_name);
        /* skip duplicates: the same name may be in both places */
        char probe[300];
        snprintf(probe, sizeof(probe), ", %s,", name);
        char padded[2048];
        snprintf(padded, sizeof(padded), ", %s,", list);
        if (strstr(padded, probe))
            continue;
        size_t used = strlen(list);
        snprintf(list + used, cap - used, "%s%s", used ? ", " : "", name);
    }
    closedir(d);
}

int lib_image_resolve(cocoon_runtime *rt, const char *name, char *out, size_t cap, cocoon_error *err)
{
    if (!name || !*name)
        name = "default";
    if (!valid_name(name))
        return lib_err(err, COCOON_E_INVALID,
                       "invalid image name \"%s\": use letters, digits, '.', '_' and '-' (registry references "
                       "are not supported yet)",
                       name);
    char path[LIB_PATH_MAX];
    if (strcmp(name, "default") != 0) {
        if (lib_path(path, sizeof(path), "%s/images/bases/%s.ext4", rt->home, name) == 0 && util_file_exists(path))
            return lib_path(out, cap, "%s", path);
    }
    if (lib_path(path, sizeof(path), "%s/images/%s.ext4", rt->share_dir, name) == 0 && util_file_exists(path))
        return lib_path(out, cap, "%s", path);

    char list[1024] = "";
    char dir[LIB_PATH_MAX];
    if (lib_path(dir, sizeof(dir), "%s/images", rt->share_dir) == 0)
        list_dir(dir, list, sizeof(list));
    if (lib_path(dir, sizeof(dir), "%s/images/bases", rt->home) == 0)
        list_dir(dir, list, sizeof(list));
    if (!strcmp(name, "default"))
        return lib_err(err, COCOON_E_NOT_FOUND, "default image not found at %s: run `make guest`", path);
    return lib_err(err, COCOON_E_NOT_FOUND, "image \"%s\" not found (available: %s)", name,
                   list[0] ? list : "none; run `make guest` for the default image");
}
