/* cocoon-serve: the HTTP API server behind `cocoon serve` (being written: see
 * docs/openapi.yaml when it lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "cocoon-serve: not built yet\n");
    return 1;
}
