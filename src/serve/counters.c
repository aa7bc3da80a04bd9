/* Per-box exec counters for the metrics routes: a fixed table of the boxes most
 * recently used (the least recent one gives its slot to a new box). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"

#define COUNTER_BOXES 4096

struct slot {
    char box[16];
    time_t used;
    struct serve_box_counters c;
};

static struct slot table[COUNTER_BOXES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void serve_box_counters_get(const char *box_id, struct serve_box_counters *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < COUNTER_BOXES; i++)
        if (strcmp(table[i].box, box_id) == 0) {
            *out = table[i].c;
            break;
        }
    pthread_mutex_unlock(&lock);
}

void serve_box_count_exec(const char *box_id, int failed, uint64_t bytes_in, uint64_t bytes_out)
{
    pthread_mutex_lock(&lock);
    struct slot *s = NULL, *oldest = &table[0];
    for (size_t i = 0; i < COUNTER_BOXES && !s; i++) {
        if (strcmp(table[i].box, box_id) == 0)
            s = &table[i];
        else if (table[i].used < oldest->used)
            oldest = &table[i];
    }
    if (!s) {
        s = oldest;
        memset(s, 0, sizeof(*s));
        snprintf(s->box, sizeof(s->box), "%s", box_id);
    }
    s->used = time(NULL);
    s->c.commands++;
    s->c.errors += failed != 0;
    s->c.bytes_in += bytes_in;
    s->c.bytes_out += bytes_out;
    pthread_mutex_unlock(&lock);
    pthread_mutex_lock(&serve_counters_lock);
    serve_counters.exec_errors += failed != 0;
    pthread_mutex_unlock(&serve_counters_lock);
}
