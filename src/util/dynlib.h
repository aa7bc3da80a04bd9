/* Libraries loaded on first use (dlopen) instead of at program start: libcurl,
 * libarchive and libext2fs with their TLS, Kerberos, LDAP, XML and ICU dependencies cost
 * a short CLI command ~15 ms of loading, yet only pulls, loads and file copies need them. */
#ifndef COCOON_UTIL_DYNLIB_H
#define COCOON_UTIL_DYNLIB_H

#include <pthread.h>
#include <stddef.h>

/* One function of the library: its name and where its address goes. */
struct dynlib_symbol {
    const char *name;
    void *slot; /* a function pointer variable (sym_NAME), filled by dynlib_load */
};

struct dynlib {
    const char *soname;  /* "libarchive.so.13": the ABI the code was built against */
    const char *needed;  /* what for, in an error: "tar archives (cp, image load and unpack)" */
    const char *package; /* the Debian package that ships soname */
    const struct dynlib_symbol *symbols;
    size_t nsymbols;
    /* state, set once */
    pthread_mutex_t lock;
    int state; /* 0 not tried, 1 loaded, -1 failed (error says why) */
    char error[512];
};

#define DYNLIB_INIT(soname_, needed_, package_, symbols_)                                                              \
    {                                                                                                                  \
        .soname = (soname_), .needed = (needed_), .package = (package_), .symbols = (symbols_),                        \
        .nsymbols = sizeof(symbols_) / sizeof((symbols_)[0]), .lock = PTHREAD_MUTEX_INITIALIZER                        \
    }

/* Loads the library and fills every symbol's slot, the first time; later calls return
 * the first outcome. 0, or -1 with a message naming the library, what needs it and the
 * package to install. Thread-safe: after 0, the slots may be read from any thread that
 * called this (or received an object made after such a call). The library stays loaded
 * for the life of the process. */
int dynlib_load(struct dynlib *lib, char *err, size_t errlen);

/* The X-macro helpers each library's table uses (see dl_archive.h): NAME's pointer is
 * sym_NAME, with NAME's own prototype from the library's header. */
#define DYNLIB_DECLARE(name) extern __typeof__(name) *sym_##name;
#define DYNLIB_DEFINE(name) __typeof__(name) *sym_##name;
#define DYNLIB_ENTRY(name) {#name, &sym_##name},

#endif
