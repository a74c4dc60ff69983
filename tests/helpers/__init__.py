"""What tests and benchmarks share: running gateway processes, vhosts, traffic, readiness."""
