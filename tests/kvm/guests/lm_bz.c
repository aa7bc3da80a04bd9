/* bzImage micro-guest: packaged by mkbzimage.py behind a fake setup header, entered by
 * the VMM's bzImage 64-bit path at code32_start + 0x200 with RSI = zero page. Checks
 * the zero page (header copied, loader type, e820, command line, initrd) and the
 * long-mode state, prints "ok NAME" / "FAIL NAME" and "DONE <ok> <fail>". */
#include "guest.h"

static u32 r32(const u8 *p) { return *(const u32 *)p; }
static u64 r64(const u8 *p) { return *(const u64 *)p; }

int main(u64 rdi, const u8 *zp)
{
    (void)rdi;
    u64 cr0, efer_lo, efer_hi;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("rdmsr" : "=a"(efer_lo), "=d"(efer_hi) : "c"(0xc0000080));
    check((cr0 & 0x80000001ul) == 0x80000001ul && (efer_lo & 0x500) == 0x500, "long mode with paging");
    check(zp == (const u8 *)0x7000, "rsi is the zero page");
    check(zp[0x202] == 'H' && zp[0x203] == 'd' && zp[0x204] == 'r' && zp[0x205] == 'S', "setup header copied");
    check(zp[0x210] == 0xff, "type_of_loader");
    check(r32(zp + 0x214) == 0x100000, "code32_start");
    u8 n = zp[0x1e8];
    u64 ram = 0;
    for (u8 i = 0; i < n && i < 128; i++)
        if (r32(zp + 0x2d0 + 20 * i + 16) == 1)
            ram += r64(zp + 0x2d0 + 20 * i + 8);
    check(n >= 3 && r64(zp + 0x2d0) == 0 && r32(zp + 0x2d0 + 20 + 16) == 2, "e820 map");
    puts_("e820 entries ");
    putdec(n);
    puts_(" ram_mib ");
    putdec(ram >> 20);
    putc_('\n');
    const char *cl = (const char *)(u64)r32(zp + 0x228);
    check(cl != 0, "cmd_line_ptr");
    if (cl) {
        puts_("cmdline: ");
        puts_(cl);
        putc_('\n');
    }
    u32 rd = r32(zp + 0x218), rs = r32(zp + 0x21c);
    if (rs) {
        const u8 *p = (const u8 *)(u64)rd;
        check(rd >= 0x100000 && !(rd & 0xfff) && p[0] == 'I' && p[1] == 'N' && p[2] == 'I' && p[3] == 'T', "initrd");
    }
    return done_();
}
