# Stage: evaluate (see docs/ARCHITECTURE.md).
