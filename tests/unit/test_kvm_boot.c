/* Loading a PVH kernel and its initrd into guest RAM (src/kvm/boot_pvh.c) without
 * /dev/kvm: a synthetic ELF (two load segments, one with a bss, and the Xen entry note)
 * is copied by default and mapped from its file with map_kernel, the initrd with it;
 * either way the guest sees the file's bytes, a zero bss and the initrd, and its writes
 * never reach a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm/boot.h"
#include "kvm/vm.h"

#define TEXT_GPA 0x1000000ull /* 16 MiB, as Linux */
#define TEXT_OFF 0x1000ull
#define TEXT_LEN 0x2345ull
#define DATA_GPA 0x1200000ull
#define DATA_OFF 0x4000ull
#define DATA_LEN 0x1800ull
#define DATA_MEM 0x6000ull /* the rest of it is bss */
#define NOTE_OFF 0x800ull
#define ENTRY 0x1000040u
#define INITRD_LEN 0x3210ull
#define MEM (64ull << 20)

static uint8_t pattern(uint64_t off) { return (uint8_t)(off * 13 + 5); }

static int write_file(char *path, const uint8_t *buf, size_t len)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, buf, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

/* The kernel file: ELF header, two PT_LOAD and one PT_NOTE headers, the note at
 * NOTE_OFF, the segments at offsets congruent to their addresses modulo a page (so they
 * can be mapped), every other byte the pattern (the bss must not show it). */
static void make_kernel(uint8_t *f, size_t cap)
{
    for (size_t i = 0; i < cap; i++)
        f[i] = pattern(i);
    Elf64_Ehdr eh = {.e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT, .e_entry = TEXT_GPA};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_phoff = sizeof(eh);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 3;
    eh.e_ehsize = sizeof(eh);
    Elf64_Phdr ph[3] = {
        {.p_type = PT_LOAD, .p_offset = TEXT_OFF, .p_paddr = TEXT_GPA, .p_filesz = TEXT_LEN, .p_memsz = TEXT_LEN},
        {.p_type = PT_LOAD, .p_offset = DATA_OFF, .p_paddr = DATA_GPA, .p_filesz = DATA_LEN, .p_memsz = DATA_MEM},
        {.p_type = PT_NOTE, .p_offset = NOTE_OFF, .p_filesz = 20},
    };
    memcpy(f, &eh, sizeof(eh));
    memcpy(f + sizeof(eh), ph, sizeof(ph));
    uint32_t note[5] = {4, 4, 18 /* XEN_ELFNOTE_PHYS32_ENTRY */, 0, ENTRY};
    memcpy(&note[3], "Xen", 4);
    memcpy(f + NOTE_OFF, note, sizeof(note));
}

static void check_load(int map)
{
    static uint8_t kernel[DATA_OFF + DATA_LEN + 0x100], initrd[INITRD_LEN];
    char kpath[] = "/tmp/cocoon-test-kernelXXXXXX", ipath[] = "/tmp/cocoon-test-initrdXXXXXX";
    make_kernel(kernel, sizeof(kernel));
    for (size_t i = 0; i < sizeof(initrd); i++)
        initrd[i] = (uint8_t)(pattern(i) ^ 0x5a);
    assert_int_equal(write_file(kpath, kernel, sizeof(kernel)), 0);
    assert_int_equal(write_file(ipath, initrd, sizeof(initrd)), 0);

    static struct kvm_vm vm;
    memset(&vm, 0, sizeof(vm));
    vm.map_kernel = map;
    assert_int_equal(guest_mem__alloc(&vm.mem, MEM, 1), 0);
    char err[256] = "";
    int rc = kvm_boot__pvh(&vm, kpath, ipath, "console=ttyS0", err, sizeof(err));
    if (rc)
        fail_msg("kvm_boot__pvh: %s", err);
    assert_int_equal(vm.boot.mode, BOOT_PVH32);
    assert_int_equal(vm.boot.entry, ENTRY);
    /* copied by default; mapped on request, the initrd too */
    assert_int_equal(vm.mapped_bytes, map ? TEXT_LEN + DATA_LEN + INITRD_LEN : 0);

    const uint8_t *text = guest_mem__ptr(&vm.mem, TEXT_GPA, TEXT_LEN);
    assert_memory_equal(text, kernel + TEXT_OFF, TEXT_LEN);
    uint8_t *data = guest_mem__ptr(&vm.mem, DATA_GPA, DATA_MEM);
    assert_memory_equal(data, kernel + DATA_OFF, DATA_LEN);
    for (uint64_t i = DATA_LEN; i < DATA_MEM; i++)
        if (data[i])
            fail_msg("bss byte 0x%llx is 0x%02x, not zero", (unsigned long long)i, data[i]);
    /* the bytes after the text in its last page: the file's next bytes are not the guest's */
    for (uint64_t i = TEXT_LEN; i < 0x3000; i++)
        assert_int_equal(((const uint8_t *)guest_mem__ptr(&vm.mem, TEXT_GPA, 0x3000))[i], 0);

    /* the initrd: at the top of RAM, page aligned, named by the module list */
    uint64_t mod[2];
    memcpy(mod, guest_mem__ptr(&vm.mem, BOOT_MODLIST_GPA, sizeof(mod)), sizeof(mod));
    assert_int_equal(mod[1], INITRD_LEN);
    assert_int_equal(mod[0] & 0xfff, 0);
    assert_true(mod[0] + INITRD_LEN <= MEM);
    uint8_t *rd = guest_mem__ptr(&vm.mem, mod[0], INITRD_LEN);
    assert_memory_equal(rd, initrd, INITRD_LEN);

    /* guest writes stay in guest RAM */
    data[0] ^= 0xff;
    rd[0] ^= 0xff;
    FILE *kf = fopen(kpath, "rb"), *rf = fopen(ipath, "rb");
    assert_non_null(kf);
    assert_non_null(rf);
    fseek(kf, (long)DATA_OFF, SEEK_SET);
    assert_int_equal(fgetc(kf), kernel[DATA_OFF]);
    assert_int_equal(fgetc(rf), initrd[0]);
    fclose(kf);
    fclose(rf);
    guest_mem__free(&vm.mem);
    unlink(kpath);
    unlink(ipath);
}

static void test_copied(void **state)
{
    (void)state;
    check_load(0);
}

static void test_mapped(void **state)
{
    (void)state;
    check_load(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copied),
        cmocka_unit_test(test_mapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
