/* The rules every archive that crosses a box's boundary is held to, shared by the
 * host's extraction of a guest's tree (extract.c) and the archives streamed in and out
 * of a box (tarfilter_in.c, tarfilter_out.c): names as clean relative paths (no "/" at
 * the start, no ".."), symlinks that stay inside the tree they arrive in, and a record
 * of the names an archive already brought (tar_book), in bounded memory. */
#ifndef COCOON_LIB_TAR_POLICY_H
#define COCOON_LIB_TAR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define TAR_POLICY_MAX_DEPTH 260u /* components of a name (the agent sends at most 257) */

enum tar_name_verdict {
    TAR_NAME_OK = 0,
    TAR_NAME_ABSOLUTE, /* starts with "/" */
    TAR_NAME_DOTDOT,   /* has a ".." component */
    TAR_NAME_TOO_LONG, /* does not fit in the caller's buffer */
    TAR_NAME_TOO_DEEP, /* more than TAR_POLICY_MAX_DEPTH components */
};

/* name without "." and empty components, joined by single "/" into out (cap bytes),
 * with its number of components in *ncomp (0: the name is "." or "/"-less empty, the
 * place the archive is extracted into). */
enum tar_name_verdict tar_name_clean(const char *name, char *out, size_t cap, size_t *ncomp);
/* What a verdict other than TAR_NAME_OK means, for messages ("is absolute"...). */
const char *tar_name_problem(enum tar_name_verdict v);

/* 1 when a symlink with this target, followed from a link whose directory is `depth`
 * levels below the top of its tree (-1: the link is the top), stays inside the tree.
 * Absolute targets never do; ".." may only lead the target (after a normal component
 * it could climb back through another symlink of the tree) and not above the top. */
int tar_link_stays_inside(const char *target, long depth);

/* The names an archive brought so far, each with what it was: a keyed 64-bit hash
 * (util_siphash, random key per book) per name in an open-addressing table at most half
 * full, so memory is 16 to 32 bytes per recorded name whatever the names' lengths. Two
 * names of one archive share a hash (61 bits of it kept) with a probability of about
 * n^2 / 2^62 (2e-7 for a million names): a name may then pass for another, never make
 * memory grow. */
enum tar_kind { TAR_KIND_NONE = 0, TAR_KIND_DIR, TAR_KIND_FILE, TAR_KIND_SYMLINK, TAR_KIND_OTHER };
struct tar_book {
    uint8_t key[16];
    uint64_t *slots; /* hash with its kind in the low 3 bits; 0: empty */
    size_t cap, used;
};
/* 0, or -1 when no random key can be had. */
int tar_book_init(struct tar_book *b);
void tar_book_free(struct tar_book *b);
/* What name (len bytes) was recorded as, TAR_KIND_NONE when it was not. */
enum tar_kind tar_book_get(const struct tar_book *b, const char *name, size_t len);
/* Records name as kind (replacing what it was): 0, or -1 out of memory. */
int tar_book_put(struct tar_book *b, const char *name, size_t len, enum tar_kind kind);

#endif
