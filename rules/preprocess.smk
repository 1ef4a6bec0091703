# Stage: preprocess (see docs/ARCHITECTURE.md).
