/* Native qcow2 images: create, open a backing chain, read, write with cluster
 * allocation and consistent refcounts, flush, check. The files stay readable by QEMU
 * and clean under `qemu-img check`; see docs/interop/qcow2 in QEMU for the format. */
#ifndef COCOON_QCOW2_H
#define COCOON_QCOW2_H

#include <stddef.h>
#include <stdint.h>

/* Every function returning int gives 0 on success or a negative errno:
 *   -EINVAL   bad argument (offset past the disk end, bad cluster_bits, ...)
 *   -EUCLEAN  the image is corrupt (bad header field, bad L1/L2/refcount entry)
 *   -ENOTSUP  a valid image using a feature we do not implement
 *   -EIO etc. the system call's errno
 * and, when err is not NULL, a one-line message a person can act on in err. */

#define QCOW2_MAX_CHAIN 16 /* backing images below the top one */

struct qcow2;

/* Creates a new version-3 image at path (refused if path already exists).
 * virtual_size is rounded up to 512 bytes; 0 with a backing file takes the backing
 * file's size. backing may be NULL; it is stored as an absolute path.
 * backing_fmt is "raw", "qcow2" or NULL (probed from the file's magic).
 * cluster_bits 0 means 16 (64 KiB clusters); else 9..21. */
int qcow2_create(const char *path, uint64_t virtual_size, const char *backing, const char *backing_fmt,
                 int cluster_bits, char *err, size_t errlen);

/* Opens an image and its backing chain (backing files always read-only).
 * NULL on failure, with the reason in err. */
struct qcow2 *qcow2_open(const char *path, int writable, char *err, size_t errlen);

/* Opens the image on fd (writable; the fd is the image's from here on, closed on
 * failure too), named name in messages, on top of the open chain `below`, which becomes
 * its backing image: flushed first, read-only after. The header of the new image must
 * name a qcow2 backing file (which file it names is not opened: `below` is used) and
 * have the same virtual size. On
 * failure `below` is untouched and still the caller's. A live disk snapshot's switch to a
 * new layer, where the process cannot open files by name. */
struct qcow2 *qcow2_open_over(int fd, const char *name, struct qcow2 *below, char *err, size_t errlen);

/* Byte-granular I/O inside [0, virtual size). Calls on one handle are serialized by
 * an internal lock, so several threads may share it. */
int qcow2_read(struct qcow2 *q, uint64_t offset, void *buf, size_t len, char *err, size_t errlen);
int qcow2_write(struct qcow2 *q, uint64_t offset, const void *buf, size_t len, char *err, size_t errlen);
/* Makes the range read as zeros (zero-flagged clusters where whole clusters are
 * covered, written zeros at the edges). Space is not returned to the host. */
int qcow2_discard(struct qcow2 *q, uint64_t offset, uint64_t len, char *err, size_t errlen);
/* Writes cached metadata in a crash-safe order and makes everything durable:
 * data and refcounts, then L2 tables, then the L1 table, with fdatasync between. */
int qcow2_flush(struct qcow2 *q, char *err, size_t errlen);
/* Flushes (when writable) and frees. The handle is gone even when this fails. */
int qcow2_close(struct qcow2 *q, char *err, size_t errlen);

uint64_t qcow2_virtual_size(const struct qcow2 *q);
uint32_t qcow2_cluster_size(const struct qcow2 *q);
/* The files below this one, nearest first, as they were opened (at most max). */
int qcow2_chain_paths(const struct qcow2 *q, const char **paths, int max);
/* Number of images below this one (0: no backing file). */
int qcow2_chain_depth(const struct qcow2 *q);

/* What qcow2_check found, in the spirit of `qemu-img check`. */
struct qcow2_check_result {
    uint64_t corruptions;    /* refcount lower than the references, bad entries */
    uint64_t leaks;          /* refcount higher than the references */
    uint64_t allocated;      /* guest clusters with data in this image */
    uint64_t mapped;         /* L2 entries that are not empty (data, zero-flagged or compressed): with none,
                                every read falls through to the backing file */
    uint64_t total_clusters; /* guest clusters in the virtual disk */
    uint64_t image_end;      /* end of the last used host cluster */
    int skipped;             /* 1 when internal snapshots/bitmaps were not walked */
};

/* Walks the L1/L2 tables and compares the refcounts on disk with the references
 * found. Flushes first. Returns 0 when the walk completed (look at the counts), and
 * describes the first problem found in err. */
int qcow2_check(struct qcow2 *q, struct qcow2_check_result *res, char *err, size_t errlen);

/* What qcow2_merge wrote. */
struct qcow2_merge_result {
    unsigned layers;        /* images merged, top included */
    uint64_t data_clusters; /* clusters copied with their data */
    uint64_t zero_clusters; /* zero-flagged clusters (zeros over a base that may hold data) */
};

/* Writes the guest view of top and the `levels` qcow2 images below it into a new image
 * at out (refused if out exists; the caller removes it on failure), whose backing file
 * is the one below them (none when they are the whole chain), in the same format.
 * Clusters no merged image maps are left out (the base shows through, as before);
 * zeros over a base become zero-flagged clusters. The merged images must share one
 * cluster size. out is flushed and closed. */
int qcow2_merge(struct qcow2 *top, int levels, const char *out, struct qcow2_merge_result *res, char *err,
                size_t errlen);

#endif
