/* Unit tests of the state database (src/lib/state.c): schema creation and WAL mode,
 * box and image rows, name uniqueness, the refusal to remove an image a box uses,
 * id prefix lookups, two processes writing at once without errors or losses, image
 * tags (many names, one image) and the migration to them, and the state directory's
 * owner and mode checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cocoon.h"
#include "lib/state.h"
#include "util/util.h"
#include "support/fixture.h"
#include "support/tmpdir.h"

static char home[PATH_MAX];

static int setup_home(void **state) { return test_tmpdir(home, sizeof(home), "cocoon-test-state"); }

static int teardown_home(void **state) { return util_rm_rf(home); }

static struct lib_state *open_state(void)
{
    struct lib_state *st = NULL;
    cocoon_error err = {0};
    int rc = state_open(home, &st, &err);
    if (rc != 0)
        fail_msg("state_open: %s", err.message);
    return st;
}

static void make_box(struct state_box *b, const char *id, const char *name, const char *image_id)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%s", id);
    snprintf(b->name, sizeof(b->name), "%s", name ? name : "");
    snprintf(b->image_ref, sizeof(b->image_ref), "%s", image_id ? "img" : "");
    snprintf(b->image_id, sizeof(b->image_id), "%s", image_id ? image_id : "");
    b->config_json = NULL;
}

static void make_image(struct state_image *img, const char *id, const char *name)
{
    memset(img, 0, sizeof(*img));
    snprintf(img->id, sizeof(img->id), "%s", id);
    snprintf(img->name, sizeof(img->name), "%s", name ? name : "");
    snprintf(img->base_path, sizeof(img->base_path), "/bases/%s.ext4", id);
    img->size = 1u << 30;
}

static void test_schema(void **unused)
{
    struct lib_state *st = open_state();
    assert_int_equal(state_schema_version(st), STATE_SCHEMA_VERSION);
    state_close(st);

    /* Reopening migrates nothing and keeps the version. */
    st = open_state();
    assert_int_equal(state_schema_version(st), STATE_SCHEMA_VERSION);
    state_close(st);

    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/cocoon.db", home);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    static const char *const tables[] = {"boxes", "images", "image_tags", "snapshots", "settings", "schema_version"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        assert_int_equal(
            sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1", -1, &s, NULL),
            SQLITE_OK);
        sqlite3_bind_text(s, 1, tables[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        if (sqlite3_column_int(s, 0) != 1)
            fail_msg("table %s missing", tables[i]);
        sqlite3_finalize(s);
    }
    /* A database from a newer cocoon is refused with a clear message. */
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cocoon_error err = {0};
    assert_int_equal(state_open(home, &st, &err), -1);
    assert_null(st);
    assert_int_equal(err.code, COCOON_E_STATE);
    assert_non_null(strstr(err.message, "newer"));
}

static off_t file_size(const char *suffix)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/cocoon.db%s", home, suffix);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void insert_boxes(struct lib_state *st, int n)
{
    cocoon_error err = {0};
    for (int i = n - 1; i >= 0; i--) {
        struct state_box b;
        char id[16];
        snprintf(id, sizeof(id), "%012x", i);
        make_box(&b, id, NULL, NULL);
        b.config_json = calloc(1, 2048);
        memset(b.config_json, 'x', 2047);
        assert_int_equal(state_box_insert(st, &b, &err), 0);
        state_box_clear(&b);
    }
}

/* A short command neither deletes nor leaves behind the WAL: making it and its index
 * again in every command cost more than the rest of an `ls`, and a WAL left full
 * would take disk space for nothing. Writes are in the database after close. */
static void test_wal_kept_empty_between_commands(void **unused)
{
    struct lib_state *st = open_state();
    insert_boxes(st, 200);
    assert_true(file_size("-wal") > 0);
    state_close(st);
    assert_int_equal(file_size("-wal"), 0);
    assert_true(file_size("-shm") > 0);
    st = open_state();
    cocoon_error err = {0};
    struct state_box got;
    assert_int_equal(state_box_get(st, "0000000000c7", &got, &err), 0);
    state_box_clear(&got);
    state_close(st);
}

/* The ids in one query, sorted as the box collector searches them. */
static void test_box_ids_sorted(void **unused)
{
    struct lib_state *st = open_state();
    insert_boxes(st, 200);
    cocoon_error err = {0};
    struct state_box_id *ids;
    size_t n;
    assert_int_equal(state_box_ids(st, &ids, &n, &err), 0);
    assert_int_equal(n, 200);
    for (size_t i = 1; i < n; i++) /* sorted: the collector searches it */
        assert_true(strcmp(ids[i - 1].id, ids[i].id) < 0);
    assert_string_equal(ids[0].id, "000000000000");
    free(ids);
    state_close(st);
}

static void test_box_crud(void **unused)
{
    struct lib_state *st = open_state();
    cocoon_error err = {0};
    struct state_box b, got;
    make_box(&b, "0123456789ab", "web", NULL);
    b.created_at = 1000;
    b.ephemeral = 1;
    b.config_json = strdup("{\"id\": \"0123456789ab\"}");
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    state_box_clear(&b);
    make_box(&b, "ffff00000000", NULL, NULL);
    b.created_at = 2000;
    assert_int_equal(state_box_insert(st, &b, &err), 0);

    assert_int_equal(state_box_get(st, "0123456789ab", &got, &err), 0);
    assert_string_equal(got.name, "web");
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.ephemeral, 1);
    assert_non_null(got.config_json);
    assert_string_equal(got.config_json, "{\"id\": \"0123456789ab\"}");
    state_box_clear(&got);

    assert_int_equal(state_box_find(st, "web", &got, &err), 0);
    assert_string_equal(got.id, "0123456789ab");
    state_box_clear(&got);
    assert_int_equal(state_box_find(st, "ff", &got, &err), 0);
    assert_string_equal(got.id, "ffff00000000");
    assert_string_equal(got.name, "");
    assert_null(got.config_json);
    state_box_clear(&got);
    assert_int_equal(state_box_find(st, "nope", &got, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);

    struct state_box *list;
    size_t n;
    assert_int_equal(state_box_list(st, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "0123456789ab"); /* oldest first */
    assert_string_equal(list[1].id, "ffff00000000");
    state_box_list_free(list, n);

    assert_int_equal(state_box_delete(st, "0123456789ab", &err), 0);
    assert_int_equal(state_box_get(st, "0123456789ab", &got, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    /* The name is free again. */
    make_box(&b, "aaaa00000000", "web", NULL);
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    state_close(st);
}

static void test_name_unique(void **unused)
{
    struct lib_state *st = open_state();
    cocoon_error err = {0};
    struct state_box b;
    make_box(&b, "111111111111", "same", NULL);
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    make_box(&b, "222222222222", "same", NULL);
    assert_int_equal(state_box_insert(st, &b, &err), -1);
    assert_int_equal(err.code, COCOON_E_STATE);
    assert_non_null(strstr(err.message, "already in use"));
    assert_non_null(strstr(err.message, "111111111111"));
    /* Unnamed boxes do not collide with each other. */
    make_box(&b, "333333333333", NULL, NULL);
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    make_box(&b, "444444444444", NULL, NULL);
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    /* Nor does a duplicate id pass. */
    make_box(&b, "444444444444", "other", NULL);
    assert_int_equal(state_box_insert(st, &b, &err), -1);
    assert_int_equal(err.code, COCOON_E_STATE);
    struct state_box *list;
    size_t n;
    assert_int_equal(state_box_list(st, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    state_box_list_free(list, n);
    state_close(st);
}

static void test_image_crud_and_in_use(void **unused)
{
    struct lib_state *st = open_state();
    cocoon_error err = {0};
    struct state_image img, got;
    make_image(&img, "sha256:aaaa", "python:3.12");
    img.config_json = strdup("{\"Env\": []}");
    snprintf(img.config_digest, sizeof(img.config_digest), "sha256:cfg");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    state_image_clear(&img);

    assert_int_equal(state_image_get_by_name(st, "python:3.12", &got, &err), 0);
    assert_string_equal(got.id, "sha256:aaaa");
    assert_string_equal(got.config_digest, "sha256:cfg");
    assert_string_equal(got.config_json, "{\"Env\": []}");
    assert_int_equal(got.size, 1u << 30);
    state_image_clear(&got);

    /* A newer pull of the same name takes the name; the old image stays, untagged. */
    make_image(&img, "sha256:bbbb", "python:3.12");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    assert_int_equal(state_image_get_by_name(st, "python:3.12", &got, &err), 0);
    assert_string_equal(got.id, "sha256:bbbb");
    state_image_clear(&got);
    assert_int_equal(state_image_get_by_id(st, "sha256:aaaa", &got, &err), 0);
    assert_string_equal(got.name, "");
    assert_string_equal(got.config_json, "{\"Env\": []}");
    state_image_clear(&got);

    /* Put again with the same id updates in place. */
    make_image(&img, "sha256:bbbb", "python:3.12");
    img.size = 42;
    assert_int_equal(state_image_put(st, &img, &err), 0);
    struct state_image *imgs;
    size_t n;
    assert_int_equal(state_image_list(st, &imgs, &n, &err), 0);
    assert_int_equal(n, 2);
    state_image_list_free(imgs, n);

    /* A box on an unknown image is refused. */
    struct state_box b;
    make_box(&b, "bbbbbbbbbbbb", "py", "sha256:nope");
    assert_int_equal(state_box_insert(st, &b, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);

    make_box(&b, "bbbbbbbbbbbb", "py", "sha256:bbbb");
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    assert_int_equal(state_image_remove(st, "sha256:bbbb", &err), -1);
    assert_int_equal(err.code, COCOON_E_STATE);
    assert_string_equal(err.message, "image python:3.12 is used by box bbbbbbbbbbbb (py); remove the box first");
    assert_int_equal(state_image_get_by_id(st, "sha256:bbbb", &got, &err), 0);
    state_image_clear(&got);

    assert_int_equal(state_box_delete(st, "bbbbbbbbbbbb", &err), 0);
    assert_int_equal(state_image_remove(st, "sha256:bbbb", &err), 0);
    assert_int_equal(state_image_get_by_id(st, "sha256:bbbb", &got, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    assert_int_equal(state_image_remove(st, "sha256:bbbb", &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    state_close(st);
}

static void test_prefix_lookup(void **unused)
{
    struct lib_state *st = open_state();
    cocoon_error err = {0};
    struct state_box b, got;
    make_box(&b, "abc000000001", NULL, NULL);
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    make_box(&b, "abc000000002", NULL, NULL);
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    make_box(&b, "abd000000003", "abc", NULL); /* a name that looks like a prefix */
    assert_int_equal(state_box_insert(st, &b, &err), 0);

    assert_int_equal(state_box_find(st, "abc0", &got, &err), -1);
    assert_int_equal(err.code, COCOON_E_INVALID);
    assert_non_null(strstr(err.message, "ambiguous"));
    assert_non_null(strstr(err.message, "abc000000001"));
    assert_non_null(strstr(err.message, "abc000000002"));

    /* An exact name wins over a prefix. */
    assert_int_equal(state_box_find(st, "abc", &got, &err), 0);
    assert_string_equal(got.id, "abd000000003");
    state_box_clear(&got);
    assert_int_equal(state_box_find(st, "abc000000002", &got, &err), 0);
    assert_string_equal(got.id, "abc000000002");
    state_box_clear(&got);
    assert_int_equal(state_box_find(st, "abd", &got, &err), 0);
    assert_string_equal(got.id, "abd000000003");
    state_box_clear(&got);
    assert_int_equal(state_box_find(st, "abe", &got, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    /* Wildcards are not wildcards. */
    assert_int_equal(state_box_find(st, "%", &got, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    state_close(st);
}

#define ROWS_PER_WRITER 200

/* Child: own connection, ROWS_PER_WRITER inserts, one try at a contested name.
 * Exit status: 0 all inserts ok and won the name, 1 ok and lost it, 2+ errors. */
static int writer(int who)
{
    struct lib_state *st = NULL;
    cocoon_error err = {0};
    if (state_open(home, &st, &err) != 0) {
        fprintf(stderr, "writer %d: %s\n", who, err.message);
        return 2;
    }
    int won = -1;
    for (int i = 0; i < ROWS_PER_WRITER; i++) {
        struct state_box b;
        char id[16], name[32];
        snprintf(id, sizeof(id), "%x%011x", who, i);
        snprintf(name, sizeof(name), "w%d-%d", who, i);
        make_box(&b, id, name, NULL);
        if (state_box_insert(st, &b, &err) != 0) {
            fprintf(stderr, "writer %d row %d: %s\n", who, i, err.message);
            state_close(st);
            return 3;
        }
        if (i == ROWS_PER_WRITER / 2) {
            char cid[16];
            snprintf(cid, sizeof(cid), "c%x0000000000", who);
            make_box(&b, cid, "contested", NULL);
            if (state_box_insert(st, &b, &err) == 0) {
                won = 1;
            } else if (err.code == COCOON_E_STATE && strstr(err.message, "already in use")) {
                won = 0;
            } else {
                fprintf(stderr, "writer %d contested: %s\n", who, err.message);
                state_close(st);
                return 4;
            }
        }
    }
    state_close(st);
    return won ? 0 : 1;
}

static void test_concurrent_writers(void **unused)
{
    /* Both children create the database at the same moment too. */
    pid_t pids[2];
    for (int w = 0; w < 2; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0)
            _exit(writer(w + 1));
    }
    int winners = 0;
    for (int w = 0; w < 2; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) > 1)
            fail_msg("writer %d failed with status %d", w + 1, WEXITSTATUS(status));
        winners += WEXITSTATUS(status) == 0;
    }
    assert_int_equal(winners, 1);
    struct lib_state *st = open_state();
    cocoon_error err = {0};
    struct state_box *list;
    size_t n;
    assert_int_equal(state_box_list(st, &list, &n, &err), 0);
    assert_int_equal(n, 2 * ROWS_PER_WRITER + 1);
    int per[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++)
        if (list[i].id[0] == '1' || list[i].id[0] == '2')
            per[list[i].id[0] - '0']++;
    state_box_list_free(list, n);
    assert_int_equal(per[1], ROWS_PER_WRITER);
    assert_int_equal(per[2], ROWS_PER_WRITER);
    state_close(st);
}

struct thread_arg {
    struct lib_state *st;
    int who, failures;
};

static void *thread_writer(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 100; i++) {
        struct state_box b;
        char id[16];
        snprintf(id, sizeof(id), "%x%011x", a->who, i);
        make_box(&b, id, NULL, NULL);
        cocoon_error err = {0};
        if (state_box_insert(a->st, &b, &err) != 0)
            a->failures++;
    }
    return NULL;
}

/* Threads of one process share a runtime's connection; their writes take turns. */
static void test_threads_share_a_connection(void **unused)
{
    struct lib_state *st = open_state();
    struct thread_arg args[2] = {{st, 5, 0}, {st, 6, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_writer, &args[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(args[0].failures + args[1].failures, 0);
    struct state_box *list;
    size_t n;
    cocoon_error err = {0};
    assert_int_equal(state_box_list(st, &list, &n, &err), 0);
    assert_int_equal(n, 200);
    state_box_list_free(list, n);
    state_close(st);
}

/* The public runtime creates the database in its home. */
static void test_runtime_opens_state(void **unused)
{
    cocoon_runtime_options o;
    cocoon_runtime_options_init(&o);
    o.home = home;
    o.share_dir = home;
    cocoon_runtime *rt = NULL;
    cocoon_error err = {0};
    if (cocoon_runtime_open(&o, &rt, &err) != 0)
        fail_msg("cocoon_runtime_open: %s", err.message);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/cocoon.db", home);
    assert_true(util_file_exists(path));
    cocoon_box_info *list = NULL;
    size_t n = 99;
    assert_int_equal(cocoon_box_list(rt, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    cocoon_box_list_free(list);
    cocoon_box *box = NULL;
    assert_int_equal(cocoon_box_open(rt, "missing", &box, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    assert_non_null(strstr(err.message, "missing"));
    cocoon_runtime_close(rt);
}

/* An image has any number of names: tags move between images, an image without tags
 * stays (untagged), untagging its last name removes it, and never under a box. */
static void test_image_tags(void **unused)
{
    struct lib_state *st = open_state();
    cocoon_error err = {0};
    struct state_image img, got;
    make_image(&img, "sha256:aaaa", "docker.io/library/bb:1");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    make_image(&img, "sha256:aaaa", "docker.io/library/bb:2");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    assert_int_equal(state_image_get_by_name(st, "docker.io/library/bb:1", &got, &err), 0);
    assert_string_equal(got.id, "sha256:aaaa");
    assert_string_equal(got.name, "docker.io/library/bb:1");
    state_image_clear(&got);
    assert_int_equal(state_image_get_by_name(st, "docker.io/library/bb:2", &got, &err), 0);
    state_image_clear(&got);
    struct state_image *list;
    size_t n;
    assert_int_equal(state_image_list(st, &list, &n, &err), 0);
    assert_int_equal(n, 1); /* one image */
    state_image_list_free(list, n);
    assert_int_equal(state_image_list_tags(st, &list, &n, &err), 0);
    assert_int_equal(n, 2); /* two names */
    state_image_list_free(list, n);

    /* a tag moves to another image; the first keeps its other tag */
    make_image(&img, "sha256:bbbb", "docker.io/library/bb:2");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    assert_int_equal(state_image_get_by_name(st, "docker.io/library/bb:2", &got, &err), 0);
    assert_string_equal(got.id, "sha256:bbbb");
    state_image_clear(&got);
    assert_int_equal(state_image_get_by_id(st, "sha256:aaaa", &got, &err), 0);
    assert_string_equal(got.name, "docker.io/library/bb:1");
    state_image_clear(&got);

    /* control characters are never stored */
    make_image(&img, "sha256:cccc", "evil\x1b]0;x\x07");
    assert_int_equal(state_image_put(st, &img, &err), -1);
    assert_int_equal(err.code, COCOON_E_INVALID);

    /* untagging: a name with others left goes alone; the last name takes the image,
     * refused while a box uses it */
    make_image(&img, "sha256:aaaa", "docker.io/library/bb:3");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    struct state_box b;
    make_box(&b, "cccccccccccc", "user", "sha256:aaaa");
    assert_int_equal(state_box_insert(st, &b, &err), 0);
    char id[512];
    int removed = -1;
    assert_int_equal(state_image_untag(st, "docker.io/library/bb:1", id, sizeof(id), &removed, &err), 0);
    assert_string_equal(id, "sha256:aaaa");
    assert_int_equal(removed, 0);
    assert_int_equal(state_image_untag(st, "docker.io/library/bb:3", id, sizeof(id), &removed, &err), -1);
    assert_int_equal(err.code, COCOON_E_STATE);
    assert_non_null(strstr(err.message, "cccccccccccc"));
    assert_int_equal(state_image_get_by_name(st, "docker.io/library/bb:3", &got, &err), 0);
    state_image_clear(&got);
    assert_int_equal(state_box_delete(st, "cccccccccccc", &err), 0);
    assert_int_equal(state_image_untag(st, "docker.io/library/bb:3", id, sizeof(id), &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(state_image_get_by_id(st, "sha256:aaaa", &got, &err), -1);
    assert_int_equal(state_image_untag(st, "docker.io/library/bb:3", id, sizeof(id), &removed, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    /* removing an image by id takes all its tags */
    make_image(&img, "sha256:bbbb", "docker.io/library/bb:4");
    assert_int_equal(state_image_put(st, &img, &err), 0);
    assert_int_equal(state_image_remove(st, "sha256:bbbb", &err), 0);
    assert_int_equal(state_image_list_tags(st, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    state_image_list_free(list, n);
    state_close(st);
}

/* A schema 1 database (one name per image) is migrated: every name becomes a tag. */
static void test_migration_from_v1(void **unused)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/cocoon.db", home);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    const char *v1 = "CREATE TABLE schema_version(version INTEGER NOT NULL); INSERT INTO schema_version VALUES(1);"
                     "CREATE TABLE images(id TEXT PRIMARY KEY, name TEXT UNIQUE, config_digest TEXT NOT NULL "
                     "DEFAULT '', base_path TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT "
                     "NULL, config_json TEXT);"
                     "CREATE TABLE boxes(id TEXT PRIMARY KEY, name TEXT UNIQUE, image_ref TEXT NOT NULL DEFAULT '',"
                     "image_id TEXT REFERENCES images(id) ON DELETE RESTRICT, created_at INTEGER NOT NULL,"
                     "config_json TEXT, ephemeral INTEGER NOT NULL DEFAULT 0);"
                     "CREATE INDEX boxes_image ON boxes(image_id);"
                     "CREATE TABLE snapshots(id TEXT PRIMARY KEY, box_id TEXT REFERENCES boxes(id) ON DELETE CASCADE,"
                     "created_at INTEGER NOT NULL, path TEXT NOT NULL);"
                     "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT);"
                     "INSERT INTO images VALUES('sha256:aaaa', 'docker.io/library/py:3', '', '/b/a.ext4', 1, 5, NULL);"
                     "INSERT INTO images VALUES('sha256:bbbb', NULL, '', '/b/b.ext4', 1, 6, NULL);";
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct lib_state *st = open_state();
    assert_int_equal(state_schema_version(st), STATE_SCHEMA_VERSION);
    cocoon_error err = {0};
    struct state_image got;
    assert_int_equal(state_image_get_by_name(st, "docker.io/library/py:3", &got, &err), 0);
    assert_string_equal(got.id, "sha256:aaaa");
    state_image_clear(&got);
    assert_int_equal(state_image_get_by_id(st, "sha256:bbbb", &got, &err), 0);
    assert_string_equal(got.name, "");
    state_image_clear(&got);
    state_close(st);
}

/* The state directory: created 0700, canonicalised, another owner's refused, and one
 * others can read named in a warning with the chmod that fixes it. */
static void test_runtime_home_checks(void **unused)
{
    cocoon_runtime *rt = NULL;
    cocoon_error err = {0};
    char sub[PATH_MAX + 32], spelled[PATH_MAX + 64];
    snprintf(sub, sizeof(sub), "%s/new-home", home);
    cocoon_runtime_options o;
    cocoon_runtime_options_init(&o);
    o.home = sub;
    o.share_dir = home;
    assert_int_equal(cocoon_runtime_open(&o, &rt, &err), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_string_equal(cocoon_runtime_warning(rt), "");
    cocoon_runtime_close(rt);

    /* another spelling of the same directory is the same home */
    snprintf(spelled, sizeof(spelled), "%s/./new-home/", home);
    o.home = spelled;
    assert_int_equal(cocoon_runtime_open(&o, &rt, &err), 0);
    cocoon_box_info *list = NULL;
    size_t n;
    assert_int_equal(cocoon_box_list(rt, &list, &n, &err), 0);
    cocoon_box_list_free(list);
    cocoon_runtime_close(rt);

    assert_int_equal(chmod(sub, 0755), 0);
    o.home = sub;
    assert_int_equal(cocoon_runtime_open(&o, &rt, &err), 0);
    assert_non_null(strstr(cocoon_runtime_warning(rt), "chmod 700"));
    assert_non_null(strstr(cocoon_runtime_warning(rt), "0755"));
    cocoon_runtime_close(rt);

    if (geteuid() != 0) {
        print_message("skipped: another owner's home: needs root to chown\n");
        return;
    }
    assert_int_equal(chown(sub, 12345, 12345), 0);
    rt = NULL;
    assert_int_equal(cocoon_runtime_open(&o, &rt, &err), -1);
    assert_null(rt);
    assert_non_null(strstr(err.message, "belongs to uid 12345"));
    assert_int_equal(chown(sub, 0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_wal_kept_empty_between_commands),
        cmocka_unit_test(test_box_ids_sorted),
        cmocka_unit_test(test_box_crud),
        cmocka_unit_test(test_name_unique),
        cmocka_unit_test(test_image_crud_and_in_use),
        cmocka_unit_test(test_prefix_lookup),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_threads_share_a_connection),
        cmocka_unit_test(test_runtime_opens_state),
        cmocka_unit_test(test_image_tags),
        cmocka_unit_test(test_migration_from_v1),
        cmocka_unit_test(test_runtime_home_checks),
    };
    return run_tests_with_fixture(tests, setup_home, teardown_home);
}
