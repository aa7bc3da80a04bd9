/* File transfer: FILE_PUT and FILE_GET streams (docs/protocol.md, "Files"). Each runs
 * in a forked child of the agent (no exec) that reads or writes a tar stream on its
 * stdin/stdout pipes; the exec table moves those bytes under the usual credits,
 * forwards SIGNAL and sends EXIT, so a transfer is just another exec to the host.
 * The child resolves guest paths inside the guest root (openat2 RESOLVE_IN_ROOT) and
 * extracts only beneath the destination (RESOLVE_BENEATH), never following a symlink
 * out of it; the tar code here is small and bounded: ustar + pax + GNU sparse 1.0. */
#include "agent/agent.h"
#include "proto/ustar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define TAR_BLOCK 512
#define IO_CHUNK (64u * 1024u)
#define MAX_NAME 4096           /* an archive path, NUL included */
#define MAX_PAX (1024u * 1024u) /* a pax header we accept */
#define MAX_DEPTH 256
#define MAX_SEGMENTS 4096 /* sparse map entries we send or accept */
#define MAX_DEFERRED (1u << 20)

/* ---- child helpers: errors end the child with exit 1 and a message on stderr ---- */

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

__attribute__((format(printf, 1, 0))) static void vsay(const char *fmt, va_list ap)
{
    char buf[1200];
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    _exit(1);
}

static void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

static int openat2_fd(int dirfd, const char *path, int flags, uint64_t resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = resolve;
    int fd;
    do
        fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    while (fd < 0 && errno == EAGAIN);
    return fd;
}

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

/* Splits a guest path into parent and last component; trailing slashes dropped.
 * Returns 0, or -1 when the last component is empty, "." or "..". */
static int split_path(const char *path, char *parent, size_t pcap, char *base, size_t bcap, int *trailing)
{
    char tmp[MAX_NAME];
    snprintf(tmp, sizeof(tmp), "%s", path);
    size_t n = strlen(tmp);
    *trailing = n > 1 && tmp[n - 1] == '/';
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = 0;
    char *slash = strrchr(tmp, '/');
    const char *b = slash ? slash + 1 : tmp;
    if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
        return -1;
    snprintf(base, bcap, "%s", b);
    if (!slash)
        snprintf(parent, pcap, ".");
    else if (slash == tmp)
        snprintf(parent, pcap, "/");
    else {
        *slash = 0;
        snprintf(parent, pcap, "%s", tmp);
    }
    return 0;
}

/* ---- FILE_GET: tar writer ---- */

struct tar_out {
    int fd;
    size_t len;
    uint8_t buf[IO_CHUNK];
};

static void out_flush(struct tar_out *o)
{
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(1); /* the host cancelled: nobody left to tell */
        off += (size_t)w;
    }
    o->len = 0;
}

static void out_put(struct tar_out *o, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n > 0) {
        size_t room = sizeof(o->buf) - o->len;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->len == sizeof(o->buf))
            out_flush(o);
    }
}

static void out_zero(struct tar_out *o, uint64_t n)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        out_put(o, zeros, k);
        n -= k;
    }
}

static void out_pad(struct tar_out *o, uint64_t size)
{
    if (size % TAR_BLOCK)
        out_zero(o, TAR_BLOCK - size % TAR_BLOCK);
}

static void put_octal(uint8_t *field, size_t width, uint64_t v)
{
    /* width-1 digits and a NUL */
    field[width - 1] = 0;
    for (size_t i = width - 1; i-- > 0;) {
        field[i] = (uint8_t)('0' + (v & 7));
        v >>= 3;
    }
}

struct pax {
    size_t len;
    char buf[3 * MAX_NAME + 1024];
};

static size_t ndigits(size_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static void pax_add(struct pax *p, const char *key, const char *val)
{
    size_t base = 1 + strlen(key) + 1 + strlen(val) + 1; /* " key=val\n" */
    size_t len = base + 1;
    while (ndigits(len) + base != len)
        len++;
    if (p->len + len >= sizeof(p->buf))
        die("internal: pax header too large");
    p->len += (size_t)snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "%zu %s=%s\n", len, key, val);
}

static int needs_pax(const char *s, size_t field)
{
    if (strlen(s) >= field)
        return 1;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c >= 0x80)
            return 1;
    return 0;
}

static void write_header(struct tar_out *o, const char *name, char type, const struct stat *st, uint64_t size,
                         const char *link)
{
    uint8_t h[TAR_BLOCK];
    memset(h, 0, sizeof(h));
    strncpy((char *)h, name, 100);
    put_octal(h + 100, 8, st->st_mode & 07777);
    put_octal(h + 108, 8, st->st_uid <= 07777777 ? st->st_uid : 0);
    put_octal(h + 116, 8, st->st_gid <= 07777777 ? st->st_gid : 0);
    put_octal(h + 124, 12, size <= 077777777777ull ? size : 0);
    put_octal(h + 136, 12, st->st_mtime >= 0 && (uint64_t)st->st_mtime <= 077777777777ull ? (uint64_t)st->st_mtime : 0);
    ustar_seal(h, type, link);
    out_put(o, h, sizeof(h));
}

struct segment {
    uint64_t off, len;
};

/* The data map of a file with holes (SEEK_DATA/SEEK_HOLE), at most MAX_SEGMENTS; 0
 * when the file is dense or the file system cannot tell. */
static size_t sparse_map(int fd, const struct stat *st, struct segment *seg)
{
    if (st->st_size <= 0 || (uint64_t)st->st_blocks * 512 >= (uint64_t)st->st_size)
        return 0;
    size_t n = 0;
    off_t pos = 0, end = st->st_size;
    while (pos < end) {
        off_t d = lseek(fd, pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO)
                break; /* only a hole remains */
            return 0;
        }
        off_t hole = lseek(fd, d, SEEK_HOLE);
        if (hole < 0)
            return 0;
        if (hole > end)
            hole = end;
        if (n == MAX_SEGMENTS - 1) {
            seg[n++] = (struct segment){(uint64_t)d, (uint64_t)(end - d)}; /* the rest as data */
            pos = end;
            break;
        }
        seg[n++] = (struct segment){(uint64_t)d, (uint64_t)(hole - d)};
        pos = hole;
    }
    lseek(fd, 0, SEEK_SET);
    /* A trailing hole is said with an empty last segment at the end, as GNU tar does. */
    if (n == 0 || seg[n - 1].off + seg[n - 1].len < (uint64_t)end)
        seg[n++] = (struct segment){(uint64_t)end, 0};
    return n;
}

/* Copies len bytes from offset off of fd; a file that shrank is padded with zeros. */
static void copy_range(struct tar_out *o, int fd, uint64_t off, uint64_t len, const char *name)
{
    while (len > 0) {
        if (o->len == sizeof(o->buf))
            out_flush(o);
        size_t room = sizeof(o->buf) - o->len;
        size_t k = len < room ? (size_t)len : room;
        ssize_t r = pread(fd, o->buf + o->len, k, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0)
                warn("%s: read: %s (rest sent as zeros)", name, strerror(errno));
            out_zero(o, len);
            return;
        }
        o->len += (size_t)r;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
}

static void emit(struct tar_out *o, const char *aname, const struct stat *st, int fd, const char *link)
{
    struct pax *pax = calloc(1, sizeof(*pax));
    struct segment *seg = NULL;
    size_t nseg = 0;
    char num[64];
    if (!pax)
        die("out of memory");
    char type = S_ISDIR(st->st_mode) ? '5' : S_ISLNK(st->st_mode) ? '2' : '0';
    char name[MAX_NAME + 2];
    snprintf(name, sizeof(name), "%s%s", aname, type == '5' ? "/" : "");
    uint64_t size = type == '0' ? (uint64_t)st->st_size : 0;
    uint64_t stored = size;
    char *maptext = NULL;
    size_t maplen = 0;
    if (type == '0' && fd >= 0) {
        seg = malloc(MAX_SEGMENTS * sizeof(*seg));
        if (!seg)
            die("out of memory");
        nseg = sparse_map(fd, st, seg);
    }
    if (nseg) {
        /* GNU sparse 1.0: the map is the first blocks of the data, in decimal lines. */
        size_t mapcap = 32 + nseg * 42 + TAR_BLOCK; /* 21 digits and a newline per number */
        maptext = malloc(mapcap);
        if (!maptext)
            die("out of memory");
        maplen = (size_t)snprintf(maptext, mapcap, "%zu\n", nseg);
        stored = 0;
        for (size_t i = 0; i < nseg; i++) {
            maplen += (size_t)snprintf(maptext + maplen, mapcap - maplen, "%llu\n%llu\n",
                                       (unsigned long long)seg[i].off, (unsigned long long)seg[i].len);
            stored += seg[i].len;
        }
        size_t padded = (maplen + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        memset(maptext + maplen, 0, padded - maplen);
        maplen = padded;
        stored += maplen;
        pax_add(pax, "GNU.sparse.major", "1");
        pax_add(pax, "GNU.sparse.minor", "0");
        pax_add(pax, "GNU.sparse.name", aname);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
        pax_add(pax, "GNU.sparse.realsize", num);
        pax_add(pax, "hdrcharset", "BINARY");
    } else if (needs_pax(name, 100) || (link && needs_pax(link, 100))) {
        pax_add(pax, "hdrcharset", "BINARY");
        if (needs_pax(name, 100))
            pax_add(pax, "path", name);
    }
    if (link && needs_pax(link, 100)) {
        if (!nseg && !strstr(pax->buf, "hdrcharset"))
            pax_add(pax, "hdrcharset", "BINARY");
        pax_add(pax, "linkpath", link);
    }
    if (stored > 077777777777ull) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)stored);
        pax_add(pax, "size", num);
    }
    if (st->st_mtim.tv_nsec || st->st_mtime < 0) {
        snprintf(num, sizeof(num), "%lld.%09ld", (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        pax_add(pax, "mtime", num);
    }
    if (pax->len) {
        struct stat ps = *st;
        ps.st_mode = 0644;
        write_header(o, "././@PaxHeader", 'x', &ps, pax->len, NULL);
        out_put(o, pax->buf, pax->len);
        out_pad(o, pax->len);
    }
    if (nseg) {
        char sname[128];
        const char *b = strrchr(aname, '/');
        snprintf(sname, sizeof(sname), "GNUSparseFile.0/%.80s", b ? b + 1 : aname);
        write_header(o, sname, '0', st, stored, NULL);
        out_put(o, maptext, maplen);
        for (size_t i = 0; i < nseg; i++)
            copy_range(o, fd, seg[i].off, seg[i].len, aname);
    } else {
        write_header(o, name, type, st, stored, link);
        if (type == '0')
            copy_range(o, fd, 0, size, aname);
    }
    out_pad(o, stored);
    free(maptext);
    free(seg);
    free(pax);
}

/* One object: parent directory fd + name; aname is its name in the archive. */
static void walk(struct tar_out *o, int pdir, const char *name, const char *aname, int depth, int top)
{
    struct stat st;
    if (fstatat(pdir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (top)
            die("%s: %s", aname, strerror(errno));
        warn("%s: %s (skipped)", aname, strerror(errno));
        return;
    }
    if (S_ISREG(st.st_mode)) {
        int fd = openat(pdir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            if (top)
                die("%s: %s", aname, fd < 0 ? strerror(errno) : "changed while being read");
            warn("%s: %s (skipped)", aname, fd < 0 ? strerror(errno) : "changed while being read");
        } else {
            emit(o, aname, &st, fd, NULL);
        }
        if (fd >= 0)
            close(fd);
    } else if (S_ISLNK(st.st_mode)) {
        char target[MAX_NAME];
        ssize_t n = readlinkat(pdir, name, target, sizeof(target) - 1);
        if (n < 0) {
            warn("%s: readlink: %s (skipped)", aname, strerror(errno));
            return;
        }
        target[n] = 0;
        emit(o, aname, &st, -1, target);
    } else if (S_ISDIR(st.st_mode)) {
        int fd = openat(pdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
            if (top)
                die("%s: %s", aname, strerror(errno));
            warn("%s: %s (skipped)", aname, strerror(errno));
            if (fd >= 0)
                close(fd);
            return;
        }
        emit(o, aname, &st, -1, NULL);
        if (depth >= MAX_DEPTH) {
            warn("%s: nested deeper than %d levels; contents skipped", aname, MAX_DEPTH);
            closedir(d);
            return;
        }
        char *child = malloc(MAX_NAME);
        if (!child)
            die("out of memory");
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            if ((size_t)snprintf(child, MAX_NAME, "%s/%s", aname, de->d_name) >= MAX_NAME) {
                warn("%s/%s: name too long (skipped)", aname, de->d_name);
                continue;
            }
            walk(o, dirfd(d), de->d_name, child, depth + 1, 0);
        }
        free(child);
        closedir(d);
    } else {
        if (top)
            die("%s: not a regular file, directory or symlink", aname);
        warn("%s: special file skipped", aname);
    }
}

/* Resolves PATH for reading: the parent inside the root (symlinks followed but kept
 * inside), the last component itself unless FOLLOW. Returns the parent fd. */
static int resolve_get(int rootfd, const char *path, uint32_t flags, char *base, size_t bcap)
{
    char cur[MAX_NAME], parent[MAX_NAME];
    snprintf(cur, sizeof(cur), "%s", path);
    for (int hops = 0;; hops++) {
        int trailing;
        if (split_path(cur, parent, sizeof(parent), base, bcap, &trailing) != 0)
            die("%s: name a file or directory (not the root, \".\" or \"..\")", path);
        int pfd = openat2_fd(rootfd, parent, O_PATH | O_DIRECTORY, IN_ROOT);
        if (pfd < 0)
            die("%s: %s", path, strerror(errno));
        struct stat st;
        if (!(flags & PROTO_FILE_FOLLOW) || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(st.st_mode))
            return pfd;
        if (hops >= 40)
            die("%s: %s", path, strerror(ELOOP));
        char target[MAX_NAME];
        ssize_t n = readlinkat(pfd, base, target, sizeof(target) - 1);
        close(pfd);
        if (n < 0)
            die("%s: readlink: %s", path, strerror(errno));
        target[n] = 0;
        if (target[0] == '/')
            snprintf(cur, sizeof(cur), "%s", target);
        else if ((size_t)snprintf(cur, sizeof(cur), "%s/%s", parent, target) >= sizeof(cur))
            die("%s: %s", path, strerror(ENAMETOOLONG));
    }
}

void files_get_run(int rootfd, const char *path, uint32_t flags, int out_fd)
{
    char base[MAX_NAME];
    int pfd = resolve_get(rootfd, path, flags, base, sizeof(base));
    struct tar_out *o = calloc(1, sizeof(*o));
    if (!o)
        die("out of memory");
    o->fd = out_fd;
    walk(o, pfd, base, base, 0, 1);
    out_zero(o, 2 * TAR_BLOCK);
    out_flush(o);
    close(pfd);
    free(o);
}

/* ---- FILE_PUT: tar reader and extraction ---- */

struct tar_in {
    int fd;
    size_t off, len;
    uint8_t buf[IO_CHUNK];
};

static size_t in_read(struct tar_in *in, void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t got = 0;
    while (got < n) {
        if (in->off == in->len) {
            ssize_t r = read(in->fd, in->buf, sizeof(in->buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            in->off = 0;
            in->len = (size_t)r;
        }
        size_t k = in->len - in->off;
        if (k > n - got)
            k = n - got;
        if (d)
            memcpy(d + got, in->buf + in->off, k);
        in->off += k;
        got += k;
    }
    return got;
}

static void in_exact(struct tar_in *in, void *dst, uint64_t n)
{
    while (n > 0) {
        size_t k = n > IO_CHUNK ? IO_CHUNK : (size_t)n;
        if (in_read(in, dst, k) != k)
            die("the archive ends in the middle of an entry");
        if (dst)
            dst = (uint8_t *)dst + k;
        n -= k;
    }
}

static uint64_t pad_of(uint64_t n) { return (TAR_BLOCK - n % TAR_BLOCK) % TAR_BLOCK; }

static uint64_t parse_num(const uint8_t *f, size_t w)
{
    if (f[0] & 0x80) { /* base-256 */
        uint64_t v = f[0] & 0x3f;
        for (size_t i = 1; i < w; i++)
            v = (v << 8) | f[i];
        return v;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < w && (f[i] == ' ' || f[i] == 0))
        i++;
    for (; i < w && f[i] >= '0' && f[i] <= '7'; i++)
        v = (v << 3) | (uint64_t)(f[i] - '0');
    return v;
}

static int checksum_ok(const uint8_t *h)
{
    unsigned u;
    int s;
    ustar_sums(h, &u, &s);
    uint64_t want = parse_num(h + 148, 8);
    return want == u || want == (uint64_t)(unsigned)s;
}

struct pending {
    char path[MAX_NAME], link[MAX_NAME], sparse_name[MAX_NAME];
    int has_path, has_link, has_sparse_name, has_size, has_mtime, has_realsize;
    uint64_t size, realsize;
    long long mtime_sec;
    long mtime_nsec;
    int sparse_major, sparse_minor;
};

static void parse_mtime(const char *v, long long *sec, long *nsec)
{
    char *end;
    *sec = strtoll(v, &end, 10);
    *nsec = 0;
    if (*end == '.') {
        long scale = 100000000;
        for (const char *c = end + 1; *c >= '0' && *c <= '9' && scale > 0; c++, scale /= 10)
            *nsec += (*c - '0') * scale;
        if (*sec < 0 || v[0] == '-')
            *nsec = 0; /* negative fractional times: keep the second */
    }
}

static void pax_parse(struct pending *pd, char *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        char *end;
        unsigned long len = strtoul(buf + off, &end, 10);
        if (end == buf + off || *end != ' ' || len == 0 || len > n - off || buf[off + len - 1] != '\n')
            die("malformed pax header");
        char *kv = end + 1;
        buf[off + len - 1] = 0;
        char *eq = strchr(kv, '=');
        if (!eq)
            die("malformed pax record");
        *eq = 0;
        const char *val = eq + 1;
        size_t vlen = (size_t)(buf + off + len - 1 - val);
        if (!strcmp(kv, "path") || !strcmp(kv, "linkpath") || !strcmp(kv, "GNU.sparse.name")) {
            if (vlen >= MAX_NAME || memchr(val, 0, vlen))
                die("pax %s too long or not a name", kv);
            char *dst = kv[0] == 'p' ? pd->path : kv[0] == 'l' ? pd->link : pd->sparse_name;
            memcpy(dst, val, vlen);
            dst[vlen] = 0;
            if (kv[0] == 'p')
                pd->has_path = 1;
            else if (kv[0] == 'l')
                pd->has_link = 1;
            else
                pd->has_sparse_name = 1;
        } else if (!strcmp(kv, "size")) {
            pd->size = strtoull(val, NULL, 10);
            pd->has_size = 1;
        } else if (!strcmp(kv, "mtime")) {
            parse_mtime(val, &pd->mtime_sec, &pd->mtime_nsec);
            pd->has_mtime = 1;
        } else if (!strcmp(kv, "GNU.sparse.major")) {
            pd->sparse_major = atoi(val);
        } else if (!strcmp(kv, "GNU.sparse.minor")) {
            pd->sparse_minor = atoi(val);
        } else if (!strcmp(kv, "GNU.sparse.realsize") || !strcmp(kv, "GNU.sparse.size")) {
            pd->realsize = strtoull(val, NULL, 10);
            pd->has_realsize = 1;
        } else if (!strcmp(kv, "GNU.sparse.map") || !strcmp(kv, "GNU.sparse.offset")) {
            die("unsupported sparse file format (GNU 0.x); only GNU sparse 1.0 is read");
        }
        off += len;
    }
}

struct deferred {
    char *rel;
    struct timespec mtime;
};

struct put_ctx {
    int destfd;
    int no_replace;     /* PROTO_FILE_NO_REPLACE: an entry whose name exists fails the transfer */
    const char *rename; /* replaces the first component of every name, or NULL */
    struct deferred *dirs;
    size_t ndirs, dirs_cap;
    uint8_t *chunk;
};

/* Archive name to a clean relative path ("a/b/c"), with the first component renamed.
 * Empty result: the entry names the destination itself ("./"). */
static void clean_name(const struct put_ctx *c, const char *name, char *out, size_t cap)
{
    if (name[0] == '/')
        die("%s: absolute names are not accepted", name);
    char tmp[MAX_NAME];
    snprintf(tmp, sizeof(tmp), "%s", name);
    size_t len = 0;
    int first = 1;
    out[0] = 0;
    char *save = NULL;
    for (char *comp = strtok_r(tmp, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        if (!strcmp(comp, "."))
            continue;
        if (!strcmp(comp, ".."))
            die("%s: \"..\" is not accepted in names", name);
        const char *use = first && c->rename ? c->rename : comp;
        first = 0;
        int n = snprintf(out + len, cap - len, "%s%s", len ? "/" : "", use);
        if (n < 0 || (size_t)n >= cap - len)
            die("%s: name too long", name);
        len += (size_t)n;
    }
}

/* The directory that holds rel's last component, created (0755) where missing; the
 * walk stays beneath the destination. */
static int open_parent(struct put_ctx *c, const char *rel, const char **base)
{
    const char *slash = strrchr(rel, '/');
    *base = slash ? slash + 1 : rel;
    if (!slash)
        return openat2_fd(c->destfd, ".", O_PATH | O_DIRECTORY, BENEATH);
    char dir[MAX_NAME];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rel), rel);
    int fd = openat2_fd(c->destfd, dir, O_PATH | O_DIRECTORY, BENEATH);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    /* Create the missing components one by one. */
    for (char *p = dir;; p++) {
        if (*p == '/' || *p == 0) {
            char save = *p;
            *p = 0;
            /* Open the parent beneath the destination, then mkdir relative to it:
             * a path-based mkdirat could follow a symlink out. */
            char *last = strrchr(dir, '/');
            int pfd = last ? (*last = 0, openat2_fd(c->destfd, dir, O_PATH | O_DIRECTORY, BENEATH))
                           : openat2_fd(c->destfd, ".", O_PATH | O_DIRECTORY, BENEATH);
            if (last)
                *last = '/';
            if (pfd < 0)
                return -1;
            if (mkdirat(pfd, last ? last + 1 : dir, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                close(pfd);
                errno = e;
                return -1;
            }
            close(pfd);
            int t = openat2_fd(c->destfd, dir, O_PATH | O_DIRECTORY, BENEATH);
            if (t < 0)
                return -1;
            close(t);
            *p = save;
            if (!save)
                break;
        }
    }
    return openat2_fd(c->destfd, dir, O_PATH | O_DIRECTORY, BENEATH);
}

/* Makes room for a new non-directory: removes what is there unless it is a directory
 * (or, with no_replace, unless anything is there). */
static void clear_slot(const struct put_ctx *c, int pfd, const char *base, const char *rel)
{
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return;
    if (S_ISDIR(st.st_mode))
        die("%s: cannot overwrite a directory with a non-directory", rel);
    if (c->no_replace)
        die("%s: %s (overwriting is off)", rel, PROTO_FILE_EXISTS_TEXT);
    if (unlinkat(pfd, base, 0) != 0)
        die("%s: %s", rel, strerror(errno));
}

/* The directory that will hold the new non-directory rel, opened, with what stood at
 * its name removed; *base: the last component. */
static int open_slot(struct put_ctx *c, const char *rel, const char **base)
{
    int pfd = open_parent(c, rel, base);
    if (pfd < 0)
        die("%s: %s", rel, strerror(errno));
    clear_slot(c, pfd, *base, rel);
    return pfd;
}

static void write_all_fd(int fd, const uint8_t *p, size_t n, const char *rel)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("%s: write: %s", rel, w < 0 ? strerror(errno) : "short write");
        p += w;
        n -= (size_t)w;
    }
}

static void copy_in(struct put_ctx *c, struct tar_in *in, int fd, uint64_t n, const char *rel)
{
    while (n > 0) {
        size_t k = n > IO_CHUNK ? IO_CHUNK : (size_t)n;
        if (in_read(in, c->chunk, k) != k)
            die("the archive ends in the middle of %s", rel);
        write_all_fd(fd, c->chunk, k, rel);
        n -= k;
    }
}

/* GNU sparse 1.0 data: a decimal map in whole blocks, then the data segments. */
static void put_sparse(struct put_ctx *c, struct tar_in *in, int fd, uint64_t stored, uint64_t realsize,
                       const char *rel)
{
    char map[TAR_BLOCK * 2 + 1];
    size_t have = 0, pos = 0, nsegs = 0, cap = 0;
    uint64_t used = 0, count = 0, total = 0, off = 0, last_end = 0;
    int got_count = 0, half = 0;
    struct segment *segs = NULL;
    while (!got_count || nsegs < count) {
        char *nl;
        while (!(nl = memchr(map + pos, '\n', have - pos))) {
            if (have - pos > 32 || used + TAR_BLOCK > stored)
                die("%s: malformed sparse map", rel);
            memmove(map, map + pos, have - pos);
            have -= pos;
            pos = 0;
            in_exact(in, map + have, TAR_BLOCK);
            used += TAR_BLOCK;
            have += TAR_BLOCK;
        }
        *nl = 0;
        char *end;
        uint64_t v = strtoull(map + pos, &end, 10);
        if (end == map + pos || *end)
            die("%s: malformed sparse map", rel);
        pos = (size_t)(nl - map) + 1;
        if (!got_count) {
            if (v > MAX_SEGMENTS * 16)
                die("%s: sparse map too large", rel);
            count = v;
            got_count = 1;
        } else if (!half) {
            off = v;
            half = 1;
        } else {
            half = 0;
            if (off < last_end || off > realsize || v > realsize - off || v > stored - used - total)
                die("%s: sparse map does not fit the file", rel);
            if (nsegs == cap) {
                cap = cap ? cap * 2 : 64;
                struct segment *g = realloc(segs, cap * sizeof(*g));
                if (!g)
                    die("out of memory");
                segs = g;
            }
            segs[nsegs++] = (struct segment){off, v};
            total += v;
            last_end = off + v;
        }
    }
    /* The map's padding to its block boundary was read with its last block. */
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i].len == 0)
            continue;
        if (lseek(fd, (off_t)segs[i].off, SEEK_SET) < 0)
            die("%s: seek: %s", rel, strerror(errno));
        copy_in(c, in, fd, segs[i].len, rel);
    }
    used += total;
    free(segs);
    if (ftruncate(fd, (off_t)realsize) != 0)
        die("%s: truncate: %s", rel, strerror(errno));
    if (used < stored)
        in_exact(in, NULL, stored - used);
}

static void set_times_fd(int fd, const struct timespec *mt)
{
    struct timespec ts[2] = {*mt, *mt};
    futimens(fd, ts);
}

static void defer_dir(struct put_ctx *c, const char *rel, const struct timespec *mt)
{
    if (c->ndirs == c->dirs_cap) {
        if (c->dirs_cap >= MAX_DEFERRED)
            return; /* an absurd number of directories: their times are not restored */
        size_t ncap = c->dirs_cap ? c->dirs_cap * 2 : 64;
        struct deferred *g = realloc(c->dirs, ncap * sizeof(*g));
        if (!g)
            die("out of memory");
        c->dirs = g;
        c->dirs_cap = ncap;
    }
    c->dirs[c->ndirs].rel = strdup(rel[0] ? rel : ".");
    if (!c->dirs[c->ndirs].rel)
        die("out of memory");
    c->dirs[c->ndirs++].mtime = *mt;
}

static void put_entry(struct put_ctx *c, struct tar_in *in, const uint8_t *h, struct pending *pd)
{
    char type = (char)h[156];
    char raw[MAX_NAME + 160];
    if (pd->has_sparse_name)
        snprintf(raw, sizeof(raw), "%s", pd->sparse_name);
    else if (pd->has_path)
        snprintf(raw, sizeof(raw), "%s", pd->path);
    else if (!memcmp(h + 257, "ustar", 5) && h[345])
        snprintf(raw, sizeof(raw), "%.155s/%.100s", (const char *)h + 345, (const char *)h);
    else
        snprintf(raw, sizeof(raw), "%.100s", (const char *)h);
    char link[MAX_NAME];
    snprintf(link, sizeof(link), "%s", pd->has_link ? pd->link : "");
    if (!pd->has_link)
        snprintf(link, sizeof(link), "%.100s", (const char *)h + 157);
    uint64_t size = pd->has_size ? pd->size : parse_num(h + 124, 12);
    mode_t mode = (mode_t)(parse_num(h + 100, 8) & 07777);
    struct timespec mt = {.tv_sec = (time_t)(pd->has_mtime ? pd->mtime_sec : (long long)parse_num(h + 136, 12)),
                          .tv_nsec = pd->has_mtime ? pd->mtime_nsec : 0};
    char rel[MAX_NAME];
    clean_name(c, raw, rel, sizeof(rel));
    uint64_t consumed = 0; /* data bytes of this entry read so far */

    if (type == '5') {
        if (rel[0]) {
            const char *base;
            int pfd = open_parent(c, rel, &base);
            if (pfd < 0)
                die("%s: %s", rel, strerror(errno));
            struct stat st;
            int there = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
            if (there && !S_ISDIR(st.st_mode) && c->no_replace)
                die("%s: %s (overwriting is off)", rel, PROTO_FILE_EXISTS_TEXT);
            if (there && !S_ISDIR(st.st_mode) && unlinkat(pfd, base, 0) != 0)
                die("%s: %s", rel, strerror(errno));
            /* with no_replace an existing directory receives entries but keeps its mode and time */
            int keep = there && S_ISDIR(st.st_mode) && c->no_replace;
            if (mkdirat(pfd, base, 0700) != 0 && errno != EEXIST)
                die("%s: mkdir: %s", rel, strerror(errno));
            if (!keep && fchmodat(pfd, base, mode, 0) != 0)
                warn("%s: chmod: %s", rel, strerror(errno));
            close(pfd);
            if (!keep)
                defer_dir(c, rel, &mt);
        } else if (!c->no_replace) {
            defer_dir(c, rel, &mt);
        }
    } else if (type == '0' || type == 0 || type == '7') {
        if (!rel[0])
            die("%s: a file cannot replace the destination directory", raw);
        const char *base;
        int pfd = open_slot(c, rel, &base);
        int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            die("%s: %s", rel, strerror(errno));
        if (pd->sparse_major == 1 && pd->sparse_minor == 0 && pd->has_realsize) {
            put_sparse(c, in, fd, size, pd->realsize, rel);
        } else if (pd->sparse_major || pd->sparse_minor) {
            die("%s: unsupported sparse format %d.%d", rel, pd->sparse_major, pd->sparse_minor);
        } else {
            copy_in(c, in, fd, size, rel);
        }
        consumed = size;
        if (fchmod(fd, mode) != 0)
            warn("%s: chmod: %s", rel, strerror(errno));
        set_times_fd(fd, &mt);
        if (close(fd) != 0)
            die("%s: close: %s", rel, strerror(errno));
        close(pfd);
    } else if (type == '2') {
        if (!rel[0] || !link[0])
            die("%s: bad symlink entry", raw);
        const char *base;
        int pfd = open_slot(c, rel, &base);
        if (symlinkat(link, pfd, base) != 0)
            die("%s: symlink: %s", rel, strerror(errno));
        struct timespec ts[2] = {mt, mt};
        utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);
        close(pfd);
    } else if (type == '1') {
        char trel[MAX_NAME];
        clean_name(c, link, trel, sizeof(trel));
        const char *base, *tbase;
        int pfd = open_parent(c, rel, &base);
        int tfd = trel[0] ? open_parent(c, trel, &tbase) : -1;
        if (pfd < 0 || tfd < 0)
            die("%s: hard link to %s: %s", rel, trel, strerror(errno));
        clear_slot(c, pfd, base, rel);
        if (linkat(tfd, tbase, pfd, base, 0) != 0)
            die("%s: hard link to %s: %s", rel, trel, strerror(errno));
        close(pfd);
        close(tfd);
    } else {
        warn("%s: entry type '%c' not supported (skipped)", raw, type);
    }
    if (consumed < size)
        in_exact(in, NULL, size - consumed);
    in_exact(in, NULL, pad_of(size));
}

static int cmp_deferred(const void *a, const void *b)
{
    /* deepest first, so a parent's time is set after its children changed it */
    return strcmp(((const struct deferred *)b)->rel, ((const struct deferred *)a)->rel);
}

static void extract(struct put_ctx *c, int in_fd)
{
    struct tar_in *in = calloc(1, sizeof(*in));
    struct pending *pd = calloc(1, sizeof(*pd));
    c->chunk = malloc(IO_CHUNK);
    if (!in || !pd || !c->chunk)
        die("out of memory");
    in->fd = in_fd;
    uint8_t h[TAR_BLOCK];
    int zeros = 0, entries = 0;
    for (;;) {
        size_t got = in_read(in, h, TAR_BLOCK);
        if (got == 0 && (zeros || entries))
            break; /* tolerate a missing second end block */
        if (got != TAR_BLOCK)
            die(got ? "the archive ends in the middle of a header" : "empty archive");
        int all_zero = 1;
        for (size_t i = 0; i < TAR_BLOCK && all_zero; i++)
            all_zero = h[i] == 0;
        if (all_zero) {
            if (++zeros == 2)
                break;
            continue;
        }
        zeros = 0;
        if (!checksum_ok(h))
            die("not a tar archive (bad header checksum)");
        char type = (char)h[156];
        uint64_t size = parse_num(h + 124, 12);
        if (type == 'x' || type == 'L' || type == 'K') {
            if (size > MAX_PAX)
                die("extended header too large");
            char *buf = malloc((size_t)size + 1);
            if (!buf)
                die("out of memory");
            in_exact(in, buf, size);
            buf[size] = 0;
            in_exact(in, NULL, pad_of(size));
            if (type == 'x') {
                pax_parse(pd, buf, (size_t)size);
            } else {
                char *dst = type == 'L' ? pd->path : pd->link;
                size_t n = strlen(buf);
                if (n >= MAX_NAME)
                    die("long name too long");
                memcpy(dst, buf, n + 1);
                *(type == 'L' ? &pd->has_path : &pd->has_link) = 1;
            }
            free(buf);
            continue;
        }
        if (type == 'g') {
            in_exact(in, NULL, size + pad_of(size));
            continue;
        }
        put_entry(c, in, h, pd);
        entries++;
        memset(pd, 0, sizeof(*pd));
    }
    /* Drain what follows (block padding) so the host never sees a broken pipe. */
    while (in_read(in, NULL, IO_CHUNK) > 0)
        ;
    if (c->ndirs)
        qsort(c->dirs, c->ndirs, sizeof(*c->dirs), cmp_deferred);
    for (size_t i = 0; i < c->ndirs; i++) {
        int fd = openat2_fd(c->destfd, c->dirs[i].rel, O_RDONLY | O_DIRECTORY, BENEATH | RESOLVE_NO_SYMLINKS);
        if (fd >= 0) {
            set_times_fd(fd, &c->dirs[i].mtime);
            close(fd);
        }
        free(c->dirs[i].rel);
    }
    free(c->dirs);
    free(c->chunk);
    free(pd);
    free(in);
}

void files_put_run(int rootfd, const char *path, uint32_t flags, int in_fd)
{
    struct put_ctx c;
    memset(&c, 0, sizeof(c));
    c.destfd = -1;
    char parent[MAX_NAME], base[MAX_NAME];
    c.no_replace = (flags & PROTO_FILE_NO_REPLACE) != 0;
    int open_errno = ENOENT;
    if (!(flags & PROTO_FILE_EXACT)) {
        c.destfd = openat2_fd(rootfd, path, O_PATH | O_DIRECTORY, IN_ROOT);
        open_errno = errno;
        if (c.destfd < 0 && errno != ENOENT && errno != ENOTDIR)
            die("%s: %s", path, strerror(errno));
    }
    if (c.destfd < 0) {
        int trailing;
        if (split_path(path, parent, sizeof(parent), base, sizeof(base), &trailing) != 0)
            die("%s: not a valid destination", path);
        if (trailing && !(flags & PROTO_FILE_EXACT))
            die("%s: %s", path, open_errno == ENOTDIR ? "not a directory" : "no such directory");
        c.destfd = openat2_fd(rootfd, parent, O_PATH | O_DIRECTORY, IN_ROOT);
        if (c.destfd < 0)
            die("%s: %s", parent, strerror(errno));
        c.rename = base;
    }
    extract(&c, in_fd);
    close(c.destfd);
}

/* ---- the agent side: a forked child registered as an exec ---- */

static _Noreturn void child(files_child_fn run, const void *arg, int in_r, int out_w, int err_w)
{
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (dup2(in_r >= 0 ? in_r : devnull, 0) < 0 || dup2(out_w >= 0 ? out_w : devnull, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(1);
    /* Nothing of the agent's (the port, other commands' pipes) stays open here. */
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
    umask(0);
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        die("/: %s", strerror(errno));
    run(rootfd, arg);
    _exit(0);
}

void files_spawn(struct agent *a, uint32_t stream, int put, uint32_t window, files_child_fn run, const void *arg)
{
    int io[2] = {-1, -1}, err[2] = {-1, -1};
    if (pipe2(io, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (io[i] >= 0)
                close(io[i]);
        }
        exec_refuse(a, stream, e, "cannot create pipes");
        return;
    }
    struct cmd_cgroup cg;
    pid_t pid = cgroup_fork(&cg);
    if (pid == 0)
        child(run, arg, put ? io[0] : -1, put ? -1 : io[1], err[1]);
    int fork_errno = errno;
    close(err[1]);
    close(put ? io[0] : io[1]);
    int mine = put ? io[1] : io[0];
    if (pid < 0) {
        close(mine);
        close(err[0]);
        exec_refuse(a, stream, fork_errno, "cannot start the transfer (fork failed)");
        cgroup_release(&cg);
        return;
    }
    fcntl(mine, F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    if (!exec_adopt(a, stream, pid, put ? mine : -1, put ? -1 : mine, err[0], window, &cg)) {
        kill(pid, SIGKILL);
        close(mine);
        close(err[0]);
        exec_refuse(a, stream, ENOMEM, "out of memory");
        cgroup_release(&cg);
    }
}

static void put_child(int rootfd, const void *arg)
{
    const struct proto_file *m = arg;
    files_put_run(rootfd, m->path, m->flags, 0);
}

static void get_child(int rootfd, const void *arg)
{
    const struct proto_file *m = arg;
    files_get_run(rootfd, m->path, m->flags, 1);
}

void files_start(struct agent *a, uint32_t stream, uint16_t type, const uint8_t *p, size_t n)
{
    char msg[160];
    if (!exec_may_start(a, stream, "too many running commands and transfers"))
        return;
    struct proto_file *m = malloc(sizeof(*m));
    if (!m) {
        exec_refuse(a, stream, ENOMEM, "out of memory");
        return;
    }
    int rc = proto_decode_file(p, n, m);
    if (rc != PROTO_OK) {
        snprintf(msg, sizeof(msg), "malformed %s: %s", proto_type_name(type), proto_strerror(rc));
        exec_refuse(a, stream, EINVAL, msg);
    } else {
        int put = type == PROTO_FILE_PUT;
        files_spawn(a, stream, put, m->window, put ? put_child : get_child, m);
    }
    free(m);
}
