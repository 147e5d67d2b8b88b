"""Browser tests of the web UI (Chromium through Playwright); the harness is in conftest.py and stack.py."""
