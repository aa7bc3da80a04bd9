/* libarchive, loaded on first use (dynlib.h): call sym_archive_NAME where the code
 * would call archive_NAME, after dl_archive_load succeeded. Only the objects the
 * library makes need the load first: a struct archive or archive_entry exists only
 * once it has happened, so functions taking one need no check of their own. */
#ifndef COCOON_UTIL_DL_ARCHIVE_H
#define COCOON_UTIL_DL_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>

#include "util/dynlib.h"

#define DL_ARCHIVE_SYMBOLS(X)                                                                                          \
    X(archive_entry_clear)                                                                                             \
    X(archive_entry_copy_hardlink)                                                                                     \
    X(archive_entry_copy_pathname)                                                                                     \
    X(archive_entry_copy_symlink)                                                                                      \
    X(archive_entry_filetype)                                                                                          \
    X(archive_entry_free)                                                                                              \
    X(archive_entry_gid)                                                                                               \
    X(archive_entry_hardlink)                                                                                          \
    X(archive_entry_hardlink_utf8)                                                                                     \
    X(archive_entry_mtime)                                                                                             \
    X(archive_entry_mtime_is_set)                                                                                      \
    X(archive_entry_mtime_nsec)                                                                                        \
    X(archive_entry_new)                                                                                               \
    X(archive_entry_pathname)                                                                                          \
    X(archive_entry_pathname_utf8)                                                                                     \
    X(archive_entry_perm)                                                                                              \
    X(archive_entry_rdevmajor)                                                                                         \
    X(archive_entry_rdevminor)                                                                                         \
    X(archive_entry_set_filetype)                                                                                      \
    X(archive_entry_set_gname)                                                                                         \
    X(archive_entry_set_mtime)                                                                                         \
    X(archive_entry_set_pathname)                                                                                      \
    X(archive_entry_set_perm)                                                                                          \
    X(archive_entry_set_size)                                                                                          \
    X(archive_entry_set_uname)                                                                                         \
    X(archive_entry_size)                                                                                              \
    X(archive_entry_size_is_set)                                                                                       \
    X(archive_entry_sparse_add_entry)                                                                                  \
    X(archive_entry_sparse_next)                                                                                       \
    X(archive_entry_sparse_reset)                                                                                      \
    X(archive_entry_symlink)                                                                                           \
    X(archive_entry_symlink_utf8)                                                                                      \
    X(archive_entry_uid)                                                                                               \
    X(archive_entry_unset_atime)                                                                                       \
    X(archive_entry_unset_birthtime)                                                                                   \
    X(archive_entry_unset_ctime)                                                                                       \
    X(archive_entry_xattr_next)                                                                                        \
    X(archive_entry_xattr_reset)                                                                                       \
    X(archive_error_string)                                                                                            \
    X(archive_filter_bytes)                                                                                            \
    X(archive_filter_count)                                                                                            \
    X(archive_read_data)                                                                                               \
    X(archive_read_data_block)                                                                                         \
    X(archive_read_data_skip)                                                                                          \
    X(archive_read_disk_descend)                                                                                       \
    X(archive_read_disk_new)                                                                                           \
    X(archive_read_disk_open)                                                                                          \
    X(archive_read_disk_set_behavior)                                                                                  \
    X(archive_read_disk_set_symlink_physical)                                                                          \
    X(archive_read_free)                                                                                               \
    X(archive_read_new)                                                                                                \
    X(archive_read_next_header)                                                                                        \
    X(archive_read_next_header2)                                                                                       \
    X(archive_read_open)                                                                                               \
    X(archive_read_open_fd)                                                                                            \
    X(archive_read_open_filename)                                                                                      \
    X(archive_read_support_filter_all)                                                                                 \
    X(archive_read_support_filter_bzip2)                                                                               \
    X(archive_read_support_filter_gzip)                                                                                \
    X(archive_read_support_filter_xz)                                                                                  \
    X(archive_read_support_filter_zstd)                                                                                \
    X(archive_read_support_format_tar)                                                                                 \
    X(archive_set_error)                                                                                               \
    X(archive_write_add_filter_zstd)                                                                                   \
    X(archive_write_close)                                                                                             \
    X(archive_write_data)                                                                                              \
    X(archive_write_finish_entry)                                                                                      \
    X(archive_write_free)                                                                                              \
    X(archive_write_header)                                                                                            \
    X(archive_write_new)                                                                                               \
    X(archive_write_open)                                                                                              \
    X(archive_write_open_fd)                                                                                           \
    X(archive_write_set_bytes_in_last_block)                                                                           \
    X(archive_write_set_bytes_per_block)                                                                               \
    X(archive_write_set_filter_option)                                                                                 \
    X(archive_write_set_format_pax)

DL_ARCHIVE_SYMBOLS(DYNLIB_DECLARE)

/* 0 once libarchive is loaded; -1 with a message saying what to install. */
int dl_archive_load(char *err, size_t errlen);

#endif
