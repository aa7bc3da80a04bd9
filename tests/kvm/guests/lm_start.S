/* 64-bit micro-guest entry: the VMM enters here in long mode with RSP = load address
 * (the stack grows down below the image); main's return value is ignored and the
 * guest resets through the i8042. */
    .code64
    .section .text.start
    .globl _start
_start:
    and $-16, %rsp
    call main
    mov $0xfe, %al
    out %al, $0x64
1:  hlt
    jmp 1b
