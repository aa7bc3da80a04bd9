/* libcurl's functions as the registry client uses them, loaded on first use (dl_curl.h). */
#include "util/dl_curl.h"

DL_CURL_SYMBOLS(DYNLIB_DEFINE)

static const struct dynlib_symbol symbols[] = {DL_CURL_SYMBOLS(DYNLIB_ENTRY)};

/* libcurl has kept the soname libcurl.so.4 since 7.16 (2006). */
static struct dynlib libcurl = DYNLIB_INIT("libcurl.so.4", "pulling images from registries", "libcurl4", symbols);

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { sym_curl_global_init(CURL_GLOBAL_DEFAULT); }

int dl_curl_load(char *err, size_t errlen)
{
    if (dynlib_load(&libcurl, err, errlen) < 0)
        return -1;
    pthread_once(&global_once, global_init);
    return 0;
}
