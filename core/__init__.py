"""The pure domain core: contract models, the site directory, i18n, the clock and every rule.

Imports nothing from MQTT, HTTP or the database (tests/unit/test_layers.py holds it to that).
"""
