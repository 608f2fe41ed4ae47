// Virtio: work in progress
