#!/bin/sh
# Runs the kvm backend's micro-guests on this machine's /dev/kvm: builds the guests
# (as/gcc/ld into flat binaries) and the kvm-microguest test program, runs each guest
# and checks its serial output and the VMM's summary line. Prints "skipped: <reason>"
# and exits 0 when /dev/kvm cannot be used. BUILD names the build holding the runner.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}/kvm-tests
mkdir -p "$B"

if [ ! -e /dev/kvm ]; then echo "skipped: /dev/kvm is absent"; exit 0; fi
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then echo "skipped: /dev/kvm is not accessible to $(id -un)"; exit 0; fi

# The runner is built by the Makefile from the same objects as cocoon-vmm
# (`make kvm-tests`; `make BUILD=build/asan SANITIZE=1 kvm-tests` for the sanitizer build).
RUNNER=${BUILD:-build}/tests/kvm-microguest
[ -x "$RUNNER" ] || { echo "FAIL: $RUNNER is not built (make BUILD=${BUILD:-build} kvm-tests)"; exit 1; }

G=tests/kvm/guests
for g in rm_hello rm_cf9 rm_flood; do
    as --32 -o "$B/$g.o" "$G/$g.S" && ld -m elf_i386 -Ttext=0 --oformat binary -o "$B/$g.bin" "$B/$g.o" ||
        { echo "FAIL: cannot assemble $g"; exit 1; }
done
GCFLAGS="-m64 -ffreestanding -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only -fno-stack-protector -nostdlib -O1 -fno-builtin"
${CC:-cc} $GCFLAGS -c -o "$B/lm_start.o" "$G/lm_start.S" &&
    ${CC:-cc} $GCFLAGS -c -o "$B/lm_virtio.o" "$G/lm_virtio.c" &&
    ld -nostdlib -no-pie -T "$G/lm.ld" --oformat binary -o "$B/lm_virtio.bin" "$B/lm_start.o" "$B/lm_virtio.o" &&
    ${CC:-cc} $GCFLAGS -c -o "$B/lm_triple.o" "$G/lm_triple.S" &&
    ld -nostdlib -no-pie -T "$G/lm.ld" --oformat binary -o "$B/lm_triple.bin" "$B/lm_triple.o" &&
    ${CC:-cc} $GCFLAGS -c -o "$B/lm_bz.o" "$G/lm_bz.c" &&
    ld -nostdlib -no-pie -T "$G/lm_bz.ld" --oformat binary -o "$B/lm_bz.bin" "$B/lm_start.o" "$B/lm_bz.o" &&
    python3 tests/kvm/mkbzimage.py "$B/lm_bz.bin" "$B/lm_bz.bzImage" &&
    ${CC:-cc} $GCFLAGS -c -o "$B/lm_net.o" "$G/lm_net.c" &&
    ld -nostdlib -no-pie -T "$G/lm.ld" --oformat binary -o "$B/lm_net.bin" "$B/lm_start.o" "$B/lm_net.o" &&
    ${CC:-cc} $GCFLAGS -c -o "$B/lm_cpuid.o" "$G/lm_cpuid.c" &&
    ld -nostdlib -no-pie -T "$G/lm.ld" --oformat binary -o "$B/lm_cpuid.bin" "$B/lm_start.o" "$B/lm_cpuid.o" ||
    { echo "FAIL: cannot build the long-mode guests"; exit 1; }

fails=0
run() { # name expected-stop grep-pattern... -- args
    name=$1 stop=$2; shift 2
    pats=""
    while [ "$1" != "--" ]; do pats="$pats|$1"; shift; done
    shift
    out=$(timeout 300 "$RUNNER" "$@" 2>"$B/$name.err")
    rc=$?
    echo "$out" >"$B/$name.out"
    summary=$(echo "$out" | grep '^SUMMARY')
    ok=1
    echo "$summary" | grep -q "stop=$stop " || ok=0
    IFS='|'
    for p in ${pats#|}; do
        [ -n "$p" ] && { echo "$out" | grep -q -- "$p" || { ok=0; echo "  missing: $p"; }; }
    done
    unset IFS
    echo "$out" | grep -q '^FAIL' && ok=0
    if [ -s "$B/$name.err" ] && grep -q 'Sanitizer\|runtime error' "$B/$name.err"; then ok=0; fi
    if [ $ok = 1 ]; then echo "PASS $name: $summary"; else
        echo "FAIL $name (rc $rc): $summary"; grep -E '^FAIL' "$B/$name.out"; tail -5 "$B/$name.err"; fails=$((fails + 1)); fi
}

run real-mode-uart reset "hello from real mode" "ok real-mode ports" -- --mode real "$B/rm_hello.bin"
run reset-cf9 reset "R" -- --mode real "$B/rm_cf9.bin"
# a real KVM reports KVM_EXIT_SHUTDOWN; PVM reports an emulation failure: either must stop the VM
run triple-fault "\(triple-fault\|error\)" -- --mode long --timeout 10000 "$B/lm_triple.bin"
run uart-flood reset "uart_written=1000 " -- --mode real --uart-cap 1000 "$B/rm_flood.bin"

run cpuid-template reset "ok hypervisor bit" "ok brand string" "ok cache leaves" "DONE [0-9]* 0" -- \
    --mode long --cpus 2 "$B/lm_cpuid.bin"

# disk: 1 MiB raw image starting with "COCOON", and a qcow2 overlay over it
printf 'COCOON' >"$B/disk.raw" && truncate -s 1M "$B/disk.raw"
run virtio-raw reset "DONE [0-9]* 0$" "ok blk data round trip" "ok bad descriptor loop" "ok console echo round trip" \
    "ok console works after the resize" -- \
    --mode long --rng --agent --disk "$B/disk.raw" --format raw --pause-cycles 20 "$B/lm_virtio.bin"
if command -v qemu-img >/dev/null; then
    rm -f "$B/base.raw" "$B/disk.qcow2"
    printf 'COCOON' >"$B/base.raw" && truncate -s 1M "$B/base.raw"
    qemu-img create -q -f qcow2 -b "$PWD/$B/base.raw" -F raw "$B/disk.qcow2" 1M
    run virtio-qcow2 reset "DONE [0-9]* 0$" "ok blk data round trip" -- \
        --mode long --rng --disk "$B/disk.qcow2" --format qcow2 "$B/lm_virtio.bin"
    qemu-img check -q "$B/disk.qcow2" && echo "PASS qcow2-check: qemu-img check clean after the guest wrote" ||
        { echo "FAIL qcow2-check"; fails=$((fails + 1)); }
    cmp -s -n 6 "$B/base.raw" - <<EOF2 || { echo "FAIL base image modified"; fails=$((fails + 1)); }
COCOON
EOF2
else
    echo "skipped: virtio-qcow2 (qemu-img not installed to create the overlay)"
fi

# virtio-net: ARP for the gateway answered by the network stack, malformed TX rings
run virtio-net reset "DONE [0-9]* 0$" "ok arp reply from the gateway" "ok bad tx descriptor loop" \
    "ok arp after reset" "broken_net=3 " -- --mode long --net "$B/lm_net.bin"
# the same with virtio notifications through KVM_IOEVENTFD (the I/O thread runs the
# device) and the interrupt through KVM_IRQFD; where KVM has neither, the exits and
# KVM_IRQ_LINE paths are used and the guest still passes (the counts say which)
run virtio-net-ioeventfd reset "DONE [0-9]* 0$" "ok arp reply from the gateway" "ok bad tx descriptor loop" \
    "ok arp after reset" "broken_net=3 " -- --mode long --net --ioeventfd --irqfd "$B/lm_net.bin"
echo "  virtio-net-ioeventfd: $(grep -o 'ioeventfds=[0-9]* irqfds=[0-9]*' "$B/virtio-net-ioeventfd.out")"
# The kvm VMM's seccomp filters on (as a box's kvm child runs): the same guest, every
# device path, nothing refused.
run virtio-raw-seccomp reset "DONE [0-9]* 0$" "ok blk data round trip" "ok console echo round trip" -- \
    --mode long --rng --agent --disk "$B/disk.raw" --format raw --irqfd --seccomp "$B/lm_virtio.bin"
run virtio-raw-ioeventfd reset "DONE [0-9]* 0$" "ok blk data round trip" "ok bad descriptor loop" "ok console echo round trip" -- \
    --mode long --rng --agent --disk "$B/disk.raw" --format raw --irqfd "$B/lm_virtio.bin"

# bzImage 64-bit entry (no PVH note): a fake bzImage around a long-mode micro-guest
printf 'INITRD-TEST' >"$B/initrd.bin"
run bzimage-64bit-entry reset "DONE [0-9]* 0$" "ok setup header copied" "ok e820 map" "ok initrd" \
    "cmdline: console=ttyS0 cocoon.test=bz" -- \
    --mode linux --initrd "$B/initrd.bin" --cmdline "console=ttyS0 cocoon.test=bz" "$B/lm_bz.bzImage"
# 4 GiB of guest RAM: the e820 map has RAM below and above the 3-4 GiB MMIO hole
run bzimage-4g-ram reset "DONE [0-9]* 0$" "e820 entries 4 ram_mib 409[0-9]" -- \
    --mode linux --mem 4096 --cmdline "console=ttyS0" "$B/lm_bz.bzImage"
for bad in version no64 sects lowload magic; do
    python3 tests/kvm/mkbzimage.py --bad $bad "$B/lm_bz.bin" "$B/bad-$bad.bzImage"
    timeout 60 "$RUNNER" --mode linux "$B/bad-$bad.bzImage" >"$B/bad-$bad.out" 2>"$B/bad-$bad.err"
    rc=$?
    if [ $rc = 3 ] && grep -q 'kernel is not a usable \(bzImage\|PVH ELF\)' "$B/bad-$bad.err" &&
        ! grep -q 'Sanitizer\|runtime error' "$B/bad-$bad.err"; then
        echo "PASS bzimage-bad-$bad: $(cat "$B/bad-$bad.err")"
    else
        echo "FAIL bzimage-bad-$bad (rc $rc): $(cat "$B/bad-$bad.err")"; fails=$((fails + 1))
    fi
done

if [ $fails = 0 ]; then echo "kvm micro-guests: all passed"; else echo "kvm micro-guests: $fails failed"; exit 1; fi
