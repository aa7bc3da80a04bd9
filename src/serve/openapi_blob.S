/* docs/openapi.yaml inside cocoon-serve, for GET /v1/openapi.yaml: the document served is
 * always the one the program was built with. */
    .section .rodata
    .global cocoon_openapi_yaml
    .global cocoon_openapi_yaml_end
cocoon_openapi_yaml:
    .incbin "docs/openapi.yaml"
cocoon_openapi_yaml_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
