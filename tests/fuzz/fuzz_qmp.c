/* Fuzz target: a line from QEMU's QMP socket through qmp_parse_line (src/monitor/qmp.c).
 * QEMU is less trusted than the monitor: any bytes are refused or parsed into one of
 * the four shapes; an error's message is printable and bounded; a return value is a
 * reference the caller owns. A crash, a leak or a sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *ret = NULL;
    long long id;
    char msg[128];
    enum qmp_kind k = qmp_parse_line((const char *)data, size, &ret, &id, msg, sizeof(msg));
    if (k < QMP_BAD || k > QMP_EVENT)
        abort();
    if ((k == QMP_RETURN) != (ret != NULL))
        abort();
    if (id < -1 || strlen(msg) >= sizeof(msg))
        abort();
    for (const char *c = msg; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            abort();
    json_decref(ret);
    return 0;
}
