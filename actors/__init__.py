"""Domains of the Zero Latency system: one subpackage per domain, actors beside their pure logic."""
