/* Timestamped line records of a command's output (outlog.h). A record is written in
 * one write, so a rotation never splits it. */
#include "monitor/outlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

int outlog_open(struct outlog *o, int dirfd, const char *name, enum outlog_kind kind, int fresh)
{
    o->len[0] = o->len[1] = 0;
    uint64_t max = kind == OUTLOG_MAIN ? util_env_bytes("COCOON_MAIN_LOG_MAX", OUTLOG_MAIN_BYTES, OUTLOG_MIN_BYTES)
                                       : util_env_bytes("COCOON_EXEC_LOG_MAX", OUTLOG_EXEC_BYTES, OUTLOG_MIN_BYTES);
    return rotlog_open(&o->log, dirfd, name, max, fresh);
}

static void record(struct outlog *o, int stream, const char *text, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char head[64];
    int hn = snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, stream ? "stderr" : "stdout");
    char *rec = malloc((size_t)hn + n + 1);
    if (!rec) {
        o->log.dropped += n;
        return;
    }
    memcpy(rec, head, (size_t)hn);
    memcpy(rec + hn, text, n);
    rec[(size_t)hn + n] = '\n';
    rotlog_write(&o->log, rec, (size_t)hn + n + 1);
    free(rec);
}

void outlog_write(struct outlog *o, int stream, const uint8_t *p, size_t n)
{
    int s = stream ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || o->len[s] == sizeof(o->line[s])) {
            record(o, s, o->line[s], o->len[s]);
            o->len[s] = 0;
            if (p[i] == '\n')
                continue;
        }
        o->line[s][o->len[s]++] = (char)p[i];
    }
}

void outlog_note(struct outlog *o, const char *text) { record(o, 1, text, strlen(text)); }

void outlog_flush(struct outlog *o)
{
    for (int s = 0; s < 2; s++)
        if (o->len[s]) {
            record(o, s, o->line[s], o->len[s]);
            o->len[s] = 0;
        }
}

void outlog_close(struct outlog *o)
{
    outlog_flush(o);
    rotlog_close(&o->log);
}
