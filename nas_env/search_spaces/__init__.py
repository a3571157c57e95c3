"""Search spaces: token schedules, masks, and tokens <-> architectures."""
