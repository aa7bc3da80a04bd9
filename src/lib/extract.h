/* Extraction on the host of a tree a guest sends (cocoon_copy_from_box): the policy
 * that keeps a hostile guest inside the one name the user asked for, bounded in bytes
 * and entries, with the caller's ownership and umask, and all-or-nothing on disk. */
#ifndef COCOON_LIB_EXTRACT_H
#define COCOON_LIB_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "cocoon.h"
#include "lib/tar_policy.h"
#include "lib/tar_reader.h"

#define EXTRACT_MAX_DEPTH TAR_POLICY_MAX_DEPTH /* path components below the destination */
#define EXTRACT_STAGE_PREFIX ".cocoon-cp-"

struct extract_job {
    const char *dest_dir;   /* an existing directory, as a real path */
    const char *top;        /* the name every entry must start with (the guest path's last component) */
    const char *final_name; /* what the copy is called in dest_dir (top, or the new name) */
    uint64_t max_bytes;     /* sum of the files' sizes (a sparse file counts its full size) */
    uint64_t max_entries;   /* entries of any kind in the stream */
    const char *bytes_knob; /* what raises each bound, for messages ("COCOON_CP_MAX_BYTES") */
    const char *entries_knob;
    /* Called once the whole archive was read, before anything is moved into place:
     * -1 (err set) abandons the copy. May be NULL. */
    int (*confirm)(void *arg);
    void *confirm_arg;
};

struct extract_stats {
    uint64_t entries, bytes;
};

/* Reads the whole archive from r and puts it at dest_dir/final_name. The tree is built
 * in a private directory dest_dir/.cocoon-cp-XXXXXX and moved into place only once the
 * archive was read to its end without error: a failure leaves the destination as it
 * was. An existing file or symlink at the destination is replaced (by rename, never
 * written through); an existing directory receives the tree's entries the same way.
 * Returns 0 with skipped entries described in warnings (one per line), or -1 with err
 * set: COCOON_E_PROTOCOL for a stream no honest agent sends, COCOON_E_INVALID when a
 * bound was hit, COCOON_E_IO for host failures. When r's read callback failed, err is
 * left as the callback's owner set it. */
int extract_tar(struct tar_reader *r, const struct extract_job *job, char *warnings, size_t wcap,
                struct extract_stats *stats, cocoon_error *err);

#endif
