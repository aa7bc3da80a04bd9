/* Archives that cross a box's boundary as streams (tarstream.c), checked entry by entry
 * and written again by a libarchive writer the caller opened, so the far side only ever
 * receives archives cocoon wrote: a caller's archive going into a box (tarfilter_in.c:
 * the common tar dialects, read by libarchive) and a guest's archive going out to a
 * caller (tarfilter_out.c: the agent's dialect, read by tar_reader). The rules are those
 * of tar_policy.h; both filters keep fixed memory plus 16 to 32 bytes per name they
 * record. */
#ifndef COCOON_LIB_TARFILTER_H
#define COCOON_LIB_TARFILTER_H

#include <stddef.h>
#include <stdint.h>

#include "cocoon.h"
#include "lib/tar_reader.h"

struct archive;

#define TARFILTER_HEADER_MAX (8u << 20)  /* input bytes one entry's headers may take (pax, long names, sparse maps) */
#define TARFILTER_TRAILER_MAX (1u << 20) /* input bytes read after the end of the archive (block padding) */
#define TARFILTER_SEGMENTS_MAX 4096u     /* data regions kept of a sparse file; more are sent as data */

struct tarfilter_limits {
    uint64_t max_bytes;     /* sum of the files' sizes (a sparse file counts its full size) */
    uint64_t max_entries;   /* entries of any kind */
    const char *bytes_knob; /* what raises each bound, for messages */
    const char *entries_knob;
};

enum tarfilter_result {
    TARFILTER_OK = 0,
    TARFILTER_REFUSED = -1,       /* the input broke a rule or a bound, or memory ran out: err says which */
    TARFILTER_SOURCE_FAILED = -2, /* the read callback failed: err is left as its owner set it */
    TARFILTER_SINK_FAILED = -3,   /* the writer failed (the far side stopped taking the archive) */
};

struct tarfilter_stats {
    uint64_t entries, bytes;
};

/* A caller's archive (tar: ustar, pax, GNU, v7; not compressed) read from read(arg)
 * going into the directory the archive is extracted in: every entry passes or the whole
 * archive is refused (COCOON_E_INVALID, naming the entry), except what is skipped with a
 * warning. Names must be relative without ".." ("." entries are dropped), hard links
 * must name a file earlier in the archive, no entry may lie under a symlink of the
 * archive; a symlink pointing outside the directory (absolute, or ".." above it) and
 * devices, FIFOs and sockets are skipped with a warning; the archive must end with its
 * end-of-archive block. Modes keep 07777, ownership is dropped. The writer is not
 * closed: on TARFILTER_OK the caller ends the archive once it decided to. */
int tarfilter_in(tar_read_fn read, void *arg, struct archive *w, const struct tarfilter_limits *lim, char *warnings,
                 size_t wcap, struct tarfilter_stats *stats, cocoon_error *err);

/* A guest's archive of the object whose last component is top (NULL: whatever single
 * name the guest sends first, when it resolved a symlink itself) read from r, written
 * under the name out_top. The rules of cocoon_copy_from_box (extract.c): every entry
 * under top, depth-first, each name once, symlinks pointing outside the tree skipped
 * with a warning (a top-level one refused), hard links only to files already sent,
 * devices and FIFOs skipped; setuid, setgid and sticky bits dropped, directories keep
 * u+rwx, ownership 0. Refusals are COCOON_E_PROTOCOL (a stream no honest agent sends) or
 * COCOON_E_INVALID (a bound). Nothing is written to w before the top entry arrived and
 * passed. The writer is not closed (the caller first hears the guest's verdict). */
int tarfilter_out(struct tar_reader *r, const char *top, const char *out_top, struct archive *w,
                  const struct tarfilter_limits *lim, char *warnings, size_t wcap, struct tarfilter_stats *stats,
                  cocoon_error *err);

#endif
