"""Tests for the printer agent."""
