"""Tests of the OctoEverywhere integration, inside Home Assistant."""
