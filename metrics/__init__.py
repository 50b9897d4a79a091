"""Prometheus metrics of the control plane (/metrics)."""
