"""Sub-commands of the ``pumpgw`` CLI, one module each."""
