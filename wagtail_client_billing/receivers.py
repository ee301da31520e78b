"""Signal receivers this app connects for itself (imported by ``AppConfig.ready``)."""
