"""Measuring methods: the paper's protocol, real thick/thin pairs, metrics, reports and the benchmark."""
