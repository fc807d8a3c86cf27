"""Speed benchmarks against diffusers (not part of the installed package): see benchmarks/README.md."""
