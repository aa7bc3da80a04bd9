/* A bounded, streaming reader of the tar dialect cocoon-agent writes for FILE_GET
 * (docs/protocol.md "File streams"): ustar headers, pax extended headers, GNU sparse
 * 1.0. The stream comes from the guest, so nothing in it is trusted: every name, number
 * and map is checked, and the reader keeps a fixed amount of memory whatever it says. */
#ifndef COCOON_LIB_TAR_READER_H
#define COCOON_LIB_TAR_READER_H

#include <stddef.h>
#include <stdint.h>

#define TAR_NAME_MAX 4095u         /* bytes of a path or link target */
#define TAR_PAX_MAX (64u * 1024u)  /* bytes of one extended header */
#define TAR_SEGMENTS_MAX 4096u     /* data regions of a sparse file (the agent's own bound) */
#define TAR_FILE_MAX (1ull << 50)  /* bytes one file may claim (1 PiB): keeps offsets in range */
#define TAR_IN_CHUNK (64u * 1024u) /* input read at once */

enum tar_type { TAR_FILE, TAR_DIR, TAR_SYMLINK, TAR_HARDLINK, TAR_SPECIAL };

struct tar_entry {
    enum tar_type type;
    char typeflag;               /* as in the header (TAR_SPECIAL: '3', '4' or '6') */
    char path[TAR_NAME_MAX + 1]; /* as sent: not yet checked for "..", "/"... */
    char link[TAR_NAME_MAX + 1]; /* symlink target or hard link target */
    uint32_t mode;               /* permission bits as sent (07777) */
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint64_t size; /* TAR_FILE: its size (a sparse file's full size); others 0 */
};

/* Fills buf with up to cap bytes: their count, 0 at the end of the stream, -1 on error
 * (the callback keeps its own message). */
typedef long (*tar_read_fn)(void *arg, void *buf, size_t cap);

struct tar_segment {
    uint64_t off, len;
};

struct tar_reader {
    tar_read_fn read;
    void *arg;
    uint8_t *in; /* TAR_IN_CHUNK */
    size_t in_off, in_len;
    char *pax;               /* TAR_PAX_MAX + 1 */
    struct tar_segment *seg; /* TAR_SEGMENTS_MAX */
    size_t nseg, cur_seg;
    uint64_t seg_done;  /* bytes of seg[cur_seg] delivered */
    uint64_t data_left; /* data bytes of the current entry not yet consumed */
    uint64_t pad;       /* padding after them */
    int in_entry, ended, failed;
    int source_failed; /* the read callback failed: its message is the one to show */
    char err[320];
};

int tar_reader_init(struct tar_reader *r, tar_read_fn read, void *arg);
void tar_reader_free(struct tar_reader *r);
/* The next entry (data of the previous one not read is skipped): 1, 0 at the end of the
 * archive, -1 on error with r->err set. */
int tar_next(struct tar_reader *r, struct tar_entry *e);
/* The next piece of the current TAR_FILE's data, *off its offset in the file (pieces
 * come in increasing order; gaps are holes): 1, 0 at the end of the data, -1 on error. */
int tar_data(struct tar_reader *r, const void **data, size_t *len, uint64_t *off);

#endif
