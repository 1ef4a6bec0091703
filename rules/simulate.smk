# Stage: simulate (see docs/ARCHITECTURE.md).
