/* Real-mode micro-guest: one character, then a reset through port 0xcf9. */
    .code16
    .text
    .globl _start
_start:
    mov $0x3f8, %dx
    mov $'R', %al
    out %al, %dx
    mov $0xcf9, %dx
    mov $0x06, %al
    out %al, %dx
1:  hlt
    jmp 1b
