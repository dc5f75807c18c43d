"""plane_connector benchmarks: ratios and counts against baselines measured in the same run."""
