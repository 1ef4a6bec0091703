# Stage: latents (see docs/ARCHITECTURE.md).
