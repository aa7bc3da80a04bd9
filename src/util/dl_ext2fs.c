/* libext2fs's functions as the ext4 base writer uses them, loaded on first use
 * (dl_ext2fs.h). */
#include "util/dl_ext2fs.h"

DL_EXT2FS_SYMBOLS(DYNLIB_DEFINE)

static const struct dynlib_symbol symbols[] = {DL_EXT2FS_SYMBOLS(DYNLIB_ENTRY)};

/* libext2fs has kept the soname libext2fs.so.2 since e2fsprogs 1.x; error_message comes
 * from its dependency libcom_err.so.2, which dlsym finds through the handle. */
static struct dynlib libext2fs =
    DYNLIB_INIT("libext2fs.so.2", "writing an image's ext4 base (pull, load)", "libext2fs2", symbols);

int dl_ext2fs_load(char *err, size_t errlen) { return dynlib_load(&libext2fs, err, errlen); }
