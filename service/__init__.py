"""The service layer: a device offered over its control socket, and the client's side of it
(docs/architecture.md, "service"). Imports offload and migrate, never cli."""
