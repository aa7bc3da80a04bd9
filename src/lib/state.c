/* The state database behind state.h: opening and migrating cocoon.db, and the box and
 * image rows. Writes run in BEGIN IMMEDIATE transactions (the write lock is taken up
 * front, so two writers queue instead of deadlocking) and are retried on SQLITE_BUSY
 * until STATE_BUSY_MS has passed; only then does the caller see an error. */
#include "lib/state.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/internal.h"
#include "util/util.h"

#define STATE_RETRY 1 /* a transaction body hit SQLITE_BUSY: roll back and run it again */

/* Each entry upgrades the schema by one version, in order. */
static const char *const migrations[] = {
    /* 1: boxes, images, snapshots (reserved), settings */
    "CREATE TABLE images("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT UNIQUE,"
    "  config_digest TEXT NOT NULL DEFAULT '',"
    "  base_path TEXT NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  config_json TEXT);"
    "CREATE TABLE boxes("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT UNIQUE,"
    "  image_ref TEXT NOT NULL DEFAULT '',"
    "  image_id TEXT REFERENCES images(id) ON DELETE RESTRICT,"
    "  created_at INTEGER NOT NULL,"
    "  config_json TEXT,"
    "  ephemeral INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX boxes_image ON boxes(image_id);"
    "CREATE TABLE snapshots("
    "  id TEXT PRIMARY KEY,"
    "  box_id TEXT REFERENCES boxes(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL,"
    "  path TEXT NOT NULL);"
    "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT);",
    /* 2: an image has any number of names (tags); images.name is no longer used */
    "CREATE TABLE image_tags("
    "  name TEXT PRIMARY KEY,"
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX image_tags_image ON image_tags(image_id);"
    "INSERT INTO image_tags(name, image_id, created_at) SELECT name, id, created_at FROM images WHERE name IS NOT NULL;"
    "UPDATE images SET name = NULL;",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(N_MIGRATIONS == STATE_SCHEMA_VERSION, "one migration per schema version");

static uint64_t mono_ms(void) { return util_now_ns(CLOCK_MONOTONIC) / 1000000u; }

static void nap(void)
{
    struct timespec ts = {0, 5 * 1000000L + (long)(mono_ms() % 7) * 1000000L}; /* 5-11 ms, de-synchronised */
    nanosleep(&ts, NULL);
}

static int is_busy(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

static int db_fail(struct lib_state *st, cocoon_error *err, const char *what)
{
    int rc = sqlite3_extended_errcode(st->db);
    if (is_busy(rc))
        return lib_err(err, COCOON_E_IO, "state database %s: %s: still locked by another cocoon process after %d s",
                       st->path, what, STATE_BUSY_MS / 1000);
    return lib_err(err, COCOON_E_IO, "state database %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
}

/* Runs SQL without results; retries a busy database until the deadline. */
static int exec_retry(struct lib_state *st, const char *sql, uint64_t deadline)
{
    for (;;) {
        int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        if (!is_busy(rc) || mono_ms() >= deadline)
            return rc;
        nap();
    }
}

typedef int (*tx_body)(struct lib_state *st, void *arg, cocoon_error *err);

/* BEGIN IMMEDIATE; body; COMMIT. The body returns 0, -1 (err set: roll back) or
 * STATE_RETRY (it met SQLITE_BUSY: roll back and start over). */
static int write_tx_locked(struct lib_state *st, const char *what, tx_body body, void *arg, cocoon_error *err);

/* Threads sharing a runtime share its connection: their transactions take turns. */
static int write_tx(struct lib_state *st, const char *what, tx_body body, void *arg, cocoon_error *err)
{
    pthread_mutex_lock(&st->tx_lock);
    int rc = write_tx_locked(st, what, body, arg, err);
    pthread_mutex_unlock(&st->tx_lock);
    return rc;
}

static int write_tx_locked(struct lib_state *st, const char *what, tx_body body, void *arg, cocoon_error *err)
{
    uint64_t deadline = mono_ms() + STATE_BUSY_MS;
    for (;;) {
        int rc = exec_retry(st, "BEGIN IMMEDIATE", deadline);
        if (rc != SQLITE_OK)
            return db_fail(st, err, what);
        int r = body(st, arg, err);
        if (r == 0) {
            util_test_point("STATE_COMMIT"); /* a write transaction done, not committed */
            rc = exec_retry(st, "COMMIT", deadline);
            if (rc == SQLITE_OK)
                return 0;
            int busy = is_busy(sqlite3_extended_errcode(st->db));
            db_fail(st, err, what);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            if (busy && mono_ms() < deadline)
                continue;
            return -1;
        }
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (r != STATE_RETRY)
            return -1;
        if (mono_ms() >= deadline)
            return lib_err(err, COCOON_E_IO, "state database %s: %s: still locked by another cocoon process after %d s",
                           st->path, what, STATE_BUSY_MS / 1000);
        nap();
    }
}

/* Maps a failed step inside a transaction body: busy means retry, else an error. */
static int step_fail(struct lib_state *st, int rc, cocoon_error *err, const char *what)
{
    if (is_busy(rc))
        return STATE_RETRY;
    return db_fail(st, err, what);
}

static int prepare(struct lib_state *st, const char *sql, sqlite3_stmt **out, cocoon_error *err)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return is_busy(rc) ? STATE_RETRY : db_fail(st, err, "preparing a query");
    }
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static void col_text(sqlite3_stmt *s, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

/* ---- open and migrate ---- */

static int read_version(struct lib_state *st, int *version)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(st->db, "SELECT version FROM schema_version LIMIT 1", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    *version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int migrate_body(struct lib_state *st, void *arg, cocoon_error *err)
{
    int rc =
        sqlite3_exec(st->db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", NULL, NULL, NULL);
    int version = 0;
    if (rc == SQLITE_OK)
        rc = read_version(st, &version);
    if (rc != SQLITE_OK)
        return step_fail(st, rc, err, "reading the schema version");
    if (version > STATE_SCHEMA_VERSION)
        return lib_err(err, COCOON_E_STATE,
                       "state database %s has schema version %d, newer than this cocoon understands (%d): "
                       "upgrade cocoon or use another COCOON_HOME",
                       st->path, version, STATE_SCHEMA_VERSION);
    if (version == STATE_SCHEMA_VERSION)
        return 0;
    for (int v = version; v < N_MIGRATIONS; v++) {
        rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return step_fail(st, rc, err, "creating the schema");
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM schema_version; INSERT INTO schema_version(version) VALUES(%d)",
             STATE_SCHEMA_VERSION);
    rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : step_fail(st, rc, err, "recording the schema version");
}

int state_open(const char *home, struct lib_state **out, cocoon_error *err)
{
    *out = NULL;
    struct lib_state *st = calloc(1, sizeof(*st));
    if (!st)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->tx_lock, NULL);
    if (lib_path(st->path, sizeof(st->path), "%s/cocoon.db", home) < 0) {
        state_close(st);
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long: %s", home);
    }
    int rc =
        sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        lib_err(err, COCOON_E_IO, "cannot open the state database %s: %s", st->path,
                st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        state_close(st);
        return -1;
    }
    chmod(st->path, 0600);
    /* The last connection to close would delete cocoon.db-wal and -shm, and the next
     * command make them again: two file creations and deletions per short command
     * (~0.1 ms on a quiet ext4; 14% of an `ls -a` in a profile taken while other jobs
     * churned the file system, where ext4 scans for recently deleted inodes). Kept
     * instead, the WAL emptied at close (journal_size_limit below). */
    int persist = 1;
    sqlite3_file_control(st->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STATE_BUSY_MS);
    uint64_t deadline = mono_ms() + STATE_BUSY_MS;
    /* WAL: readers never block the writer; switching needs a moment of exclusivity
     * when the file is new, so it is retried like any busy write. */
    for (;;) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        int wal = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(s, 0), "wal");
        sqlite3_finalize(s);
        if (wal)
            break;
        if (!is_busy(rc) || mono_ms() >= deadline) {
            db_fail(st, err, "switching to WAL mode");
            state_close(st);
            return -1;
        }
        nap();
    }
    if (exec_retry(st, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=1048576",
                   deadline) != SQLITE_OK) {
        db_fail(st, err, "setting pragmas");
        state_close(st);
        return -1;
    }
    int version = 0;
    if (read_version(st, &version) != SQLITE_OK || version != STATE_SCHEMA_VERSION) {
        if (write_tx(st, "migrating the schema", migrate_body, NULL, err) < 0) {
            state_close(st);
            return -1;
        }
    }
    *out = st;
    return 0;
}

void state_close(struct lib_state *st)
{
    if (!st)
        return;
    if (st->db)
        sqlite3_close_v2(st->db);
    pthread_mutex_destroy(&st->tx_lock);
    free(st);
}

int state_integrity(struct lib_state *st, char *out, size_t cap)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
    int ok = t && !strcmp((const char *)t, "ok");
    snprintf(out, cap, "%s", t ? (const char *)t : sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    return ok ? 0 : -1;
}

int state_schema_version(struct lib_state *st)
{
    int v = 0;
    return read_version(st, &v) == SQLITE_OK ? v : -1;
}

/* ---- boxes ---- */

#define BOX_COLS "id, name, image_ref, image_id, created_at, ephemeral, config_json"

void state_box_clear(struct state_box *b)
{
    if (!b)
        return;
    free(b->config_json);
    b->config_json = NULL;
}

static void box_from_row(sqlite3_stmt *s, struct state_box *b)
{
    memset(b, 0, sizeof(*b));
    col_text(s, 0, b->id, sizeof(b->id));
    col_text(s, 1, b->name, sizeof(b->name));
    col_text(s, 2, b->image_ref, sizeof(b->image_ref));
    col_text(s, 3, b->image_id, sizeof(b->image_id));
    b->created_at = sqlite3_column_int64(s, 4);
    b->ephemeral = sqlite3_column_int(s, 5);
    b->config_json = col_dup(s, 6);
}

static void box_row(sqlite3_stmt *s, void *rec) { box_from_row(s, rec); }

/* Runs a one-row query with one text parameter: 1 found (the row read into out by
 * from_row, when out is set), 0 not, -1 error. */
static int query_one(struct lib_state *st, const char *sql, const char *param, void (*from_row)(sqlite3_stmt *, void *),
                     void *out, const char *what, cocoon_error *err)
{
    sqlite3_stmt *s;
    if (prepare(st, sql, &s, err) != 0)
        return -1;
    sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    int found = rc == SQLITE_ROW;
    if (found && out)
        from_row(s, out);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(st, err, what);
    return found;
}

static int query_box(struct lib_state *st, const char *sql, const char *param, struct state_box *out, cocoon_error *err)
{
    return query_one(st, sql, param, box_row, out, "reading boxes", err);
}

static int box_insert_body(struct lib_state *st, void *arg, cocoon_error *err)
{
    const struct state_box *b = arg;
    sqlite3_stmt *s;
    int rc;
    if (b->name[0]) {
        if ((rc = prepare(st, "SELECT id FROM boxes WHERE name = ?1", &s, err)) != 0)
            return rc;
        sqlite3_bind_text(s, 1, b->name, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(s);
        char other[16] = "";
        if (rc == SQLITE_ROW)
            col_text(s, 0, other, sizeof(other));
        sqlite3_finalize(s);
        if (rc == SQLITE_ROW)
            return lib_err(err, COCOON_E_STATE, "box name \"%s\" is already in use by box %s", b->name, other);
        if (rc != SQLITE_DONE)
            return step_fail(st, rc, err, "checking the box name");
    }
    if ((rc = prepare(st,
                      "INSERT INTO boxes(id, name, image_ref, image_id, created_at, ephemeral, config_json) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      &s, err)) != 0)
        return rc;
    sqlite3_bind_text(s, 1, b->id, -1, SQLITE_TRANSIENT);
    bind_text_or_null(s, 2, b->name);
    sqlite3_bind_text(s, 3, b->image_ref, -1, SQLITE_TRANSIENT);
    bind_text_or_null(s, 4, b->image_id);
    sqlite3_bind_int64(s, 5, b->created_at ? b->created_at : (long long)time(NULL));
    sqlite3_bind_int(s, 6, b->ephemeral != 0);
    bind_text_or_null(s, 7, b->config_json);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE)
        return 0;
    int ext = sqlite3_extended_errcode(st->db);
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        return lib_err(err, COCOON_E_NOT_FOUND, "image %s is not in the state database", b->image_id);
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return lib_err(err, COCOON_E_STATE, "box id %s is already in use", b->id);
    if (ext == SQLITE_CONSTRAINT_UNIQUE)
        return lib_err(err, COCOON_E_STATE, "box name \"%s\" is already in use", b->name);
    return step_fail(st, rc, err, "adding the box");
}

int state_box_insert(struct lib_state *st, const struct state_box *b, cocoon_error *err)
{
    return write_tx(st, "adding a box", box_insert_body, (void *)b, err);
}

static int box_delete_body(struct lib_state *st, void *arg, cocoon_error *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "DELETE FROM boxes WHERE id = ?1", &s, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, (const char *)arg, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : step_fail(st, rc, err, "removing the box");
}

int state_box_delete(struct lib_state *st, const char *id, cocoon_error *err)
{
    return write_tx(st, "removing a box", box_delete_body, (void *)id, err);
}

int state_box_get(struct lib_state *st, const char *id, struct state_box *out, cocoon_error *err)
{
    int r = query_box(st, "SELECT " BOX_COLS " FROM boxes WHERE id = ?1", id, out, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "no box with id %s", id);
    return 0;
}

int state_box_find(struct lib_state *st, const char *key, struct state_box *out, cocoon_error *err)
{
    if (!key || !*key)
        return lib_err(err, COCOON_E_INVALID, "empty box id or name");
    int r = query_box(st, "SELECT " BOX_COLS " FROM boxes WHERE id = ?1", key, out, err);
    if (r == 0)
        r = query_box(st, "SELECT " BOX_COLS " FROM boxes WHERE name = ?1", key, out, err);
    if (r != 0)
        return r < 0 ? -1 : 0;
    if (!util_is_hex(key) || strlen(key) >= 16)
        return lib_err(err, COCOON_E_NOT_FOUND, "no box with id or name \"%s\"", key);
    sqlite3_stmt *s;
    if (prepare(st, "SELECT " BOX_COLS " FROM boxes WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6", &s,
                err) != 0)
        return -1;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    char ids[128] = "";
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == 0 && out)
            box_from_row(s, out);
        char id[16];
        col_text(s, 0, id, sizeof(id));
        size_t used = strlen(ids);
        snprintf(ids + used, sizeof(ids) - used, "%s%s", n ? ", " : "", n < 5 ? id : "...");
        n++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        if (n && out)
            state_box_clear(out);
        return db_fail(st, err, "reading boxes");
    }
    if (n == 1)
        return 0;
    if (n && out)
        state_box_clear(out);
    if (n == 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "no box with id or name \"%s\"", key);
    return lib_err(err, COCOON_E_INVALID, "box id prefix \"%s\" is ambiguous: it matches %s; give more characters", key,
                   ids);
}

/* Runs a SELECT and collects every row into a growing array of elem-sized records:
 * from_row fills one, clear releases one (on failure, for the rows already made). */
static int collect_rows(struct lib_state *st, const char *sql, size_t elem, void (*from_row)(sqlite3_stmt *, void *),
                        void (*clear)(void *), const char *what, void **out, size_t *count, cocoon_error *err)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *s;
    if (prepare(st, sql, &s, err) != 0)
        return -1;
    char *list = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char *grown = realloc(list, ncap * elem);
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            list = grown;
            cap = ncap;
        }
        from_row(s, list + n++ * elem);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n; i++)
            clear(list + i * elem);
        free(list);
        return rc == SQLITE_NOMEM ? lib_err(err, COCOON_E_NOMEM, "out of memory") : db_fail(st, err, what);
    }
    *out = list;
    *count = n;
    return 0;
}

static void box_clear(void *rec) { state_box_clear(rec); }

int state_box_list(struct lib_state *st, struct state_box **out, size_t *count, cocoon_error *err)
{
    return collect_rows(st, "SELECT " BOX_COLS " FROM boxes ORDER BY created_at, id", sizeof(**out), box_row, box_clear,
                        "listing boxes", (void **)out, count, err);
}

static void id_row(sqlite3_stmt *s, void *rec)
{
    struct state_box_id *b = rec;
    col_text(s, 0, b->id, sizeof(b->id));
}

static void id_clear(void *rec) { (void)rec; }

int state_box_ids(struct lib_state *st, struct state_box_id **out, size_t *count, cocoon_error *err)
{
    /* ids are lowercase hex: SQLite's BINARY order is strcmp's */
    return collect_rows(st, "SELECT id FROM boxes ORDER BY id", sizeof(**out), id_row, id_clear, "listing box ids",
                        (void **)out, count, err);
}

void state_box_list_free(struct state_box *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        state_box_clear(&list[i]);
    free(list);
}

/* ---- images ---- */

/* An image with its newest tag as its name ("" when it has none). */
#define IMAGE_COLS                                                                                                     \
    "i.id, coalesce((SELECT t.name FROM image_tags t WHERE t.image_id = i.id ORDER BY t.created_at DESC, t.name "      \
    "LIMIT 1), ''), i.config_digest, i.base_path, i.size, i.created_at, i.config_json"
/* The same with a given tag (t.name) as its name. */
#define TAGGED_COLS "i.id, t.name, i.config_digest, i.base_path, i.size, i.created_at, i.config_json"

void state_image_clear(struct state_image *img)
{
    if (!img)
        return;
    free(img->config_json);
    img->config_json = NULL;
}

static void image_from_row(sqlite3_stmt *s, struct state_image *img)
{
    memset(img, 0, sizeof(*img));
    col_text(s, 0, img->id, sizeof(img->id));
    col_text(s, 1, img->name, sizeof(img->name));
    col_text(s, 2, img->config_digest, sizeof(img->config_digest));
    col_text(s, 3, img->base_path, sizeof(img->base_path));
    img->size = (uint64_t)sqlite3_column_int64(s, 4);
    img->created_at = sqlite3_column_int64(s, 5);
    img->config_json = col_dup(s, 6);
}

static int image_put_body(struct lib_state *st, void *arg, cocoon_error *err)
{
    const struct state_image *img = arg;
    sqlite3_stmt *s;
    int rc;
    if ((rc = prepare(st,
                      "INSERT INTO images(id, name, config_digest, base_path, size, created_at, config_json) "
                      "VALUES(?1, NULL, ?2, ?3, ?4, ?5, ?6) "
                      "ON CONFLICT(id) DO UPDATE SET config_digest = excluded.config_digest, "
                      "base_path = excluded.base_path, size = excluded.size, "
                      "config_json = coalesce(excluded.config_json, config_json)",
                      &s, err)) != 0)
        return rc;
    sqlite3_bind_text(s, 1, img->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, img->config_digest, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, img->base_path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)img->size);
    sqlite3_bind_int64(s, 5, img->created_at ? img->created_at : (long long)time(NULL));
    bind_text_or_null(s, 6, img->config_json);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return step_fail(st, rc, err, "recording the image");
    if (!img->name[0])
        return 0;
    /* The tag moves to this image; its previous image keeps its other tags. */
    if ((rc = prepare(st,
                      "INSERT INTO image_tags(name, image_id, created_at) VALUES(?1, ?2, ?3) "
                      "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at",
                      &s, err)) != 0)
        return rc;
    sqlite3_bind_text(s, 1, img->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, img->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, (long long)time(NULL));
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : step_fail(st, rc, err, "tagging the image");
}

int state_image_put(struct lib_state *st, const struct state_image *img, cocoon_error *err)
{
    if (!img->id[0] || !img->base_path[0])
        return lib_err(err, COCOON_E_INVALID, "an image needs an id and a base path");
    for (const unsigned char *p = (const unsigned char *)img->name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return lib_err(err, COCOON_E_INVALID, "an image name cannot contain control characters");
    return write_tx(st, "recording an image", image_put_body, (void *)img, err);
}

static void image_row(sqlite3_stmt *s, void *rec) { image_from_row(s, rec); }

static int query_image(struct lib_state *st, const char *sql, const char *param, struct state_image *out,
                       cocoon_error *err)
{
    return query_one(st, sql, param, image_row, out, "reading images", err);
}

int state_image_get_by_id(struct lib_state *st, const char *id, struct state_image *out, cocoon_error *err)
{
    int r = query_image(st, "SELECT " IMAGE_COLS " FROM images i WHERE i.id = ?1", id, out, err);
    if (r == 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "no image with id %s", id);
    return r < 0 ? -1 : 0;
}

int state_image_get_by_name(struct lib_state *st, const char *name, struct state_image *out, cocoon_error *err)
{
    int r =
        query_image(st, "SELECT " TAGGED_COLS " FROM image_tags t JOIN images i ON i.id = t.image_id WHERE t.name = ?1",
                    name, out, err);
    if (r == 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "no image named \"%s\"", name);
    return r < 0 ? -1 : 0;
}

static void image_clear(void *rec) { state_image_clear(rec); }

int state_image_list(struct lib_state *st, struct state_image **out, size_t *count, cocoon_error *err)
{
    return collect_rows(st, "SELECT " IMAGE_COLS " FROM images i ORDER BY i.created_at, i.id", sizeof(**out), image_row,
                        image_clear, "listing images", (void **)out, count, err);
}

int state_image_list_tags(struct lib_state *st, struct state_image **out, size_t *count, cocoon_error *err)
{
    return collect_rows(st,
                        "SELECT " TAGGED_COLS " FROM images i LEFT JOIN image_tags t ON t.image_id = i.id "
                        "ORDER BY i.created_at, i.id, t.created_at, t.name",
                        sizeof(**out), image_row, image_clear, "listing images", (void **)out, count, err);
}

void state_image_list_free(struct state_image *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        state_image_clear(&list[i]);
    free(list);
}

/* 0 when no box uses image id; else the refusal, naming the first box. */
static int refuse_if_used(struct lib_state *st, const char *id, const char *shown, cocoon_error *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT id, name FROM boxes WHERE image_id = ?1 ORDER BY created_at LIMIT 1", &s, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    char bid[16] = "", bname[128] = "";
    if (rc == SQLITE_ROW) {
        col_text(s, 0, bid, sizeof(bid));
        col_text(s, 1, bname, sizeof(bname));
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW)
        return lib_err(err, COCOON_E_STATE, "image %s is used by box %s (%s); remove the box first", shown, bid,
                       bname[0] ? bname : "unnamed");
    return rc == SQLITE_DONE ? 0 : step_fail(st, rc, err, "reading the boxes of the image");
}

static int delete_image(struct lib_state *st, const char *id, const char *shown, cocoon_error *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "DELETE FROM images WHERE id = ?1", &s, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
        return lib_err(err, COCOON_E_STATE, "image %s is used by a box; remove the box first", shown);
    return step_fail(st, rc, err, "removing the image");
}

static int image_remove_body(struct lib_state *st, void *arg, cocoon_error *err)
{
    const char *id = arg;
    struct state_image img;
    int r = query_image(st, "SELECT " IMAGE_COLS " FROM images i WHERE i.id = ?1", id, &img, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "no image with id %s", id);
    char shown[1024];
    snprintf(shown, sizeof(shown), "%s", img.name[0] ? img.name : id);
    state_image_clear(&img);
    int rc = refuse_if_used(st, id, shown, err);
    return rc ? rc : delete_image(st, id, shown, err);
}

int state_image_remove(struct lib_state *st, const char *id, cocoon_error *err)
{
    return write_tx(st, "removing an image", image_remove_body, (void *)id, err);
}

struct untag_arg {
    const char *name;
    char image_id[512];
    int removed;
};

static int untag_body(struct lib_state *st, void *arg, cocoon_error *err)
{
    struct untag_arg *a = arg;
    a->removed = 0;
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "SELECT image_id, (SELECT count(*) FROM image_tags o WHERE o.image_id = t.image_id) "
                     "FROM image_tags t WHERE t.name = ?1",
                     &s, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, a->name, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    int tags = 0;
    if (rc == SQLITE_ROW) {
        col_text(s, 0, a->image_id, sizeof(a->image_id));
        tags = sqlite3_column_int(s, 1);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE)
        return lib_err(err, COCOON_E_NOT_FOUND, "no image named \"%s\"", a->name);
    if (rc != SQLITE_ROW)
        return step_fail(st, rc, err, "reading the tag");
    if (tags <= 1) { /* its last name: the image goes with it, as docker rmi does */
        rc = refuse_if_used(st, a->image_id, a->name, err);
        if (rc == 0)
            rc = delete_image(st, a->image_id, a->name, err);
        a->removed = rc == 0;
        return rc;
    }
    if ((rc = prepare(st, "DELETE FROM image_tags WHERE name = ?1", &s, err)) != 0)
        return rc;
    sqlite3_bind_text(s, 1, a->name, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : step_fail(st, rc, err, "removing the tag");
}

int state_image_untag(struct lib_state *st, const char *name, char *image_id, size_t cap, int *removed,
                      cocoon_error *err)
{
    struct untag_arg a = {.name = name};
    int rc = write_tx(st, "removing an image name", untag_body, &a, err);
    if (image_id)
        snprintf(image_id, cap, "%s", a.image_id);
    if (removed)
        *removed = rc == 0 && a.removed;
    return rc;
}
