/* Loading a library on first use (dynlib.h): dlopen by soname, every symbol resolved
 * at once so a missing one fails the load rather than a call later, and an error a
 * person can act on (which library, what for, which package). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/dynlib.h"

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "function and data pointers differ in size");

/* Tests only: COCOON_TEST_DLOPEN_FAIL=SONAME[,SONAME...] makes those libraries count
 * as missing, so the error a host without them gets can be checked. */
static int denied_by_test(const char *soname)
{
    const char *v = getenv("COCOON_TEST_DLOPEN_FAIL");
    size_t n = strlen(soname);
    for (const char *p = v; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, soname, n) && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

static void set_failed(struct dynlib *lib, const char *why)
{
    snprintf(lib->error, sizeof(lib->error),
             "%s is needed for %s and cannot be loaded: %s (install the package %s, or your system's %s)", lib->soname,
             lib->needed, why, lib->package, lib->soname);
    lib->state = -1;
}

static void load_locked(struct dynlib *lib)
{
    if (denied_by_test(lib->soname)) {
        set_failed(lib, "refused by COCOON_TEST_DLOPEN_FAIL");
        return;
    }
    /* RTLD_LOCAL: its symbols reach cocoon through the slots only, and never preempt
     * another copy a host program may have loaded. */
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        set_failed(lib, e ? e : "dlopen failed");
        return;
    }
    for (size_t i = 0; i < lib->nsymbols; i++) {
        dlerror();
        void *addr = dlsym(h, lib->symbols[i].name);
        if (!addr) {
            char why[256];
            snprintf(why, sizeof(why), "it lacks %s (a version older than the one cocoon was built with?)",
                     lib->symbols[i].name);
            set_failed(lib, why);
            for (size_t j = 0; j < i; j++)
                memset(lib->symbols[j].slot, 0, sizeof(addr));
            dlclose(h);
            return;
        }
        /* The slot is a function pointer; memcpy stores a data pointer's bits there
         * without an aliasing cast (POSIX guarantees they have the same size). */
        memcpy(lib->symbols[i].slot, &addr, sizeof(addr));
    }
    lib->state = 1;
}

int dynlib_load(struct dynlib *lib, char *err, size_t errlen)
{
    pthread_mutex_lock(&lib->lock);
    if (lib->state == 0)
        load_locked(lib);
    int ok = lib->state > 0;
    if (!ok && errlen)
        snprintf(err, errlen, "%s", lib->error);
    pthread_mutex_unlock(&lib->lock);
    return ok ? 0 : -1;
}
