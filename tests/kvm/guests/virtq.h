/* The split virtqueue's descriptor as the micro-guests that drive virtio devices
 * write it (virtio 1.x, section 2.7.5), with its flags. */
#ifndef COCOON_MICROGUEST_VIRTQ_H
#define COCOON_MICROGUEST_VIRTQ_H

#include "guest.h"

struct desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};
#define NEXT 1
#define WRITE 2
#define INDIRECT 4

#endif
