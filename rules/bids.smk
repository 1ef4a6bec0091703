# Stage: bids (see docs/ARCHITECTURE.md).
