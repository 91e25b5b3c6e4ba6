"""The fleet's HTTP API (JSON + CSV); issue 22 adds the HTML pages to the same app."""
