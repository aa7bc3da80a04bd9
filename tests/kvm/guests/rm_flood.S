/* Real-mode micro-guest: writes 40000 bytes to COM1 without pause, then resets. The
 * runner gives the UART a small cap and checks the host wrote no more than that. */
    .code16
    .text
    .globl _start
_start:
    mov $0x3f8, %dx
    mov $40000, %cx
1:  mov $'x', %al
    out %al, %dx
    loop 1b
    mov $0xfe, %al
    out %al, $0x64
2:  hlt
    jmp 2b
