/* The ABI rule of every public options struct (cocoon.h): its first field is the size
 * the caller's header gave it. The library reads the fields that fit in that size,
 * keeps its defaults for the rest, and refuses fields it does not know about when the
 * caller set them (rather than ignoring what was asked). */
#include "lib/internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lib_options_copy(void *dst, size_t dst_size, const void *src, const char *type, cocoon_error *err)
{
    if (!src)
        return 0; /* NULL: the defaults the caller's _init left in dst */
    size_t caller;
    memcpy(&caller, src, sizeof(caller));
    if (caller < sizeof(caller))
        return lib_err(err, COCOON_E_INVALID,
                       "%s.size is %zu: fill the struct with %s_init() before setting its fields", type, caller, type);
    if (caller > LIB_OPTIONS_MAX_SIZE)
        return lib_err(err, COCOON_E_INVALID, "%s.size is %zu, which no version of %s has: was it initialised?", type,
                       caller, type);
    const unsigned char *bytes = src;
    for (size_t i = dst_size; i < caller; i++)
        if (bytes[i])
            return lib_err(err, COCOON_E_UNSUPPORTED,
                           "the program sets %s fields this libcocoon (%s) does not know (the program's struct "
                           "has %zu bytes, this library's %zu): run it with the libcocoon it was built against",
                           type, cocoon_version(), caller, dst_size);
    memcpy((char *)dst + sizeof(caller), bytes + sizeof(caller),
           (caller < dst_size ? caller : dst_size) - sizeof(caller));
    return 0;
}

int lib_status_get(void *st, size_t full_size, const char *type, lib_status_fill_fn fill, cocoon_box *box,
                   cocoon_error *err)
{
    size_t caller;
    memcpy(&caller, st, sizeof(caller));
    if (caller == 0 || caller > LIB_OPTIONS_MAX_SIZE)
        return lib_err(err, COCOON_E_INVALID, "%s: set its size with %s_init", type, type);
    void *full = calloc(1, full_size);
    if (!full)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    int dirfd = lib_box_dirfd(box, err);
    int rc = dirfd < 0 ? -1 : fill(box, dirfd, full, err);
    if (dirfd >= 0)
        close(dirfd);
    if (rc == 0) {
        memcpy(full, &caller, sizeof(caller));
        memcpy(st, full, caller < full_size ? caller : full_size);
    }
    free(full);
    return rc;
}
