/* Forks of running boxes (cocoon.h "forks"): one live capture of the box, disk and
 * memory (snapshot.c, monitor/livesnap.c), then clones of that snapshot (clone.c), each
 * given a link to the saved memory so that its monitor starts the VMM from it (QEMU's
 * `-incoming`, or the kvm VMM's restore, src/kvm/snapfile.h) instead of booting. A kill leaves whole boxes or none:
 * clones are made as clone.c makes them, and a clone whose start did not happen is a stopped box whose next start is a
 * cold boot from its disk. */
#include "lib/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/snapshot.h"
#include "monitor/livesnap.h"
#include "util/util.h"

void cocoon_fork_options_init(cocoon_fork_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

int cocoon_box_fork(cocoon_box *box, const cocoon_fork_options *opts, char (*ids)[16], char snapshot[16],
                    cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_fork: NULL box");
    cocoon_fork_options o;
    if (LIB_OPTIONS(cocoon_fork_options, o, opts, err) < 0)
        return -1;
    unsigned count = o.count ? o.count : 1;
    if (count > COCOON_FORK_MAX)
        return lib_err(err, COCOON_E_INVALID, "cannot fork %u children at once: at most %d", count, COCOON_FORK_MAX);
    if (box->problem[0])
        return lib_err(err, COCOON_E_STATE, "box %s cannot be forked: %s", box->id, box->problem);
    struct snap_record r;
    if (lib_snap_create_live(box, 1, &r, err) < 0)
        return -1;
    util_test_point("FORK_CAPTURED");
    if (snapshot)
        snprintf(snapshot, 16, "%s", r.id);
    char prefix[BOX_NAME_MAX];
    snprintf(prefix, sizeof(prefix), "%.50s-fork", r.name);
    cocoon_clone_options co;
    cocoon_clone_options_init(&co);
    co.count = count;
    co.name = o.name && *o.name ? o.name : prefix;
    char(*made)[16] = calloc(count, sizeof(*made));
    if (!made)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (cocoon_box_clone(box->rt, r.id, &co, made, NULL, err) < 0) {
        free(made);
        return -1;
    }
    if (ids)
        memcpy(ids, made, count * sizeof(*made));
    char mem[LIB_PATH_MAX];
    if (lib_snap_path(box->rt, r.id, LIB_SNAP_MEMORY, mem, sizeof(mem)) < 0) {
        free(made);
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    }
    unsigned failed = 0;
    char first_failure[512] = "";
    for (unsigned i = 0; i < count; i++) {
        cocoon_box *child = NULL;
        cocoon_error cerr;
        char link_path[LIB_PATH_MAX];
        int rc = cocoon_box_open(box->rt, made[i], &child, &cerr);
        if (rc == 0 && (lib_path(link_path, sizeof(link_path), "%s/" LIVESNAP_RESTORE, child->dir) < 0 ||
                        link(mem, link_path) < 0))
            rc = lib_err(&cerr, COCOON_E_IO, "cannot link the memory snapshot into box %s: %s", made[i],
                         strerror(errno));
        util_test_point("FORK_CHILD");
        if (rc == 0)
            rc = cocoon_box_start_flags(child, COCOON_START_DETACHED, &cerr);
        if (rc < 0) {
            failed++;
            if (!first_failure[0])
                snprintf(first_failure, sizeof(first_failure), "box %s: %.480s", made[i], cerr.message);
        }
        if (child)
            cocoon_box_close(child);
    }
    free(made);
    if (failed)
        return lib_err(err, COCOON_E_VMM,
                       "%u of %u children did not start from the capture (they stay as stopped "
                       "boxes; a start boots them cold): %s",
                       failed, count, first_failure);
    return 0;
}
