/* libarchive's functions as cocoon uses them, loaded on first use (dl_archive.h). */
#include "util/dl_archive.h"

DL_ARCHIVE_SYMBOLS(DYNLIB_DEFINE)

static const struct dynlib_symbol symbols[] = {DL_ARCHIVE_SYMBOLS(DYNLIB_ENTRY)};

/* libarchive 3.x has kept the soname libarchive.so.13 since 3.0 (2011). */
static struct dynlib libarchive = DYNLIB_INIT(
    "libarchive.so.13", "tar archives (cp, file transfers, image load and unpack)", "libarchive13", symbols);

int dl_archive_load(char *err, size_t errlen) { return dynlib_load(&libarchive, err, errlen); }
