"""Tests of the host with the OpenAI-compatible provider stack."""
