/* Small host-side helpers shared by libcocoon and cocoon-vmm: files, directories,
 * unix socket paths that dodge the 108-byte limit, fds, clocks, host probing. */
#ifndef COCOON_UTIL_H
#define COCOON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Builds "/proc/self/fd/<dirfd>/<name>" so a unix socket inside a deep directory can
 * be bound or connected without hitting sun_path's limit. -1 if it does not fit. */
int util_unix_path(int dirfd, const char *name, char *out, size_t cap);
int util_mkdir_p(const char *path, mode_t mode);
/* Removes a tree without following symlinks. 0 also when it did not exist. */
int util_rm_rf(const char *path);
/* Writes text to an existing file in one write(2) (a /proc or /sys knob). -1 with
 * errno when it cannot be opened or the write is short. */
int util_write_text(const char *path, const char *text);
/* Writes via a temp file + rename so readers never see a half-written file. */
int util_write_file_atomic(const char *path, const void *data, size_t len);
/* 1 when s is non-empty and all lowercase hex digits (digests, ids). */
static inline int util_is_hex(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* A command line as people read it: the first n words of argv (or up to a NULL) joined
 * by spaces into out[cap], clipped (cap >= 1). */
void util_join_words(char *out, size_t cap, char *const *argv, size_t n);
/* Reads a whole file of at most max bytes (NUL-terminated). NULL with errno set. */
char *util_read_file(const char *path, size_t max, size_t *len_out);
/* The last cap - 1 bytes of a file (all of a shorter one) into buf, NUL-terminated:
 * their count, or -1. */
ssize_t util_read_tail(const char *path, char *buf, size_t cap);
/* The last `lines` lines of a text file, joined with `sep`, non-printables replaced. */
void util_tail_lines(const char *path, int lines, const char *sep, char *out, size_t cap);
/* Untrusted text (a guest's messages, names from its archives) as a printable string:
 * C0/C1 controls, DEL, bidi controls and bytes that are not UTF-8 escaped (\n, \t, \\,
 * \xHH, \uHHHH), valid UTF-8 kept, at most cap - 1 bytes with "..." marking a cut.
 * len bytes of in are read (NULs included). Returns out. */
char *util_escape_text(char *out, size_t cap, const void *in, size_t len);
/* A number with a unit: "10G", "512m", "1.5GiB", "7" (the unit bare_unit). Returns the
 * unit as a power of 1024 (0: bytes ... 4: TiB) and *bytes, or -1 when s is not a
 * decimal number or its suffix is not one of B, K, M, G, T (+ B or iB, any case). */
int util_parse_scaled(const char *s, int bare_unit, double *bytes);
/* A count of at least 1 ("1000"; with suffixes, also "16G": K, M, G, T binary,
 * either case): 0 with *out, -1 when malformed, 0 or out of range. */
/* Base64 of in into out, NUL-terminated: the length written, or -1 if it does not fit
 * (cap needs (len + 2) / 3 * 4 + 1). */
int util_base64_encode(const void *in, size_t len, char *out, size_t cap);
/* Decodes inlen characters of base64; -1 if malformed or the result (plus a NUL) does
 * not fit in cap. */
int util_base64_decode(const char *in, size_t inlen, void *out, size_t cap, size_t *outlen);
int util_parse_count(const char *s, int suffixes, uint64_t *out);
/* The start of a log window (since.c): "2026-12-03T14:00:00Z" (RFC 3339, any zone
 * offset), "2026-12-03", a unix time in seconds ("1764770400.5"), or a duration back
 * from now_us ("90s", "10m", "1h30m", "2d"). 0 with *out_us (unix time in
 * microseconds), -1 with a message in err. */
int util_parse_since(const char *s, long long now_us, long long *out_us, char *err, size_t cap);
/* unix_us as the logs write times: 2026-12-03T14:36:54.705420Z (27 characters). */
void util_format_us(long long unix_us, char *out, size_t cap);
/* A size bound from the environment (a log's rotation size, for tests): the variable as
 * a plain number of bytes, at least min; def when unset or not a number. */
uint64_t util_env_bytes(const char *name, uint64_t def, uint64_t min);
/* SipHash-2-4 of len bytes under a 16-byte key (siphash.c): for hash tables keyed by
 * names from outside, with a random key so the sender cannot choose collisions. */
uint64_t util_siphash(const uint8_t key[16], const void *data, size_t len);
int util_set_nonblock(int fd, int on);
int util_set_cloexec(int fd, int on);
uint64_t util_now_ns(int clock_id);
int util_file_exists(const char *path);

/* Tests only (testpoint.c; the points are listed in docs/internals.md): at the named
 * point, COCOON_TEST_DELAY_<POINT>=MS sleeps MS milliseconds (to widen a race window)
 * and COCOON_TEST_CRASH_AT=<POINT>[:N] SIGKILLs this process the Nth time (1st by
 * default) it gets there (to test what a crash at that point leaves). */
void util_test_point(const char *point);

/* What /dev/kvm really offers. usable means a stock Linux guest can run on it:
 * the device opens, reports API version 12, and the CPU exposes hardware
 * virtualization (vmx/svm). PVM-style hosts have the device but not the flags. */
struct host_kvm_probe {
    int device;
    int usable;
    char reason[256];
};
void host_probe_kvm(struct host_kvm_probe *p);
/* The host TSC's rate in kHz, measured once (2 ms); 0 when the TSC is not invariant. */
uint32_t host_tsc_khz(void);

#endif
