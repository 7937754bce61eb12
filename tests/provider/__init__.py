"""Tests of the LLM provider adapters, the fake upstream and the circuit breaker."""
