/* The start of a log window as people write it (`cocoon logs --since`, the REST
 * server's ?since=): an RFC 3339 time, a date, a unix time in seconds, or a duration
 * back from now ("90s", "10m", "1h30m", "2d"). One reader so the CLI and the server
 * accept the same words. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

#define US_PER_S 1000000LL
#define DURATION_MAX_S (100LL * 366 * 24 * 3600) /* a century back is "everything" already */

/* Reads exactly n digits at *p; -1 when one is missing. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (no timegm: it
 * reads the TZ database and the process's locale for no reason here). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static int month_days(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[.frac]](Z|±HH:MM)]; 1 parsed, 0 not this form, -1 bad. */
static int parse_rfc3339(const char *s, long long *out_us, char *err, size_t cap)
{
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 0 || *p != '-')
        return 0;
    p++;
    int mo = digits(&p, 2);
    if (mo < 0 || *p++ != '-')
        goto bad;
    int d = digits(&p, 2);
    if (d < 0 || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
        goto bad;
    long long secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400, frac_us = 0;
    if (!*p) {
        *out_us = secs * US_PER_S;
        return 1;
    }
    if (*p != 'T' && *p != 't' && *p != ' ')
        goto bad;
    p++;
    int h = digits(&p, 2);
    if (h < 0 || *p++ != ':')
        goto bad;
    int mi = digits(&p, 2), sec = 0;
    if (mi < 0 || h > 23 || mi > 59)
        goto bad;
    if (*p == ':') {
        p++;
        if ((sec = digits(&p, 2)) < 0 || sec > 60)
            goto bad;
        if (*p == '.') {
            p++;
            long long scale = 100000;
            if (!isdigit((unsigned char)*p))
                goto bad;
            for (; isdigit((unsigned char)*p); p++, scale /= 10)
                frac_us += scale * (*p - '0'); /* digits past microseconds add 0 */
        }
    }
    secs += h * 3600LL + mi * 60LL + sec;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, 2);
        if (oh < 0 || oh > 23 || *p++ != ':')
            goto bad;
        int om = digits(&p, 2);
        if (om < 0 || om > 59)
            goto bad;
        secs -= sign * (oh * 3600LL + om * 60LL);
    } else {
        snprintf(err, cap, "\"%.64s\": a time needs its zone (Z or +HH:MM), as in 2026-12-03T14:00:00Z", s);
        return -1;
    }
    if (*p)
        goto bad;
    *out_us = (secs < 0 ? 0 : secs * US_PER_S) + frac_us;
    return 1;
bad:
    snprintf(err, cap, "\"%.64s\" is not a time: write it as 2026-12-03T14:00:00Z (RFC 3339) or 2026-12-03", s);
    return -1;
}

/* 90s, 10m, 1h30m, 2d, 1.5h: numbers each followed by a unit. */
static int parse_duration(const char *s, long long *back_us)
{
    const char *p = s;
    double total = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -1;
        double v = 0, scale = 1;
        for (; isdigit((unsigned char)*p) && v < 1e12; p++)
            v = v * 10 + (*p - '0');
        if (*p == '.') {
            for (p++; isdigit((unsigned char)*p); p++)
                v += (*p - '0') * (scale /= 10);
        }
        double unit;
        if (!strncmp(p, "ms", 2)) {
            unit = 0.001;
            p++;
        } else if (*p == 's') {
            unit = 1;
        } else if (*p == 'm') {
            unit = 60;
        } else if (*p == 'h') {
            unit = 3600;
        } else if (*p == 'd') {
            unit = 86400;
        } else {
            return -1;
        }
        p++;
        total += v * unit;
        if (total > (double)DURATION_MAX_S)
            total = (double)DURATION_MAX_S;
    }
    *back_us = (long long)(total * (double)US_PER_S);
    return 0;
}

int util_parse_since(const char *s, long long now_us, long long *out_us, char *err, size_t cap)
{
    if (!s || !*s) {
        snprintf(err, cap, "since: empty (give a time such as 2026-12-03T14:00:00Z or a duration such as 10m)");
        return -1;
    }
    if (strlen(s) > 64) {
        snprintf(err, cap, "since: \"%.32s...\" is longer than a time or duration can be", s);
        return -1;
    }
    int r = parse_rfc3339(s, out_us, err, cap);
    if (r)
        return r < 0 ? -1 : 0;
    long long back;
    if (parse_duration(s, &back) == 0) {
        *out_us = now_us > back ? now_us - back : 0;
        return 0;
    }
    /* A unix time in seconds, with an optional fraction (docker's form). */
    const char *p = s;
    long long secs = 0, frac_us = 0, scale = 100000;
    for (; isdigit((unsigned char)*p) && secs < 1000000000000LL; p++)
        secs = secs * 10 + (*p - '0');
    if (p != s && *p == '.' && isdigit((unsigned char)p[1]))
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
            frac_us += scale * (*p - '0');
    if (p != s && !*p && secs < 1000000000000LL) {
        *out_us = secs * US_PER_S + frac_us;
        return 0;
    }
    snprintf(err, cap,
             "since: \"%s\" is neither a time (2026-12-03T14:00:00Z, 2026-12-03, a unix time in seconds) nor a "
             "duration (90s, 10m, 1h30m, 2d)",
             s);
    return -1;
}

void util_format_us(long long unix_us, char *out, size_t cap)
{
    time_t t = (time_t)(unix_us / US_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, unix_us % US_PER_S);
}
