/* Sizes written by people ("10G", "512m", "1.5GiB", "7"): one reader for the CLI's
 * --memory and --disk and the config file's memory and disk, so both accept the same. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

int util_parse_scaled(const char *s, int bare_unit, double *bytes)
{
    static const char *const units[] = {"b", "k", "m", "g", "t"};
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    int unit = *end ? -1 : bare_unit;
    for (int u = 0; u < 5 && unit < 0; u++) {
        size_t l = strlen(units[u]);
        if (!strncasecmp(end, units[u], l) &&
            (!end[l] || (u && (!strcasecmp(end + l, "b") || !strcasecmp(end + l, "ib")))))
            unit = u;
    }
    if (end == s || errno || unit < 0 || !isdigit((unsigned char)s[0]))
        return -1;
    *bytes = v;
    for (int u = 0; u < unit; u++)
        *bytes *= 1024;
    return unit;
}
