/* libext2fs (and com_err's error_message), loaded on first use (dynlib.h): only the
 * writer of an image's ext4 base needs them. Call sym_NAME where the code would call
 * NAME, after dl_ext2fs_load succeeded; unix_io_manager is *sym_unix_io_manager. The
 * header's inline functions (ext2fs_set_feature_*, ext2fs_dirent_set_*) are compiled
 * in and need no pointer. */
#ifndef COCOON_UTIL_DL_EXT2FS_H
#define COCOON_UTIL_DL_EXT2FS_H

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <stddef.h>

#include "util/dynlib.h"

#define DL_EXT2FS_SYMBOLS(X)                                                                                           \
    X(error_message)                                                                                                   \
    X(ext2fs_add_journal_inode3)                                                                                       \
    X(ext2fs_allocate_tables)                                                                                          \
    X(ext2fs_bg_flags_set)                                                                                             \
    X(ext2fs_blocks_count_set)                                                                                         \
    X(ext2fs_bmap2)                                                                                                    \
    X(ext2fs_close_free)                                                                                               \
    X(ext2fs_create_resize_inode)                                                                                      \
    X(ext2fs_default_journal_size)                                                                                     \
    X(ext2fs_extent_free)                                                                                              \
    X(ext2fs_extent_open2)                                                                                             \
    X(ext2fs_file_close)                                                                                               \
    X(ext2fs_file_llseek)                                                                                              \
    X(ext2fs_file_open)                                                                                                \
    X(ext2fs_file_set_size2)                                                                                           \
    X(ext2fs_file_write)                                                                                               \
    X(ext2fs_free)                                                                                                     \
    X(ext2fs_get_journal_params)                                                                                       \
    X(ext2fs_group_desc_csum_set)                                                                                      \
    X(ext2fs_init_csum_seed)                                                                                           \
    X(ext2fs_initialize)                                                                                               \
    X(ext2fs_initialize_dirent_tail)                                                                                   \
    X(ext2fs_inode_alloc_stats2)                                                                                       \
    X(ext2fs_inode_size_set)                                                                                           \
    X(ext2fs_new_inode)                                                                                                \
    X(ext2fs_read_inode)                                                                                               \
    X(ext2fs_read_inode_full)                                                                                          \
    X(ext2fs_set_gdt_csum)                                                                                             \
    X(ext2fs_set_rec_len)                                                                                              \
    X(ext2fs_symlink)                                                                                                  \
    X(ext2fs_update_bb_inode)                                                                                          \
    X(ext2fs_write_dir_block4)                                                                                         \
    X(ext2fs_write_inode_full)                                                                                         \
    X(ext2fs_xattr_set)                                                                                                \
    X(ext2fs_xattrs_close)                                                                                             \
    X(ext2fs_xattrs_open)                                                                                              \
    X(ext2fs_xattrs_read)                                                                                              \
    X(unix_io_manager)

DL_EXT2FS_SYMBOLS(DYNLIB_DECLARE)

/* 0 once libext2fs is loaded; -1 with a message saying what to install. */
int dl_ext2fs_load(char *err, size_t errlen);

#endif
