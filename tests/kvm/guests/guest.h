/* What every 64-bit micro-guest needs: fixed-width types, the COM1 UART for its
 * "ok NAME" / "FAIL NAME" report, and the memset/memcpy the compiler may call (the
 * guests are freestanding: no libc). Each guest is its own binary, so the
 * definitions below live once per guest. */
#ifndef COCOON_MICROGUEST_H
#define COCOON_MICROGUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

static int n_ok, n_fail;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static void putc_(char c)
{
    while (!(inb(0x3fd) & 0x20))
        ;
    outb(0x3f8, (u8)c);
}
static void puts_(const char *s)
{
    while (*s)
        putc_(*s++);
}
__attribute__((unused)) static void putdec(u64 v)
{
    char b[24];
    int i = 0;
    do
        b[i++] = (char)('0' + v % 10);
    while (v /= 10);
    while (i)
        putc_(b[--i]);
}
__attribute__((unused)) static void puthex(u64 v)
{
    puts_("0x");
    for (int i = 60; i >= 0; i -= 4)
        putc_("0123456789abcdef"[(v >> i) & 15]);
}
static void check(int cond, const char *name)
{
    puts_(cond ? "ok " : "FAIL ");
    puts_(name);
    putc_('\n');
    if (cond)
        n_ok++;
    else
        n_fail++;
}
/* The last line of every report: "DONE <ok> <failed>". */
__attribute__((unused)) static int done_(void)
{
    puts_("DONE ");
    putdec((u64)n_ok);
    putc_(' ');
    putdec((u64)n_fail);
    putc_('\n');
    return 0;
}
void *memset(void *d, int c, u64 n)
{
    u8 *p = d;
    while (n--)
        *p++ = (u8)c;
    return d;
}
void *memcpy(void *d, const void *s, u64 n)
{
    u8 *a = d;
    const u8 *b = s;
    while (n--)
        *a++ = *b++;
    return d;
}

#endif
