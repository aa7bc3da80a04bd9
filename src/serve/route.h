/* The API's routing table as a pure function: a method and a decoded path in, the route
 * and its parameters out. No I/O, so the fuzzer drives it directly. */
#ifndef COCOON_SERVE_ROUTE_H
#define COCOON_SERVE_ROUTE_H

#include <stddef.h>

enum route_id {
    R_NONE = 0,
    R_CONFIG,
    R_ME,
    R_OPENAPI,
    R_HEALTH,
    R_METRICS,
    R_BOXES,                /* GET list, POST create */
    R_BOX,                  /* GET, HEAD, DELETE */
    R_BOX_START,            /* POST */
    R_BOX_STOP,             /* POST */
    R_BOX_EXEC,             /* POST */
    R_BOX_RUN,              /* POST: run to completion */
    R_BOX_EXECS,            /* GET */
    R_EXEC,                 /* GET, DELETE */
    R_EXEC_SIGNAL,          /* POST */
    R_EXEC_RESIZE,          /* POST */
    R_EXEC_STDIN,           /* POST */
    R_EXEC_ATTACH,          /* GET (WebSocket) */
    R_EXEC_OUTPUT,          /* GET (NDJSON) */
    R_FILES,                /* GET, PUT */
    R_BOX_METRICS,          /* GET */
    R_BOX_LOGS,             /* GET */
    R_NET_LOGS,             /* GET */
    R_NET_STATS,            /* GET */
    R_IMAGES,               /* GET */
    R_IMAGE_PULL,           /* POST */
    R_IMAGE_LOAD,           /* POST */
    R_IMAGE,                /* GET, HEAD, DELETE */
    R_FS_STAT,              /* GET */
    R_FS_LIST,              /* GET */
    R_FS_MKDIR,             /* POST */
    R_FS_REMOVE,            /* POST */
    R_FS_MOVE,              /* POST */
    R_SNAPSHOTS,            /* GET list, POST create */
    R_SNAPSHOT,             /* GET, DELETE */
    R_SNAPSHOT_RESTORE,     /* POST */
    R_DETACH_NEW,           /* POST: a detached exec the box's monitor runs (mainproc.c) */
    R_DETACH,               /* GET, DELETE */
    R_DETACH_LOGS,          /* GET */
    R_MCP,                  /* POST, DELETE: the MCP server (Streamable HTTP), outside /v1 */
    R_BOX_WAIT,             /* POST: blocks until the box's main process ends, or it is healthy or runs */
    R_CODE,                 /* POST: a code-interpreter run (NDJSON) */
    R_CODE_CONTEXTS,        /* GET list, POST create */
    R_CODE_CONTEXT,         /* DELETE (the context id is in route.exec) */
    R_CODE_CONTEXT_RESTART, /* POST */
    R_BOX_ATTACH,           /* GET (WebSocket): the box's main process (mainattach.c) */
    R_BOX_CLONE,            /* POST: a new box over a snapshot of this one (boxcopy.c) */
    R_BOX_FORK,             /* POST: new running boxes from a capture of this running one (boxcopy.c) */
    R_BOX_EXPORT,           /* POST: the box (or one of its snapshots) as an archive */
    R_BOX_IMPORT,           /* POST /v1/boxes/import: a new box from an archive (no box parameter) */
    R_BOX_COMPACT,          /* POST: the box's disk layers merged into one (snapshots.c) */
};

enum route_method { M_GET = 1, M_HEAD = 2, M_POST = 4, M_PUT = 8, M_DELETE = 16, M_OTHER = 32 };

#define ROUTE_ID_MAX 128   /* box names are at most 64 characters; ids 12 */
#define ROUTE_REF_MAX 1024 /* image references */

struct route {
    enum route_id id;
    unsigned allowed; /* methods the route takes (an Allow header on 405) */
    char box[ROUTE_ID_MAX];
    char exec[ROUTE_ID_MAX];
    char snapshot[ROUTE_ID_MAX];
    char image[ROUTE_REF_MAX];
};

enum route_method route_method(const char *method);
/* 0 with *out filled: the route exists and takes method. -1: out->id == R_NONE (404) or
 * the route exists but not for that method (405: out->allowed says which). */
int route_match(enum route_method method, const char *path, struct route *out);
/* "GET, HEAD" for an Allow header. */
void route_allow_text(unsigned allowed, char *out, size_t cap);

#endif
