/* Real-mode micro-guest: prints through COM1 (polling LSR), checks the scratch
 * register round trip and an unassigned port, then resets through the i8042. */
    .code16
    .text
    .globl _start
_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    mov $msg, %si
    call puts
    /* scratch register round trip: write 0x5a to 0x3ff, read it back */
    mov $0x3ff, %dx
    mov $0x5a, %al
    out %al, %dx
    xor %al, %al
    in %dx, %al
    cmp $0x5a, %al
    jne fail
    /* an unassigned port reads all ones */
    mov $0x2f8, %dx
    in %dx, %al
    cmp $0xff, %al
    jne fail
    mov $okmsg, %si
    call puts
reset:
    mov $0xfe, %al
    out %al, $0x64
1:  hlt
    jmp 1b
fail:
    mov $failmsg, %si
    call puts
    jmp reset

puts:
    lodsb
    test %al, %al
    jz 2f
    mov %al, %bl
    mov $0x3fd, %dx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp puts
2:  ret

msg:     .asciz "hello from real mode\n"
okmsg:   .asciz "ok real-mode ports\n"
failmsg: .asciz "FAIL real-mode ports\n"
