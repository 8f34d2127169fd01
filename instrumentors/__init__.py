"""Framework instrumentors execscope adds where opentelemetry-python-contrib has none."""
