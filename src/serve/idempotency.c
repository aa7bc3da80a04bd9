/* The Idempotency-Key table: key → (SHA-256 of the request body, box id, time). The
 * oldest entry makes room when the table is full. */
#include "serve/idempotency.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct entry {
    char key[IDEMPOTENCY_KEY_MAX + 1];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char box[64];
    time_t when;
    int pending; /* the first create with this key is still running */
};

static struct entry table[IDEMPOTENCY_KEYS_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct entry *find(const char *key, time_t now)
{
    for (size_t i = 0; i < IDEMPOTENCY_KEYS_MAX; i++)
        if (table[i].key[0] && (table[i].pending || now - table[i].when < IDEMPOTENCY_TTL_S) &&
            strcmp(table[i].key, key) == 0)
            return &table[i];
    return NULL;
}

static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;

static int key_usable(const char *key) { return key && *key && strlen(key) <= IDEMPOTENCY_KEY_MAX; }

static struct entry *free_slot(time_t now)
{
    struct entry *slot = NULL;
    for (size_t i = 0; i < IDEMPOTENCY_KEYS_MAX; i++) {
        struct entry *e = &table[i];
        if (!e->key[0] || (!e->pending && now - e->when >= IDEMPOTENCY_TTL_S))
            return e;
        if (!e->pending && (!slot || e->when < slot->when))
            slot = e;
    }
    return slot;
}

int idempotency_claim(const char *key, const char *body, size_t len, char *out, size_t cap)
{
    if (!key_usable(key))
        return 0;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(body ? body : ""), body ? len : 0, digest);
    pthread_mutex_lock(&lock);
    struct entry *e;
    while ((e = find(key, time(NULL))) && e->pending)
        pthread_cond_wait(&finished, &lock);
    int rc = 0;
    if (e) {
        rc = memcmp(e->digest, digest, sizeof(digest)) == 0 ? 1 : -1;
        snprintf(out, cap, "%s", e->box);
    } else if ((e = free_slot(time(NULL))) != NULL) {
        snprintf(e->key, sizeof(e->key), "%s", key);
        memcpy(e->digest, digest, sizeof(digest));
        e->box[0] = '\0';
        e->pending = 1;
        e->when = time(NULL);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void idempotency_finish(const char *key, const char *box_id)
{
    if (!key_usable(key))
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < IDEMPOTENCY_KEYS_MAX; i++) {
        struct entry *e = &table[i];
        if (!e->pending || strcmp(e->key, key) != 0)
            continue;
        e->pending = 0;
        if (box_id) {
            snprintf(e->box, sizeof(e->box), "%s", box_id);
            e->when = time(NULL);
        } else {
            e->key[0] = '\0';
        }
    }
    pthread_cond_broadcast(&finished);
    pthread_mutex_unlock(&lock);
}
