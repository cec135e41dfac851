"""YAML presets (package data) for `chadavit pretrain --config NAME`."""
