/* The code interpreter's guest-side programs (src/guest/code), inside libcocoon: written
 * into a box on first use (code_runners.c), so a box needs nothing of ours installed. */
    .section .rodata
    .global code_blob_ctx_py
    .global code_blob_ctx_py_end
    .global code_blob_ctx_js
    .global code_blob_ctx_js_end
code_blob_ctx_py:
    .incbin "src/guest/code/ctx.py"
code_blob_ctx_py_end:
code_blob_ctx_js:
    .incbin "src/guest/code/ctx.js"
code_blob_ctx_js_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
