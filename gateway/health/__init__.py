"""The gateway's own HTTP surface: /healthz, /metrics and a status page (no patient data).

``metrics`` holds the counters the components report into (one registry per daemon, built
by the composition root); ``status`` reads the components into one plain snapshot that the
page, ``/status.json`` and ``pumpgw status`` all render; ``server`` serves them.
"""
