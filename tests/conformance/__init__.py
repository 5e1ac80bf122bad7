"""Conformance: ``printer.plugin`` and the webcam against the REAL OctoEverywhere plugin."""
