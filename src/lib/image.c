/* Image names to base disk files. An image is a row of the state database (pulled or
 * loaded ones, recorded by the image pipeline) or a prepared ext4 file shipped in the
 * share dir, which is recorded as "local:NAME" the first time a box uses it. A bare
 * name means a built-in image before anything else. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image.h"
#include "util/util.h"

static int valid_name(const char *s)
{
    /* 64 hex digits name a pulled image's base (bases/<hex>.ext4), never a built-in one. */
    if (!*s || strlen(s) > 200 || s[0] == '.' || (strlen(s) == 64 && util_is_hex(s)))
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

/* A built-in image: a file NAME.ext4 in $COCOON_HOME/images/bases or the share dir.
 * 1 and its real path when found, 0 when not. */
static int builtin_path(cocoon_runtime *rt, const char *name, char *out, size_t cap)
{
    char path[LIB_PATH_MAX];
    if (strcmp(name, "default") != 0 && lib_path(path, sizeof(path), "%s/images/bases/%s.ext4", rt->home, name) == 0 &&
        util_file_exists(path) && realpath(path, out))
        return 1;
    if (lib_path(path, sizeof(path), "%s/images/%s.ext4", rt->share_dir, name) == 0 && util_file_exists(path) &&
        realpath(path, out))
        return 1;
    (void)cap;
    return 0;
}

static int check_base(const struct state_image *img, cocoon_error *err)
{
    if (util_file_exists(img->base_path))
        return 0;
    return lib_err(err, COCOON_E_NOT_FOUND, "the base disk of image %s is missing (%s): pull or load it again",
                   img->name[0] ? img->name : img->id, img->base_path);
}

/* "python:3.12" as its canonical name, "sha256:<hex>" or "<hex>" as a unique id prefix
 * (at least 4 digits). 1 found (out filled), 0 not found, -1 ambiguous. */
static int find_by_ref_or_prefix(cocoon_runtime *rt, const char *name, struct state_image *out)
{
    struct image_ref ref;
    char canon[1200], e[256];
    if (image_ref_parse(name, &ref, e, sizeof(e)) == 0) {
        image_ref_format(&ref, canon, sizeof(canon));
        if (state_image_get_by_name(rt->state, canon, out, NULL) == 0 && strncmp(out->id, "local:", 6) != 0)
            return 1;
        state_image_clear(out);
    }
    const char *hex = !strncmp(name, "sha256:", 7) ? name + 7 : name;
    size_t n = strlen(hex);
    if (n < 4 || n > 64 || !util_is_hex(hex))
        return 0;
    struct state_image *imgs = NULL;
    size_t count = 0, hits = 0, at = 0;
    if (state_image_list(rt->state, &imgs, &count, NULL) < 0)
        return 0;
    for (size_t i = 0; i < count; i++)
        if (!strncmp(imgs[i].id, "sha256:", 7) && !strncmp(imgs[i].id + 7, hex, n)) {
            hits++;
            at = i;
        }
    if (hits == 1) {
        *out = imgs[at];
        imgs[at].config_json = NULL; /* moved to out */
    }
    state_image_list_free(imgs, count);
    return hits == 1 ? 1 : hits > 1 ? -1 : 0;
}

int lib_image_shadows_builtin(cocoon_runtime *rt, const char *canonical)
{
    static const char prefix[] = "docker.io/library/";
    size_t n = strlen(canonical), p = sizeof(prefix) - 1;
    if (n <= p + 7 || strncmp(canonical, prefix, p) || strcmp(canonical + n - 7, ":latest"))
        return 0;
    char name[256], real[LIB_PATH_MAX];
    snprintf(name, sizeof(name), "%.*s", (int)(n - p - 7), canonical + p);
    return !strcmp(name, "default") || (valid_name(name) && builtin_path(rt, name, real, sizeof(real)));
}

int lib_image_lookup(cocoon_runtime *rt, const char *name, struct state_image *out, cocoon_error *err)
{
    if (!name || !*name)
        name = "default";
    memset(out, 0, sizeof(*out));
    /* A bare name is a built-in image first: no pulled or loaded image can take it. */
    if (valid_name(name)) {
        char real[LIB_PATH_MAX];
        if (builtin_path(rt, name, real, sizeof(real))) {
            struct stat st;
            if (stat(real, &st) < 0)
                return lib_err(err, COCOON_E_IO, "image %s: %s", real, strerror(errno));
            memset(out, 0, sizeof(*out));
            snprintf(out->id, sizeof(out->id), "local:%s", name);
            snprintf(out->name, sizeof(out->name), "%s", name);
            snprintf(out->base_path, sizeof(out->base_path), "%s", real);
            out->size = (uint64_t)st.st_size;
            /* Refreshed on every use: the share dir may have moved since. */
            return state_image_put(rt->state, out, err);
        }
    }
    /* Pulled or loaded images are known by their names (canonical references). */
    if (state_image_get_by_name(rt->state, name, out, NULL) == 0 && strncmp(out->id, "local:", 6) != 0)
        return check_base(out, err);
    state_image_clear(out);
    if (state_image_get_by_id(rt->state, name, out, NULL) == 0)
        return check_base(out, err);
    state_image_clear(out);
    int found = find_by_ref_or_prefix(rt, name, out);
    if (found < 0)
        return lib_err(err, COCOON_E_INVALID, "image id prefix \"%s\" is ambiguous: give more digits", name);
    if (found > 0)
        return check_base(out, err);
    memset(out, 0, sizeof(*out));

    char list[1024] = "";
    char dir[LIB_PATH_MAX];
    if (lib_path(dir, sizeof(dir), "%s/images", rt->share_dir) == 0)
        list_dir(dir, list, sizeof(list));
    if (lib_path(dir, sizeof(dir), "%s/images/bases", rt->home) == 0)
        list_dir(dir, list, sizeof(list));
    struct state_image *imgs = NULL;
    size_t n = 0;
    if (state_image_list(rt->state, &imgs, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!imgs[i].name[0] || !strncmp(imgs[i].id, "local:", 6))
                continue;
            size_t used = strlen(list);
            if (used + strlen(imgs[i].name) + 3 < sizeof(list))
                snprintf(list + used, sizeof(list) - used, "%s%.1000s", used ? ", " : "", imgs[i].name);
        }
        state_image_list_free(imgs, n);
    }
    if (!strcmp(name, "default"))
        return lib_err(err, COCOON_E_NOT_FOUND, "default image not found in %s/images: run `make guest`",
                       rt->share_dir);
    return lib_err(err, COCOON_E_NOT_FOUND, "image \"%s\" not found (available: %s)", name,
                   list[0] ? list : "none; run `make guest` for the default image");
}
