/* 64-bit micro-guest: loads an empty IDT and raises an exception, which escalates
 * to a triple fault; the VMM must stop the VM with reason triple-fault. */
    .code64
    .section .text.start
    .globl _start
_start:
    lidt idt(%rip)
    int3
1:  hlt
    jmp 1b
idt: .word 0
     .quad 0
