"""The bench feature's pure parts: run records, metric math, quantile sketches, arrivals, prompts, load shapes and
the sweep's arithmetic. Nothing here does I/O; `services.bench` drives it."""
