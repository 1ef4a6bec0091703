# Stage: reconstruct (see docs/ARCHITECTURE.md).
