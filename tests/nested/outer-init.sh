#!/bin/busybox sh
# /init of the nested lane's outer VM (QEMU TCG, emulated AMD CPU with SVM): loads
# kvm-amd, then runs cocoon-vmm's kvm backend on the real (nested) /dev/kvm to boot
# our guest kernel + agent, and drives it through ctl.sock with nestctl. Prints
# "PASS name" / "FAIL name: why" lines and "NESTED DONE" for tests/nested/run.sh.
# The monitor's jail pivots into a root of its own, which the kernel refuses from the
# initramfs (rootfs can never be unmounted: EINVAL): run from a tmpfs copy of it.
if [ ! -e /.on-tmpfs ]; then
    /bin/busybox mkdir -p /newroot
    /bin/busybox mount -t tmpfs -o size=2560m tmpfs /newroot
    for d in /*; do
        case $d in
        /proc | /sys | /dev | /newroot) /bin/busybox mkdir -p /newroot$d ;;
        *) /bin/busybox cp -a $d /newroot/ ;;
        esac
    done
    /bin/busybox touch /newroot/.on-tmpfs
    exec /bin/busybox switch_root /newroot /init
fi
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin # /usr/bin: QEMU, for the qemu backend
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up # the boxes' host alias is the outer VM's loopback
echo "NESTED: outer up after $(cut -d' ' -f1 /proc/uptime) s"

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
FAILS=0
finish() {
    echo "NESTED DONE fails=$FAILS"
    sync
    poweroff -f
}

for m in irqbypass kvm ccp kvm-amd; do
    insmod /modules/$m.ko 2>&1 | head -3
done
if [ ! -c /dev/kvm ]; then
    fail "kvm-device: /dev/kvm missing after insmod kvm-amd"
    dmesg | grep -i -E 'kvm|svm' | tail -5
    finish
fi
dmesg | grep -i -E 'nested|npt' | sed 's/^/NESTED: /' | head -3

mkbox() { # name cpus [net-mode] [backend] [kernel]
    rm -rf /boxes/$1
    mkdir -p /boxes/$1
    cp /guest/overlay.qcow2 /boxes/$1/disk.qcow2
    net=
    [ -n "${3:-}" ] && net=", \"net\": {\"mode\": \"$3\"}"
    cat >/boxes/$1/config.json <<EOF
{"id": "$1", "kernel": "${5:-/guest/vmlinux}", "initrd": "/guest/initramfs.cpio",
 "disk": "/boxes/$1/disk.qcow2", "disk_format": "qcow2", "backend": "${4:-kvm}",
 "cpus": $2, "memory_mib": 256, "boot_timeout_ms": 120000$net}
EOF
}

# boot NAME: starts cocoon-vmm in the background and blocks on its ready line (a FIFO:
# no polling loop competing with the inner VM for the outer VM's one vCPU). Sets
# T0/T1 (outer uptime, s) around it.
boot() {
    rm -f /boxes/$1/ready
    mkfifo /boxes/$1/ready
    T0=$(cut -d' ' -f1 /proc/uptime)
    COCOON_KVM_MAP_KERNEL=${MAP_KERNEL:-0} COCOON_FORCE_KVM=1 COCOON_KVM_HIDE_XSAVE=1 COCOON_QEMU=/bin/qemu-hide-xsave cocoon-vmm --box-dir /boxes/$1 --ready-fd 3 3>/boxes/$1/ready &
    eval "PID_$1=$!"
    line=
    read -t 130 -r line </boxes/$1/ready
    T1=$(cut -d' ' -f1 /proc/uptime)
    case "$line" in
    ok*) pass "boot-$1: ready ($line; wall $T0 -> $T1 s)" ;;
    *)
        fail "boot-$1: ${line:-no ready line in 120 s}"
        echo "--- vmm.log"; tail -20 /boxes/$1/vmm.log
        echo "--- console.log"; tail -30 /boxes/$1/console.log
        return 1
        ;;
    esac
}

stop() {
    nestctl /boxes/$1/ctl.sock shutdown
    eval "wait \$PID_$1"
    rc=$?
    if [ $rc = 0 ]; then pass "stop-$1"; else
        fail "stop-$1: cocoon-vmm exit $rc"; tail -8 /boxes/$1/vmm.log; fi
}

ctl() { b=$1; shift; nestctl /boxes/$b/ctl.sock "$@"; }

# kvm_child NAME: sets child to the pid of the box's kvm VMM (empty if none)
kvm_child() {
    child=
    for p in /proc/[0-9]*; do
        tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q -- "--kvm-run /boxes/$1 " && child=${p#/proc/}
    done
}

# kernel_pages NAME MEM_MIB: with COCOON_KVM_MAP_KERNEL=1, the kernel's and initrd's pages
# mapped from their files (file VMAs inside guest RAM): resident, and of those the ones
# the guest wrote (copied on write, now anonymous) (bench/RESULTS.md)
kernel_pages() {
    kvm_child $1
    [ -n "$child" ] || return 0
    base=$(grep -o 'guest RAM at 0x[0-9a-f]*' /boxes/$1/vmm.log | tail -1 | sed 's/.*0x//')
    awk -v base="$base" -v mib=$2 -v name=$1 '
        function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
        /^[0-9a-f]+-[0-9a-f]+ / { split($1, r, "-"); lo = hex(r[1]); b = hex(base); file = lo >= b && lo < b + mib * 1048576 && NF >= 6 }
        /^Rss:/ { if (file) rss += $2 }
        /^Anonymous:/ { if (file) anon += $2 }
        END { printf "BENCH kernel pages %s: %d KiB resident, of which %d KiB copied on write\n", name, rss, anon }' /proc/$child/smaps
}

# measure NAME MEM_MIB: start-up and memory numbers of a running box (bench/RESULTS.md).
measure() {
    kvm_child $1
    mon=$(eval echo \$PID_$1)
    [ -n "$child" ] || return 0
    total=$(awk '/^VmRSS/ {print $2}' /proc/$child/status)
    # guest RAM: the VMAs inside [base, base + MEM) (the kernel's segments are file
    # mappings inside it, the rest anonymous), base from the child's log line
    base=$(grep -o 'guest RAM at 0x[0-9a-f]*' /boxes/$1/vmm.log | tail -1 | sed 's/.*0x//')
    guest=$(awk -v base="$base" -v mib=$2 '
        function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
        /^[0-9a-f]+-[0-9a-f]+ / { split($1, r, "-"); lo = hex(r[1]); b = hex(base); inside = lo >= b && lo < b + mib * 1048576 }
        /^Rss:/ { if (inside) g += $2 }
        END { print g + 0 }' /proc/$child/smaps)
    monrss=$(awk '/^VmRSS/ {print $2}' /proc/$mon/status)
    echo "BENCH rss $1: kvm child ${total} KiB of which guest RAM touched ${guest} KiB -> overhead $((total - guest)) KiB; monitor ${monrss} KiB"
    grep -o 'vCPUs started.*(CPU [0-9.]* ms)' /boxes/$1/vmm.log | tail -1 | sed "s/^/BENCH start $1: /"
    grep -o 'ioeventfd: [0-9]* virtio queue(s), irqfd: [0-9]* device(s)' /boxes/$1/vmm.log | tail -1 | sed "s/^/NESTED: $1 /"
}

# core NAME BACKEND: the checks both backends must pass (the issue asks the lane to show
# the kvm backend passing what the qemu backend passes): boot, hello, echo, separate
# streams, exit code, 1 MiB of output, a disk write surviving a stop and a new boot.
# Check names carry the backend ("echo[kvm]"). Leaves the box running after the reboot.
core() {
    b=$1 be=$2
    boot $b || return 1
    [ $be = kvm ] && measure $b 256
    h=$(ctl $b hello)
    case "$h" in *backend=$be*) pass "hello[$be]: $h" ;; *) fail "hello[$be]: $h" ;; esac
    # no boot waits for a missing clock: the kernel reads its wall clock at once (the
    # CMOS fallback polls an absent RTC for 1 s and prints this line)
    cs=$(ctl $b exec cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
    if grep -q 'Unable to read current time from RTC' /boxes/$b/console.log; then
        fail "wall-clock[$be]: the guest kernel found no wall clock (clocksource $cs)"
    else pass "wall-clock[$be]: read at boot, clocksource $cs"; fi
    # and it is right once the box is ready (the agent sets it from the host's)
    gt=$(ctl $b exec date +%s) ht=$(date +%s)
    case "$gt" in
    *[!0-9]* | "") fail "clock-right[$be]: the guest's date said: $gt" ;;
    *) d=$((ht - gt)); [ $d -lt 0 ] && d=$((-d))
       if [ $d -le 2 ]; then pass "clock-right[$be]: guest $gt, host $ht"; else fail "clock-right[$be]: guest $gt, host $ht"; fi ;;
    esac
    out=$(timeout 60 nestctl /boxes/$b/ctl.sock exec echo hello)
    [ "$out" = hello ] && pass "echo[$be]" || fail "echo[$be]: got '$out'"
    ctl $b exec sh -c 'echo to-out; echo to-err >&2' >/tmp/o 2>/tmp/e
    if [ "$(cat /tmp/o)" = to-out ] && [ "$(cat /tmp/e)" = to-err ]; then pass "streams[$be]"; else
        fail "streams[$be]: out='$(cat /tmp/o)' err='$(cat /tmp/e)'"; fi
    ctl $b exec sh -c 'exit 42'
    rc=$?
    [ $rc = 42 ] && pass "exit-code[$be]" || fail "exit-code[$be]: got $rc"
    want=$(yes abcdefghij | head -c 1048576 | sha256sum | cut -d' ' -f1)
    got=$(ctl $b exec sh -c 'yes abcdefghij | head -c 1048576' | sha256sum | cut -d' ' -f1)
    [ "$want" = "$got" ] && pass "1mb-output[$be]" || fail "1mb-output[$be]: hash $got, want $want"
    ctl $b exec sh -c 'echo persist-42 >/persist.txt && sync' && pass "disk-write[$be]" || fail "disk-write[$be]"
    stop $b
    boot $b || return 1
    got=$(ctl $b exec cat /persist.txt)
    [ "$got" = persist-42 ] && pass "disk-persists[$be]" || fail "disk-persists[$be]: got '$got'"
}

bench_stop() { # quiet unless the box does not shut down cleanly
    timeout 30 nestctl /boxes/$1/ctl.sock shutdown || { kill $(eval echo \$PID_$1); echo "--- $1 console.log"; tail -8 /boxes/$1/console.log; }
    eval "wait \$PID_$1"
    rc=$?
    [ $rc = 0 ] || { fail "stop-$1: cocoon-vmm exit $rc"; tail -8 /boxes/$1/vmm.log; }
    rm -rf /boxes/$1
}

# Full snapshots and forks on the kvm backend: a box holds state in RAM only (a shell
# counter driven through a FIFO, a file on a tmpfs), is captured live once (a new disk
# layer, plus memory and device state into one file) the way libcocoon does it
# (snapshots/<id>/ holds a link to the old layer; memory.next, then memory.restore, link
# to its memory.state), and FORK_N boxes start from that capture: each has the parent's
# RAM state, goes on on its own, and the parent goes on too.
ms_since() { awk -v a=$1 -v b=$(cut -d' ' -f1 /proc/uptime) 'BEGIN {printf "%d", (b - a) * 1000}'; }
DRIVE='rm -f /tmp/state; echo inc >/tmp/ctl; i=0; while [ ! -e /tmp/state ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /tmp/state'
drive() { ctl $1 exec sh -c "$DRIVE"; }
# children per fork: 8, or fork_n=N on the outer kernel's command line (NESTED_FORK_N)
FORK_N=$(sed -n 's/.*fork_n=\([0-9]*\).*/\1/p' /proc/cmdline)
FORK_N=${FORK_N:-8}
# vmm_child NAME: child= the pid of the box's VMM (the kvm VMM or QEMU: the monitor's child)
vmm_child() {
    mon=$(eval echo \$PID_$1)
    child=$(cut -d' ' -f1 /proc/$mon/task/$mon/children 2>/dev/null)
}
# fork_box NAME BACKEND: a box (FORK_CPUS vCPUs, default 1) with a network that reaches
# the outer VM's port 8090
fork_box() {
    mkbox $1 ${FORK_CPUS:-1} public $2
    sed -i 's|"net": {"mode": "public"}|"net": {"mode": "public", "rules": ["allow host:8090"]}|' /boxes/$1/config.json
}
# capture BOX SID: a live capture of BOX with its memory into /snaps/SID, as libcocoon
# makes one; sets rc, ans (the answer) and snap_ms
capture() {
    mkdir -p /snaps/$2
    ln /boxes/$1/disk.qcow2 /snaps/$2/disk.qcow2
    nestctl mkoverlay /snaps/$2/disk.qcow2 /boxes/$1/disk.next-$2.qcow2 || { rc=1 ans=mkoverlay; return; }
    : >/snaps/$2/memory.state
    ln /snaps/$2/memory.state /boxes/$1/memory.next
    t=$(cut -d' ' -f1 /proc/uptime)
    ans=$(ctl $1 snapshot disk.next-$2.qcow2 memory)
    rc=$?
    snap_ms=$(ms_since $t)
    rm -f /boxes/$1/memory.next
}
# child BE NAME SID: a box made from /snaps/SID, booted from its memory
child() {
    fork_box $2 $1
    rm -f /boxes/$2/disk.qcow2
    nestctl mkoverlay /snaps/$3/disk.qcow2 /boxes/$2/disk.qcow2
    ln /snaps/$3/memory.state /boxes/$2/memory.restore
    boot $2
}
# snap_fork BACKEND N: the checks above on one backend with N children; box names carry
# the backend (kvmsrc, kvmk1..., qemusrc, qemuk1...)
snap_fork() {
    be=$1 n=$2 src=${1}src
    # the baseline, same run: cold boots of the same box to its first exec
    for i in 1 2 3; do
        fork_box ${be}cold $be
        boot ${be}cold || continue
        ctl ${be}cold exec echo first >/dev/null
        echo "BENCH fork cold[$be] $i: $(ms_since $T0) ms to the first exec"
        bench_stop ${be}cold
    done
    fork_box $src $be
    boot $src || return 1
    ctl $src exec echo first >/dev/null
    cold_ms=$(ms_since $T0)
    ctl $src exec sh -c 'mkdir -p /mnt/ram && mount -t tmpfs tmpfs /mnt/ram && echo ram-$RANDOM$RANDOM >/mnt/ram/secret &&
        mkfifo /tmp/ctl && echo "n=0; while :; do read c </tmp/ctl; [ \"\$c\" = inc ] || continue; n=\$((n+1)); echo \$n >/tmp/s.new; mv /tmp/s.new /tmp/state; done" >/counter.sh &&
        (setsid sh /counter.sh </dev/null >/dev/null 2>&1 &)'
    secret=$(ctl $src exec cat /mnt/ram/secret)
    c=$(drive $src; drive $src; drive $src)
    [ "$(echo $c)" = "1 2 3" ] || { fail "fork-setup[$be]: the counter in the parent said '$c'"; return 1; }
    sid=0123456789ab
    rm -rf /snaps
    capture $src $sid
    if [ $rc = 0 ] && [ "$ans" = quiesced ] && [ ! -e /boxes/$src/disk.next-$sid.qcow2 ]; then
        pass "fork-snapshot[$be]: live capture in $snap_ms ms ($(grep -o 'memory and device state saved in [0-9.]* ms' /boxes/$src/vmm.log | tail -1))"
    else
        fail "fork-snapshot[$be]: rc $rc, answer '$ans'"; tail -5 /boxes/$src/vmm.log; return 1
    fi
    c=$(drive $src)
    [ "$c" = 4 ] && pass "fork-parent-goes-on[$be]: counter 4 after the capture" || fail "fork-parent-goes-on[$be]: counter '$c'"
    i=1 ok=0
    while [ $i -le $n ]; do
        k=${be}k$i
        if child $be $k $sid; then
            ctl $k exec echo first >/dev/null
            r_ms=$(ms_since $T0)
            echo "BENCH fork restore[$be] $k: ${r_ms} ms to the first exec (cold boot of the parent: ${cold_ms} ms;" \
                "$(grep -o 'box ready in [0-9]* ms' /boxes/$k/vmm.log | tail -1);" \
                "$(grep -o 'restored from a full snapshot in [0-9.]* ms\|memory snapshot loaded in [0-9]* ms' /boxes/$k/vmm.log | tail -1))"
            got=$(ctl $k exec cat /mnt/ram/secret)
            c=$(drive $k)
            gt=$(ctl $k exec date +%s) ht=$(date +%s)
            d=$((ht - gt)); [ $d -lt 0 ] && d=$((-d))
            if [ "$got" = "$secret" ] && [ "$c" = 4 ] && [ $d -le 2 ]; then ok=$((ok + 1)); else
                fail "fork-child[$be] $k: secret '$got' (want '$secret'), counter '$c' (want 4), clock off by $d s"; tail -5 /boxes/$k/vmm.log; fi
        fi
        i=$((i + 1))
    done
    # memory, right after the restores: on the kvm backend the children's guest RAM is the snapshot file's pages,
    # shared until written; QEMU loads the file into each child's own RAM
    rss=0 pss=0
    i=1
    while [ $i -le $n ]; do
        vmm_child ${be}k$i
        [ -n "$child" ] && set -- $(awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} END {print r + 0, p + 0}' /proc/$child/smaps_rollup) &&
            rss=$((rss + $1)) pss=$((pss + $2))
        i=$((i + 1))
    done
    echo "BENCH fork memory[$be]: $n children of 256 MiB: Rss sum ${rss} KiB, Pss sum ${pss} KiB"
    [ -n "${FORK_LOG:-}" ] && sed "s/^/NESTED: ${be}k2 /" /boxes/${be}k2/vmm.log | cut -c1-220
    [ $ok = $n ] && pass "fork-children[$be]: $n children restored with the parent's RAM state (tmpfs secret, counter 3 -> 4 each), clocks stepped"
    # they diverge: a second step in child 1 only, then child 2 and the parent
    a=$(drive ${be}k1) b=$(drive ${be}k2) p=$(drive $src)
    [ "$a $b $p" = "5 5 5" ] && pass "fork-independent[$be]: child 1, child 2 and the parent each at 5" ||
        fail "fork-independent[$be]: '$a' '$b' '$p' (want 5 5 5)"
    # every vCPU runs in the child: two busy loops move the second CPU's time on
    if [ "${FORK_CPUS:-1}" = 2 ]; then
        t=$(ctl ${be}k2 exec sh -c 'a=$(/bin/busybox awk "/^cpu1 /{print \$2 + \$4}" /proc/stat); yes >/dev/null & p1=$!; yes >/dev/null & p2=$!;
            sleep 1; kill $p1 $p2; b=$(/bin/busybox awk "/^cpu1 /{print \$2 + \$4}" /proc/stat); echo $((b - a))')
        np=$(ctl ${be}k2 exec nproc)
        [ "$np" = 2 ] && [ "${t:-0}" -gt 20 ] && pass "fork-vcpus[$be]: both vCPUs run in the child (cpu1 +$t ticks in 1 s)" ||
            fail "fork-vcpus[$be]: nproc '$np', cpu1 ticks '$t'"
    fi
    # the network device goes on in the child, over the child's own network stack
    got=$(ctl ${be}k2 exec sh -c '/bin/busybox wget -q -O - http://10.0.2.2:8090/blob | /bin/busybox sha256sum' | cut -d' ' -f1)
    [ "$got" = "$FORK_BLOB" ] && pass "fork-network[$be]: 256 KiB from the host through the child's restored virtio-net" ||
        fail "fork-network[$be]: hash '$got', want '$FORK_BLOB'"
    ctl ${be}k1 exec sh -c 'echo only-k1 >/mnt/ram/mine'
    m=$(ctl ${be}k2 exec cat /mnt/ram/mine 2>/dev/null)
    [ -z "$m" ] && pass "fork-private-ram[$be]: a write in one child is not seen by another" || fail "fork-private-ram[$be]: child 2 sees '$m'"
    # a fork of a fork: child 1 (at 5) captured in turn; its child goes on from 5
    vmm_child ${be}k1
    rss0=$(awk '/^Rss:/ {print $2}' /proc/$child/smaps_rollup)
    capture ${be}k1 0123456789ac
    rss1=$(awk '/^Rss:/ {print $2}' /proc/$child/smaps_rollup)
    # the capture reads only what the restored guest touched in its file's holes: a
    # restored box's capture does not map its whole RAM
    if [ $be = kvm ]; then
        [ $((rss1 - rss0)) -lt 65536 ] && pass "fork-capture-restored[kvm]: the child's VMM grew ${rss0} -> ${rss1} KiB in its capture" ||
            fail "fork-capture-restored[kvm]: the child's VMM grew ${rss0} -> ${rss1} KiB in its capture (its RAM is 256 MiB)"
    fi
    if [ $rc = 0 ] && child $be ${be}g1 0123456789ac; then
        c=$(drive ${be}g1) got=$(ctl ${be}g1 exec cat /mnt/ram/mine)
        [ "$c $got" = "6 only-k1" ] && pass "fork-of-a-fork[$be]: a child's own child goes on from the child's state (counter 6, its file)" ||
            fail "fork-of-a-fork[$be]: counter '$c', file '$got' (want 6 only-k1)"
        bench_stop ${be}g1
    else
        fail "fork-of-a-fork[$be]: capture rc $rc ($ans)"
    fi
    i=1
    while [ $i -le $n ]; do bench_stop ${be}k$i; i=$((i + 1)); done
    bench_stop $src
    rm -rf /snaps
}
# NESTED_ONLY=fork (tests/nested/run.sh): only the snapshot and fork checks
forks() {
    mkdir -p /tmp/www8090
    dd if=/dev/urandom of=/tmp/www8090/blob bs=64k count=4 2>/dev/null
    FORK_BLOB=$(sha256sum </tmp/www8090/blob | cut -d' ' -f1)
    httpd -p 127.0.0.1:8090 -h /tmp/www8090
    FORK_CPUS=2 # two vCPUs: every vCPU's state goes across
    snap_fork kvm $FORK_N
    # the peer on the same machine, same box: QEMU (accel kvm on the nested /dev/kvm), 4 children
    [ -x /usr/bin/qemu-system-x86_64 ] && snap_fork qemu 4
}
case "$(cat /proc/cmdline)" in *nested_only=fork*) FORK_LOG=1; forks; finish ;; esac

mkbox box1 1
mkbox box2 2 public
# box2's network: the outer VM's port 8080 allowed as the host alias, 8081 not, and
# the guest's port 80 published on the outer VM's 127.0.0.1:18080
# the outer VM's 127.0.0.1:5300 (nestctl dns) is its upstream resolver
sed -i 's|"net": {"mode": "public"}|"net": {"mode": "public", "rules": ["allow host:8080", "allow *.allowed.test", "deny bad.test"], "ports": ["127.0.0.1:18080:80"], "dns_upstream": ["127.0.0.1:5300"]}|' \
    /boxes/box2/config.json
nestctl dns 5300 www.allowed.test=93.184.216.34 rebind.allowed.test=10.0.0.5 bad.test=93.184.216.35 &
if core box1 kvm; then
    if boot box2; then
        measure box2 256
        a=$(ctl box1 exec echo one)
        b=$(ctl box2 exec echo two)
        [ "$a$b" = onetwo ] && pass "two-boxes" || fail "two-boxes: '$a' '$b'"
        n=$(ctl box2 exec nproc)
        [ "$n" = 2 ] && pass "two-vcpus: nproc=$n" || fail "two-vcpus: nproc=$n"
        # the CPUID template's topology: two single-thread cores in one package
        topo=$(ctl box2 exec cat /sys/devices/system/cpu/cpu1/topology/core_id \
            /sys/devices/system/cpu/cpu1/topology/thread_siblings_list /sys/devices/system/cpu/cpu1/topology/core_siblings_list | tr '\n' ' ')
        [ "$topo" = "1 1 0-1 " ] && pass "cpu-topology: core_id, threads, package of cpu1: $topo" ||
            fail "cpu-topology: core_id, thread siblings, core siblings of cpu1: '$topo' (want '1 1 0-1 ')"
        # virtio-net: eth0 carries the configured MAC, and the gateway answers ARP
        # (a ping makes the guest resolve it; the reply itself does not matter)
        mac=$(ctl box2 exec cat /sys/class/net/eth0/address)
        arp=$(ctl box2 exec sh -c '/bin/busybox ping -c1 -W3 10.0.2.2 >/dev/null 2>&1; cat /proc/net/arp')
        case "$mac|$arp" in
        52:54:00:c0:c0:0f\|*10.0.2.2*52:54:00:c0:c0:02*) pass "virtio-net: eth0 $mac, gateway ARP resolved" ;;
        *) fail "virtio-net: mac '$mac' arp '$arp'"; grep -i 'net' /boxes/box2/vmm.log | tail -5 ;;
        esac
        # TCP through virtio-net and the stack, both ways, with the policy applied: 4 MiB
        # from an allowed host port, a refused one logged with its rule, and a server in
        # the guest reached through a published port
        mkdir -p /tmp/www
        dd if=/dev/urandom of=/tmp/www/blob bs=64k count=64 2>/dev/null
        want=$(sha256sum </tmp/www/blob | cut -d' ' -f1)
        httpd -p 127.0.0.1:8080 -h /tmp/www
        httpd -p 127.0.0.1:8081 -h /tmp/www
        got=$(ctl box2 exec sh -c '/bin/busybox wget -q -O - http://10.0.2.2:8080/blob | /bin/busybox sha256sum' | cut -d' ' -f1)
        [ "$got" = "$want" ] && pass "net-tcp-in: 4 MiB from an allowed host port, hash matches" ||
            fail "net-tcp-in: hash '$got', want '$want'"
        ctl box2 exec sh -c 'printf "GET /blob HTTP/1.0\r\n\r\n" | /bin/busybox nc 10.0.2.2 8081' >/tmp/denied 2>&1
        rc=$?
        if [ $rc != 0 ] && grep -q 'deny tcp 10.0.2.15:[0-9]* -> 10.0.2.2:8081' /boxes/box2/net.log; then
            pass "net-deny: port 8081 refused (nc rc $rc) and logged: $(grep -o 'rule=.*' /boxes/box2/net.log | tail -1)"
        else
            fail "net-deny: nc rc $rc ($(cat /tmp/denied)), net.log: $(tail -2 /boxes/box2/net.log)"
        fi
        # DNS through the stack's resolver: an allowed name answered, a private answer
        # for it stripped (rebinding), a denied name refused and logged with its rule
        dns=$(ctl box2 exec sh -c 'for n in www.allowed.test rebind.allowed.test bad.test; do
            echo "$n: $(/bin/busybox nslookup $n 10.0.2.3 2>&1 | grep -c -E "Address: (93.184.216.3[45]|10.0.0.5)")"; done' | tr '\n' ' ')
        if [ "$dns" = "www.allowed.test: 1 rebind.allowed.test: 0 bad.test: 0 " ] &&
            grep -q 'deny dns.* bad.test.*rule="deny bad.test"' /boxes/box2/net.log; then
            pass "net-dns: $dns(bad.test denied and logged)"
        else
            fail "net-dns: '$dns' net.log: $(grep dns /boxes/box2/net.log | tail -2)"
        fi
        ctl box2 exec sh -c 'mkdir -p /www && /bin/busybox dd if=/dev/zero of=/www/zero bs=64k count=32 2>/dev/null &&
            /bin/busybox httpd -p 80 -h /www'
        got=$(wget -q -O - http://127.0.0.1:18080/zero | sha256sum | cut -d' ' -f1)
        want=$(dd if=/dev/zero bs=64k count=32 2>/dev/null | sha256sum | cut -d' ' -f1)
        [ "$got" = "$want" ] && pass "net-published: 2 MiB from the guest's httpd through 127.0.0.1:18080" ||
            fail "net-published: hash '$got', want '$want'"
        stop box2
        # the monitor keeps net.stats.json (cocoon stats) for both backends
        st=$(cat /boxes/box2/net.stats.json 2>/dev/null)
        case "$st" in
        *'"frames_in": '[1-9]*) pass "net-stats: $(echo "$st" | grep -o '"frames_in": [0-9]*, "frames_out": [0-9]*')" ;;
        *) fail "net-stats: net.stats.json is '$st'" ;;
        esac
    fi
    stop box1
fi
# The hostile lane on the kvm backend (tests/hostile, as in test_hostile.py): the
# hostile agent replaces cocoon-agent and attacks through the agent channel; the
# monitor must stay within its bounds, tell the client, and stop the box cleanly.
kb() { awk -v k="$2:" '$1 == k {print $2}' /proc/$1/status; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
if [ -f /guest/hostile.cpio ]; then
    mkbox evil 1 "" kvm
    sed -i 's|/guest/initramfs.cpio|/guest/hostile.cpio|' /boxes/evil/config.json
    if boot evil; then
        mon=$PID_evil
        rss0=$(kb $mon VmRSS)
        out=$(ctl evil exec attack payloads 20000)
        lines=$(wc -l </boxes/evil/vmm.log)
        sup=$(grep -c 'further ones are suppressed' /boxes/evil/vmm.log)
        [ "$out" = "sent 20000" ] && [ "$lines" -lt 250 ] && [ "$sup" = 1 ] && [ "$(ctl evil exec echo ok)" = ok ] &&
            pass "hostile-payloads[kvm]: 20000 malformed frames dropped, vmm.log $lines lines" ||
            fail "hostile-payloads[kvm]: '$out', vmm.log $lines lines, suppressed $sup"
        # 32 MiB past the window, read late (the pipe fills, nestctl stops reading)
        ctl evil exec attack credit 33554432 2>/tmp/credit.err | (sleep 3; cat >/dev/null)
        if grep -q 'ignores flow control' /tmp/credit.err && [ "$(ctl evil exec echo ok)" = ok ]; then
            pass "hostile-credit[kvm]: $(cat /tmp/credit.err | head -c 120)"
        else fail "hostile-credit[kvm]: '$(cat /tmp/credit.err)'"; fi
        # endless output ignoring SIGKILL: the client goes after 3 s, the guest floods 8 s
        timeout 3 nestctl /boxes/evil/ctl.sock exec attack endless 8 >/dev/null 2>&1
        sleep 7
        c0=$(cpu_ticks $mon)
        sleep 2
        c1=$(cpu_ticks $mon)
        hwm=$(kb $mon VmHWM)
        if [ $((hwm - rss0)) -lt 32768 ] && [ $((c1 - c0)) -lt 60 ] && [ "$(ctl evil exec echo ok)" = ok ]; then
            pass "hostile-flood[kvm]: monitor rss ${rss0} KiB, peak ${hwm} KiB, idle after ($((c1 - c0)) ticks in 2 s)"
        else fail "hostile-flood[kvm]: monitor rss ${rss0} -> peak ${hwm} KiB, $((c1 - c0)) ticks in 2 s"; fi
        # a frame whose header breaks the framing: the box stops, cleanly
        ctl evil exec attack header oversize >/dev/null 2>&1
        rc=$?
        wait $mon
        mrc=$?
        if [ $rc != 0 ] && [ $mrc = 1 ] && grep -q 'malformed frame' /boxes/evil/vmm.log &&
            ! grep -q 'forbidden system call' /boxes/evil/vmm.log; then
            pass "hostile-frame[kvm]: box stopped cleanly ($(grep -o 'stopping the box: .*' /boxes/evil/vmm.log | tail -1))"
        else
            fail "hostile-frame[kvm]: nestctl rc $rc, cocoon-vmm exit $mrc"
            tail -5 /boxes/evil/vmm.log
        fi
    fi
    rm -rf /boxes/evil
else
    echo "NESTED: no hostile initramfs (make hostile): the hostile checks are skipped"
fi
# The bzImage fallback with a real kernel: the same kernel built as a bzImage (it
# decompresses itself, then enters through the 64-bit boot protocol entry).
if [ -f /guest/bzImage ]; then
    mkbox bzbox 1 "" kvm /guest/bzImage
    if boot bzbox; then
        grep -q 'kernel entered by the bzImage 64-bit entry' /boxes/bzbox/vmm.log && pass "bzimage-entry: booted through the bzImage loader" ||
            fail "bzimage-entry: $(grep -o 'kernel entered by [^,]*' /boxes/bzbox/vmm.log)"
        out=$(ctl bzbox exec sh -c 'echo bz-$(cat /proc/sys/kernel/osrelease)')
        case "$out" in bz-6.1*) pass "bzimage-exec: $out" ;; *) fail "bzimage-exec: got '$out'" ;; esac
        stop bzbox
    fi
    rm -rf /boxes/bzbox
else
    echo "NESTED: no bzImage of the guest kernel (make guest builds it): bzImage boot skipped"
fi
if [ -x /usr/bin/qemu-system-x86_64 ]; then
    mkbox qbox 1 "" qemu
    core qbox qemu && stop qbox
    rm -rf /boxes/qbox
fi

# qemu backend vs kvm backend (bench/RESULTS.md): the same kernel, initramfs, disk,
# 1 vCPU and 256 MiB, booted alternately 3 times each; QEMU runs with accel kvm on the
# same nested /dev/kvm (the outer CPU shows svm, so accel auto picks kvm). Wall is from
# starting cocoon-vmm to its ready line, ready_ms is the monitor's own figure. Only when
# run.sh put QEMU in (the default; NESTED_QEMU=0 leaves it out).
if [ -x /usr/bin/qemu-system-x86_64 ]; then
    for i in 1 2 3; do
        for be in kvm kvmmap qemu; do
            b=$be$i
            mkbox $b 1 "" ${be%map}
            MAP_KERNEL=0
            [ $be = kvmmap ] && MAP_KERNEL=1
            boot $b || continue
            ms=$(awk -v a=$T0 -v b=$T1 'BEGIN {printf "%d", (b - a) * 1000}')
            split=$(grep -o 'box ready in [0-9]* ms (.*)' /boxes/$b/vmm.log | tail -1 | sed 's/.*(\(.*\))/\1/')
            stall=$(grep -c 'Unable to read current time from RTC' /boxes/$b/console.log)
            echo "BENCH boot $be $i: ready_ms ${line#ok } wall_ms $ms ($split) rtc_stall=$stall"
            [ $be = kvmmap ] && kernel_pages $b 256
            bench_stop $b
        done
    done
else
    echo "NESTED: no QEMU in the outer VM (NESTED_QEMU=0): qemu-backend checks and comparison skipped"
fi
forks
finish
