"""Virtio transport for BPF offload: guest memory, split virtqueues, status and features,
and the control-queue wire formats (virtio 1.2; docs/virtio-offload.md)."""
