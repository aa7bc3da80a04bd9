/* libcurl, loaded on first use (dynlib.h): call sym_curl_NAME where the code would
 * call curl_NAME, after dl_curl_load succeeded (it also runs curl_global_init once). */
#ifndef COCOON_UTIL_DL_CURL_H
#define COCOON_UTIL_DL_CURL_H

#include <curl/curl.h>
#include <stddef.h>

#include "util/dynlib.h"

#define DL_CURL_SYMBOLS(X)                                                                                             \
    X(curl_easy_cleanup)                                                                                               \
    X(curl_easy_escape)                                                                                                \
    X(curl_easy_init)                                                                                                  \
    X(curl_easy_perform)                                                                                               \
    X(curl_easy_reset)                                                                                                 \
    X(curl_easy_setopt)                                                                                                \
    X(curl_easy_strerror)                                                                                              \
    X(curl_free)                                                                                                       \
    X(curl_global_init)                                                                                                \
    X(curl_slist_append)                                                                                               \
    X(curl_slist_free_all)

DL_CURL_SYMBOLS(DYNLIB_DECLARE)

/* 0 once libcurl is loaded and initialised; -1 with a message saying what to install. */
int dl_curl_load(char *err, size_t errlen);

#endif
