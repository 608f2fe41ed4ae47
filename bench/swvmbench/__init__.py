"""swvm's benchmarks as a package: harness.py runs contenders alternately
and records medians, ratios and peak memory as JSON; one module per
benchmark; table.py turns a results file into BENCHMARKS.md's Markdown.
bench/bench.py is the command line."""
