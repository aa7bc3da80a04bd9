/* A tiny driver of the image fetching functions for the integration tests
 * (tests/integration/test_registry_pull.py): pull, load, config and ref subcommands,
 * results as JSON on stdout, errors as text on stderr with exit status 1.
 * Usage: image-tool STORE pull [--insecure] [--auth FILE] [--progress] REF
 *        image-tool STORE load PATH
 *        image-tool STORE config DIGEST
 *        image-tool - ref TEXT */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

static json_t *info_json(const struct image_manifest_info *info)
{
    json_t *layers = json_array();
    for (size_t i = 0; i < info->nlayers; i++)
        json_array_append_new(layers, json_pack("{s:s,s:s,s:I}", "digest", info->layers[i].digest, "media_type",
                                                info->layers[i].media_type, "size", (json_int_t)info->layers[i].size));
    return json_pack("{s:s,s:s,s:o,s:I}", "manifest", info->manifest_digest, "config", info->config_digest, "layers",
                     layers, "total_size", (json_int_t)info->total_size);
}

static json_t *strv(char **v)
{
    if (!v)
        return json_null();
    json_t *a = json_array();
    for (; *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

static void print(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    puts(s);
    free(s);
    json_decref(j);
}

static void progress(void *user, const char *digest, uint64_t done, uint64_t total)
{
    (void)user;
    fprintf(stderr, "progress %s %llu/%llu\n", digest, (unsigned long long)done, (unsigned long long)total);
}

int main(int argc, char **argv)
{
    char err[4096];
    if (argc < 4) {
        fprintf(stderr, "usage: image-tool STORE pull|load|config|ref ARGS\n");
        return 2;
    }
    const char *store = argv[1], *cmd = argv[2];
    if (!strcmp(cmd, "ref")) {
        struct image_ref ref;
        if (image_ref_parse(argv[3], &ref, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        char canon[1200];
        image_ref_format(&ref, canon, sizeof(canon));
        print(json_pack("{s:s,s:s,s:s,s:s,s:s}", "canonical", canon, "registry", ref.registry, "repository",
                        ref.repository, "tag", ref.tag, "digest", ref.digest));
        return 0;
    }
    if (!strcmp(cmd, "pull")) {
        struct image_pull_options o = {0};
        const char *text = NULL;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--insecure"))
                o.insecure = 1;
            else if (!strcmp(argv[i], "--auth") && i + 1 < argc)
                o.auth_file = argv[++i];
            else if (!strcmp(argv[i], "--progress"))
                o.progress = progress;
            else
                text = argv[i];
        }
        struct image_ref ref;
        if (!text || image_ref_parse(text, &ref, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", text ? err : "pull: no reference");
            return 1;
        }
        struct image_manifest_info *info = malloc(sizeof(*info));
        if (!info || image_pull(store, &ref, &o, info, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            free(info);
            return 1;
        }
        print(info_json(info));
        free(info);
        return 0;
    }
    if (!strcmp(cmd, "load")) {
        struct image_loaded *imgs;
        size_t n;
        if (image_load(store, argv[3], &imgs, &n, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *j = info_json(&imgs[i].info);
            json_object_set_new(j, "name", json_string(imgs[i].name));
            json_array_append_new(a, j);
        }
        free(imgs);
        print(a);
        return 0;
    }
    if (!strcmp(cmd, "config")) {
        size_t len;
        char *doc = image_blob_read(store, argv[3], 4u << 20, &len, err, sizeof(err));
        struct image_config c;
        if (!doc || image_config_parse(doc, len, &c, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            free(doc);
            return 1;
        }
        free(doc);
        print(json_pack("{s:o,s:o,s:o,s:s?,s:s?,s:s,s:s}", "env", strv(c.env), "entrypoint", strv(c.entrypoint), "cmd",
                        strv(c.cmd), "working_dir", c.working_dir, "user", c.user, "architecture", c.architecture, "os",
                        c.os));
        image_config_free(&c);
        return 0;
    }
    fprintf(stderr, "image-tool: unknown command %s\n", cmd);
    return 2;
}
